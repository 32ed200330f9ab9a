/* tests/fuzz/fuzz-policy.c: libFuzzer target for the policy parser
 * (policies/ms-policy.c). Its input is domain XML that anyone allowed to
 * edit a domain wrote, parsed inside the libvirt hook: any crash, leak or
 * UB here is a bug. Each input is tried as a whole domain XML and as a
 * standalone policy; whatever parses is serialised, re-parsed, copied and
 * freed, and the canonical form must re-parse (it is what `memsharectl
 * policy get` users paste back). */
#include "ms-policy.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
roundtrip(const MsPolicy *policy)
{
    g_autofree char *xml = ms_policy_to_xml(policy);
    g_autoptr(MsPolicy) again = NULL;
    g_autoptr(GError) error = NULL;

    if (!ms_policy_parse_standalone(xml, -1, &again, &error)) {
        /* The parser's own output must be a valid policy. */
        g_printerr("canonical XML does not re-parse: %s\n%s", error->message, xml);
        abort();
    }
    g_autofree char *xml2 = ms_policy_to_xml(again);
    if (g_strcmp0(xml, xml2) != 0) {
        g_printerr("canonical XML is not a fixed point:\n%s---\n%s", xml, xml2);
        abort();
    }
    g_autoptr(MsPolicy) copy = ms_policy_copy(policy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *xml = (const char *)data;
    g_autoptr(GError) e1 = NULL, e2 = NULL;
    g_autoptr(MsPolicy) p1 = NULL, p2 = NULL;
    MsOnError on_error;

    if (ms_policy_parse_domain_xml(xml, size, MS_POLICY_CHECK_NONE, NULL, &p1, &on_error, &e1)) {
        if (p1)
            roundtrip(p1);
    } else if (e1 == NULL) {
        abort();    /* FALSE must come with an error */
    }
    if (ms_policy_parse_standalone(xml, size, &p2, &e2)) {
        if (p2 == NULL)
            abort();
        roundtrip(p2);
    } else if (e2 == NULL) {
        abort();
    }
    return 0;
}
