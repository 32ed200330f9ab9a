/* tests/fuzz/fuzz-policy.c: libFuzzer target for the policy parser
 * (policies/ms-policy.c). Its input is domain XML that anyone allowed to
 * edit a domain wrote, parsed inside the libvirt hook: any crash, leak or
 * UB here is a bug. Each input is tried as a whole domain XML and as a
 * standalone policy; whatever parses is serialised, re-parsed, copied and
 * freed, and the canonical form must re-parse (it is what `memsharectl
 * policy get` users paste back).
 *
 * Whatever the parser accepts, the RelaxNG schema must accept as well, and
 * so must it the canonical form: a policy the parser takes but the schema
 * refuses means the parser is laxer than the language (issue 17: children
 * outside the namespace were skipped). The other way round, a standalone
 * policy the schema accepts may be refused only for one of the reasons no
 * grammar can express (semantic_refusals below); a domain's cross-checks
 * against the rest of its XML are not tried here, tests/policy/test-policy.c
 * holds every corpus entry to both directions. */
#include "ms-policy.h"
#include "policy-schema.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* MS_POLICY_RNG_PATH: the source tree's schema, set by tests/fuzz/meson.build;
 * MS_POLICY_RNG in the environment overrides it. */
static xmlRelaxNGPtr
schema(void)
{
    static xmlRelaxNGPtr s;
    if (s == NULL) {
        const char *path = g_getenv("MS_POLICY_RNG");
        s = ms_test_schema_load(path ? path : MS_POLICY_RNG_PATH);
        if (s == NULL) {
            g_printerr("fuzz-policy: cannot load the schema %s\n", path ? path : MS_POLICY_RNG_PATH);
            abort();
        }
    }
    return s;
}

static void
schema_must_accept(const char *what, const char *xml, size_t size, gboolean is_domain)
{
    g_autofree char *reason = NULL;
    MsSchemaVerdict v = ms_test_schema_judge(schema(), xml, size, is_domain, &reason);
    if (v != MS_SCHEMA_ACCEPTS) {
        g_printerr("the parser accepts %s, the schema %s (%s):\n%.*s\n", what,
                   ms_test_schema_verdict_name(v), reason ? reason : "", (int)MIN(size, 4096), xml);
        abort();
    }
}

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
    schema_must_accept("the canonical form", xml, strlen(xml), FALSE);
    g_autofree char *xml2 = ms_policy_to_xml(again);
    if (g_strcmp0(xml, xml2) != 0) {
        g_printerr("canonical XML is not a fixed point:\n%s---\n%s", xml, xml2);
        abort();
    }
    g_autoptr(MsPolicy) copy = ms_policy_copy(policy);
}

/* What only the parser checks in a standalone policy, as its messages
 * read (the '# semantic:' marks of tests/policy/cases say why for each). */
static const char *const semantic_refusals[] = {
    "^<[a-z-]+ [a-z-]+='.*'>: out of range \\([0-9a-z]+ to 1h\\)$",
    "^<[a-z-]+ [a-z-]+='.*'>: too large$",
    "^<tracking window='.*'>: shorter than the scan period \\([0-9a-z]+\\)$",
    "^<shared-image name='.*'>: named more than once$",
    "^<shared-image mount='.*'>: image '.*' is already mounted there$",
    "^<shared-image>: more than 16 shared images$",
    "^<[a-z-]+>: entity reference &.*; \\(write its content in place\\)$",
};

static void
schema_accepts_only_semantic(const char *xml, size_t size, const GError *error)
{
    if (error->code == MS_POLICY_ERROR_XML ||
        ms_test_schema_judge(schema(), xml, size, FALSE, NULL) != MS_SCHEMA_ACCEPTS)
        return;
    for (gsize i = 0; i < G_N_ELEMENTS(semantic_refusals); i++)
        if (g_regex_match_simple(semantic_refusals[i], error->message, G_REGEX_DOTALL, 0))
            return;
    g_printerr("the schema accepts the policy, the parser refuses it for a reason a grammar "
               "can express (%s):\n%.*s\n", error->message, (int)MIN(size, 4096), xml);
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *xml = (const char *)data;
    g_autoptr(GError) e1 = NULL, e2 = NULL;
    g_autoptr(MsPolicy) p1 = NULL, p2 = NULL;
    MsOnError on_error;

    if (ms_policy_parse_domain_xml(xml, size, MS_POLICY_CHECK_NONE, NULL, &p1, &on_error, &e1)) {
        if (p1) {
            schema_must_accept("the domain's policy", xml, size, TRUE);
            roundtrip(p1);
        }
    } else if (e1 == NULL) {
        abort();    /* FALSE must come with an error */
    }
    if (ms_policy_parse_standalone(xml, size, &p2, &e2)) {
        if (p2 == NULL)
            abort();
        schema_must_accept("the policy", xml, size, FALSE);
        roundtrip(p2);
    } else if (e2 == NULL) {
        abort();
    } else {
        schema_accepts_only_semantic(xml, size, e2);
    }
    return 0;
}
