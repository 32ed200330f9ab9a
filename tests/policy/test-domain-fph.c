/* tests/policy/test-domain-fph.c: policies/ms-domain-fph.c, the edit that
 * `memsharectl policy set --config` makes for <migration
 * free-page-hint='on'/>. Each result is read back by the policy parser
 * (ms_policy_parse_domain_xml's domain.free_page_hint: what the rest of
 * memshare believes), not by string comparison alone. */
#include "ms-domain-fph.h"
#include "ms-error.h"
#include "ms-policy.h"

#include <string.h>

#define POLICY "<metadata><memshare:policy xmlns:memshare='" MS_POLICY_NAMESPACE "'>" \
               "<memshare:migration free-page-hint='on'/></memshare:policy></metadata>"

/* domain XML with ATTRS on <domain>, TOP among its children, DEVICES */
static char *
domain3(const char *attrs, const char *top, const char *devices, const char *tail)
{
    return g_strdup_printf("<domain type='qemu'%s><name>fph1</name>"
                           "<uuid>3e1f8f0e-6b7c-4d2a-9c1e-5a7b2d3c4e01</uuid>"
                           "<memory unit='KiB'>524288</memory><currentMemory unit='KiB'>524288</currentMemory>"
                           "<vcpu>1</vcpu>%s<os><type arch='x86_64' machine='q35'>hvm</type></os>"
                           "<devices>%s</devices>" POLICY "%s</domain>",
                           attrs, top, devices, tail);
}

#define BALLOON "<memballoon model='virtio'><driver freePageReporting='on'/></memballoon>"

/* What the policy parser reads from XML: the domain fact. */
static gboolean
parser_sees_hint(const char *xml)
{
    g_autoptr(MsPolicy) p = NULL;
    g_autoptr(GError) error = NULL;
    gboolean ok = ms_policy_parse_domain_xml(xml, -1, MS_POLICY_CHECK_NONE, NULL, &p, NULL, &error);
    g_assert_no_error(error);
    g_assert_true(ok);
    g_assert_nonnull(p);
    return p->domain.free_page_hint;
}

static char *
set(const char *xml, gboolean on, gboolean *changed)
{
    g_autoptr(GError) error = NULL;
    char *out = ms_domain_set_free_page_hint(xml, -1, on, changed, &error);
    g_assert_no_error(error);
    g_assert_nonnull(out);
    return out;
}

static void
test_on_plain(void)
{
    g_autofree char *in = domain3("", "", BALLOON, "");
    gboolean changed = FALSE;
    g_assert_false(parser_sees_hint(in));
    g_autofree char *out = set(in, TRUE, &changed);
    g_assert_true(changed);
    g_assert_true(parser_sees_hint(out));
    /* QEMU 7.2 refuses the property without an iothread: one is added */
    g_assert_nonnull(strstr(out, "<iothreads>1</iothreads>"));
    g_assert_nonnull(strstr(out, "xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\""));
    g_assert_nonnull(strstr(out, "<qemu:device alias=\"balloon0\">"));
    g_assert_nonnull(strstr(out, "name=\"iothread\" type=\"string\" value=\"iothread1\""));
    g_assert_nonnull(strstr(out, "name=\"free-page-hint\" type=\"bool\" value=\"true\""));

    /* idempotent: a second set changes nothing */
    gboolean again = TRUE;
    g_autofree char *out2 = set(out, TRUE, &again);
    g_assert_false(again);
    g_assert_cmpstr(out2, ==, out);

    /* and off takes back exactly what on added, but the iothread */
    gboolean off_changed = FALSE;
    g_autofree char *off = set(out, FALSE, &off_changed);
    g_assert_true(off_changed);
    g_assert_false(parser_sees_hint(off));
    g_assert_null(strstr(off, "qemu:override"));
    g_assert_nonnull(strstr(off, "<iothreads>1</iothreads>"));
}

static void
test_existing_iothreads_and_override(void)
{
    /* the user's iothread ids and another override are kept; a
     * free-page-hint=false set by hand is turned on */
    g_autofree char *in = domain3(
        " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'",
        "<iothreads>2</iothreads><iothreadids><iothread id='5'/><iothread id='7'/></iothreadids>",
        BALLOON "<disk type='file' device='disk'><source file='/x.img'/><target dev='vda' bus='virtio'/>"
                "<alias name='ua-disk0'/></disk>",
        "<qemu:override><qemu:device alias='ua-disk0'><qemu:frontend>"
        "<qemu:property name='write-cache' type='string' value='off'/></qemu:frontend></qemu:device>"
        "<qemu:device alias='balloon0'><qemu:frontend>"
        "<qemu:property name='free-page-hint' type='bool' value='false'/>"
        "<qemu:property name='guest-stats-polling-interval' type='unsigned' value='5'/>"
        "</qemu:frontend></qemu:device></qemu:override>");
    g_assert_false(parser_sees_hint(in));
    gboolean changed = FALSE;
    g_autofree char *out = set(in, TRUE, &changed);
    g_assert_true(changed);
    g_assert_true(parser_sees_hint(out));
    g_assert_nonnull(strstr(out, "<iothreads>2</iothreads>"));
    g_assert_nonnull(strstr(out, "value=\"iothread5\""));
    g_assert_null(strstr(out, "value=\"false\""));
    g_assert_nonnull(strstr(out, "name=\"write-cache\""));
    /* one override element, not two */
    g_assert_null(strstr(strstr(out, "<qemu:override>") + 1, "<qemu:override>"));

    gboolean off_changed = FALSE;
    g_autofree char *off = set(out, FALSE, &off_changed);
    g_assert_true(off_changed);
    g_assert_false(parser_sees_hint(off));
    /* the balloon's other property and the disk's override stay */
    g_assert_nonnull(strstr(off, "guest-stats-polling-interval"));
    g_assert_nonnull(strstr(off, "name=\"write-cache\""));
}

static void
test_user_alias(void)
{
    g_autofree char *in = domain3("", "", "<memballoon model='virtio'><alias name='ua-balloon'/></memballoon>", "");
    gboolean changed = FALSE;
    g_autofree char *out = set(in, TRUE, &changed);
    g_assert_nonnull(strstr(out, "<qemu:device alias=\"ua-balloon\">"));
    g_assert_true(parser_sees_hint(out));
}

static void
test_off_without_override(void)
{
    g_autofree char *in = domain3("", "", BALLOON, "");
    gboolean changed = TRUE;
    g_autofree char *out = set(in, FALSE, &changed);
    g_assert_false(changed);
    g_assert_null(strstr(out, "iothreads"));
}

static void
test_refusals(void)
{
    static const struct {
        const char *devices;
        const char *message;
    } cases[] = {
        { "", "domain 'fph1': <migration free-page-hint='on'>: the domain has no virtio <memballoon> device" },
        { "<memballoon model='none'/>",
          "domain 'fph1': <migration free-page-hint='on'>: the domain has no virtio <memballoon> device" },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *in = domain3("", "", cases[i].devices, "");
        g_autoptr(GError) error = NULL;
        gboolean changed = TRUE;
        char *out = ms_domain_set_free_page_hint(in, -1, TRUE, &changed, &error);
        g_assert_null(out);
        g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
        g_assert_cmpstr(error->message, ==, cases[i].message);
        g_assert_false(changed);
    }
    static const struct {
        const char *xml;
        const char *message;
    } bad[] = {
        { "<domain><name>x</name", "domain XML: not well-formed" },
        { "<pool/>", "domain XML: the root element is not <domain>" },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;
        gboolean changed;
        g_assert_null(ms_domain_set_free_page_hint(bad[i].xml, -1, TRUE, &changed, &error));
        g_assert_cmpstr(error->message, ==, bad[i].message);
    }
    /* bounded: what no definition is */
    gsize n = 4 * 1024 * 1024 + 1;
    g_autofree char *huge = g_malloc(n + 1);
    memset(huge, ' ', n);
    huge[n] = '\0';
    g_autoptr(GError) error = NULL;
    gboolean changed;
    g_assert_null(ms_domain_set_free_page_hint(huge, -1, TRUE, &changed, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_TOO_BIG);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/domain-fph/on-plain", test_on_plain);
    g_test_add_func("/domain-fph/existing-iothreads-and-override", test_existing_iothreads_and_override);
    g_test_add_func("/domain-fph/user-alias", test_user_alias);
    g_test_add_func("/domain-fph/off-without-override", test_off_without_override);
    g_test_add_func("/domain-fph/refusals", test_refusals);
    return g_test_run();
}
