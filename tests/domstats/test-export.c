/* tests/domstats/test-export.c: formats/ms-export.c: typed field values,
 * Prometheus escaping and units, the stats element, the atomic textfile
 * writer. Status files come from the fixture runtime dir run/. */
#include "ms-export.h"
#include "ms-libvirt.h"
#include "ms-error.h"

#include <glib/gstdio.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <string.h>
#include <sys/stat.h>

#define UUID1 "6b1c4e2a-0f3d-4c51-9a7e-1d2f3b4c5d01"

static GKeyFile *
load_fixture(const char *uuid)
{
    g_autofree char *path = g_test_build_filename(G_TEST_DIST, "run", "domains", uuid, "status", NULL);
    GKeyFile *kf = g_key_file_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &error));
    g_assert_no_error(error);
    return kf;
}

static GKeyFile *
load_text(const char *text)
{
    GKeyFile *kf = g_key_file_new();
    g_assert_true(g_key_file_load_from_data(kf, text, -1, G_KEY_FILE_NONE, NULL));
    return kf;
}

static const MsExportField *
field(const char *group, const char *key)
{
    for (gsize i = 0; i < ms_export_n_fields; i++)
        if (g_str_equal(ms_export_fields[i].group, group) && g_str_equal(ms_export_fields[i].key, key))
            return &ms_export_fields[i];
    g_assert_not_reached();
}

static void
test_field_types(void)
{
    static const struct {
        const char *status, *group, *key, *want, *error;
    } cases[] = {
        { "[balloon]\ntarget= 42 \n", "balloon", "target", "42", NULL },
        { "[balloon]\ntarget=12GiB\n", "balloon", "target", NULL, "[balloon] target: '12GiB' is not an unsigned integer" },
        { "[balloon]\ntarget=-1\n", "balloon", "target", NULL, "is not an unsigned integer" },
        { "[balloon]\ntarget=18446744073709551616\n", "balloon", "target", NULL, "is not an unsigned integer" },
        { "[ksm]\nprofit=-8192\n", "ksm", "profit", "-8192", NULL },
        { "[ksm]\nprofit=1e3\n", "ksm", "profit", NULL, "[ksm] profit: '1e3' is not an integer" },
        { "[balloon]\nstuck=true\n", "balloon", "stuck", "yes", NULL },
        { "[balloon]\nstuck=0\n", "balloon", "stuck", "no", NULL },
        { "[balloon]\nstuck=maybe\n", "balloon", "stuck", NULL, "'maybe' is not a boolean" },
        /* absent: no value, no error */
        { "[balloon]\n", "balloon", "target", NULL, NULL },
        /* the balloon module's copy stands in for a missing [ksm] key */
        { "[balloon]\ncontribution=77\n", "ksm", "contribution", "77", NULL },
        { "[ksm]\ncontribution=5\n[balloon]\ncontribution=77\n", "ksm", "contribution", "5", NULL },
        { "[balloon]\nmaximum=1\n[domain]\nmemory=1024\n", "balloon", "maximum", "1024", NULL },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GKeyFile) kf = load_text(cases[i].status);
        g_autofree char *v = NULL;
        g_autoptr(GError) error = NULL;
        gboolean ok = ms_export_field_value(kf, field(cases[i].group, cases[i].key), &v, &error);
        if (cases[i].error) {
            g_assert_false(ok);
            g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
            g_assert_nonnull(strstr(error->message, cases[i].error));
        } else {
            g_assert_no_error(error);
            g_assert_true(ok);
            g_assert_cmpstr(v, ==, cases[i].want);
        }
    }
}

static void
test_table(void)
{
    /* a family's rows are adjacent (Prometheus wants a family's samples
     * together) and every exported field has help on its first row */
    g_autoptr(GHashTable) closed = g_hash_table_new(g_str_hash, g_str_equal);
    const char *cur = NULL;
    for (gsize i = 0; i < ms_export_n_fields; i++) {
        const MsExportField *f = &ms_export_fields[i];
        if (f->metric == NULL)
            continue;
        g_assert_true(f->type != MS_EXPORT_STR);
        if (g_strcmp0(cur, f->metric) != 0) {
            g_assert_false(g_hash_table_contains(closed, f->metric));
            g_assert_nonnull(f->help);
            if (cur)
                g_hash_table_add(closed, (gpointer)cur);
            cur = f->metric;
        }
        g_assert_true(g_str_has_prefix(f->metric, "memshare_"));
        if (f->counter)
            g_assert_true(g_str_has_suffix(f->metric, "_total"));
        else
            g_assert_false(g_str_has_suffix(f->metric, "_total"));
    }
}

static void
test_prometheus_escaping(void)
{
    g_autoptr(GKeyFile) kf = load_text("[agent]\ntransport=a\"b\\\\c\nticks=3\n[tracking]\nscan-us=12345\n");
    MsExportDomain d = { "we\"ird\\name\nx", UUID1, TRUE, kf };
    g_autoptr(GError) error = NULL;
    g_autofree char *text = ms_export_prometheus(&d, 1, &error);
    g_assert_no_error(error);
    g_assert_nonnull(strstr(text, "memshare_agent_up{domain=\"we\\\"ird\\\\name\\nx\",uuid=\"" UUID1 "\"} 1\n"));
    g_assert_nonnull(strstr(text, "transport=\"a\\\"b\\\\c\""));
    g_assert_nonnull(strstr(text, "# TYPE memshare_agent_ticks_total counter\n"));
    /* microseconds in the status, seconds in Prometheus */
    g_assert_nonnull(strstr(text, "memshare_tracking_scan_duration_seconds{domain=\"we\\\"ird\\\\name\\nx\",uuid=\"" UUID1
                                  "\"} 0.012345\n"));
    /* no raw newline inside a sample line */
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (gsize i = 0; lines[i]; i++)
        g_assert_true(lines[i][0] == '\0' || lines[i][0] == '#' || g_str_has_prefix(lines[i], "memshare_"));
}

static void
test_prometheus_invalid(void)
{
    g_autoptr(GKeyFile) good = load_fixture(UUID1);
    g_autoptr(GKeyFile) bad = load_text("[balloon]\nactual=lots\n");
    MsExportDomain d[2] = { { "web1", UUID1, TRUE, good }, { "bad", UUID1, TRUE, bad } };
    g_autoptr(GError) error = NULL;
    g_autofree char *text = ms_export_prometheus(d, 2, &error);
    g_assert_null(text);
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_cmpstr(error->message, ==, "status of domain 'bad': [balloon] actual: 'lots' is not an unsigned integer");
}

static void
test_textfile(void)
{
    g_autoptr(GKeyFile) kf = load_fixture(UUID1);
    MsExportDomain d = { "web1", UUID1, TRUE, kf };
    g_autoptr(GError) error = NULL;
    g_autofree char *dir = g_dir_make_tmp("ms-export-XXXXXX", &error);
    g_assert_no_error(error);

    g_assert_true(ms_export_write_prometheus_file(dir, &d, &error));
    g_assert_no_error(error);
    /* written twice: replaced, not appended */
    g_assert_true(ms_export_write_prometheus_file(dir, &d, &error));
    g_autofree char *path = g_build_filename(dir, "memshare-" UUID1 ".prom", NULL);
    g_autofree char *got = NULL;
    g_assert_true(g_file_get_contents(path, &got, NULL, NULL));
    g_autofree char *want = ms_export_prometheus(&d, 1, NULL);
    g_assert_cmpstr(got, ==, want);
    GStatBuf st;
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_mode & 0777, ==, 0644);
    /* only the .prom file: no temporary left behind */
    g_autoptr(GDir) dd = g_dir_open(dir, 0, NULL);
    int n = 0;
    for (const char *e; (e = g_dir_read_name(dd)) != NULL;)
        n++;
    g_assert_cmpint(n, ==, 1);

    /* a uuid becomes a file name: anything else is refused */
    MsExportDomain evil = { "evil", "../../etc/passwd", TRUE, kf };
    g_assert_false(ms_export_write_prometheus_file(dir, &evil, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "'../../etc/passwd'"));
    g_clear_error(&error);

    g_autofree char *missing = g_build_filename(dir, "no-such-dir", NULL);
    g_assert_false(ms_export_write_prometheus_file(missing, &d, &error));
    g_assert_nonnull(error);
    g_assert_nonnull(strstr(error->message, missing));
    g_clear_error(&error);

    g_assert_true(ms_export_remove_prometheus_file(dir, UUID1, &error));
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_assert_true(ms_export_remove_prometheus_file(dir, UUID1, &error));
    g_assert_no_error(error);
    g_assert_cmpint(g_rmdir(dir), ==, 0);
}

static void
test_stats_xml(void)
{
    g_autoptr(GKeyFile) kf = load_text("[balloon]\ntarget=10\nstuck=false\nerror=a<b&'c'\\x\x01\n"
                                       "[ksm]\nprofit=-1\n");
    MsExportDomain d = { "x", UUID1, FALSE, kf };
    g_autoptr(GError) error = NULL;
    g_autofree char *xml = ms_export_stats_xml(&d, 1795000000, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(xml, ==,
                    "<stats xmlns=\"https://memshare.dev/xmlns/stats/1.0\" time=\"1795000000\" state=\"stale\">\n"
                    "  <ksm profit=\"-1\"/>\n"
                    "  <balloon target=\"10\" stuck=\"no\" error=\"a&lt;b&amp;'c'\\x?\"/>\n"
                    "</stats>");

    g_autoptr(GKeyFile) bad = load_text("[tracking]\nused=x\n");
    MsExportDomain b = { "bad", UUID1, TRUE, bad };
    g_autofree char *none = ms_export_stats_xml(&b, 0, &error);
    g_assert_null(none);
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "domain 'bad': [tracking] used"));
}

static void
test_config(void)
{
    static const struct {
        const char *conf; /* NULL: no config file */
        const char *dir;
        gboolean metadata;
        const char *error;
    } cases[] = {
        { NULL, NULL, TRUE, NULL },
        { "[agent]\nlauncher=auto\n", NULL, TRUE, NULL },
        { "[stats]\nprometheus-dir= /var/lib/prometheus/node-exporter \n", "/var/lib/prometheus/node-exporter",
          TRUE, NULL },
        { "[stats]\nprometheus-dir=\nmetadata=false\n", NULL, FALSE, NULL },
        { "[stats]\nprometheus-dir=node-exporter\n", NULL, TRUE,
          "[stats] prometheus-dir='node-exporter': must be an absolute path" },
        { "[stats]\nmetadata=sometimes\n", NULL, TRUE, "[stats] metadata='sometimes': expected true or false" },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GKeyFile) kf = cases[i].conf ? load_text(cases[i].conf) : NULL;
        g_auto(MsExportConfig) c = { 0 };
        g_autoptr(GError) error = NULL;
        gboolean ok = ms_export_config_load(kf, &c, &error);
        if (cases[i].error) {
            g_assert_false(ok);
            g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
            g_assert_nonnull(strstr(error->message, cases[i].error));
            g_assert_null(c.prometheus_dir);
        } else {
            g_assert_no_error(error);
            g_assert_cmpstr(c.prometheus_dir, ==, cases[i].dir);
            g_assert_cmpint(c.metadata, ==, cases[i].metadata);
        }
    }
}

static void
ms_test_quiet_libvirt(void *opaque, virErrorPtr err)
{
}

/* libvirt's test driver keeps live metadata like the qemu driver: set the
 * element, read it back as `virsh metadata` does, validate it. */
static void
test_metadata(void)
{
    virSetErrorFunc(NULL, ms_test_quiet_libvirt);
    virConnectPtr conn = virConnectOpen("test:///default");
    g_assert_nonnull(conn);
    virDomainPtr dom = virDomainLookupByName(conn, "test");
    g_assert_nonnull(dom);

    g_autoptr(GKeyFile) kf = load_fixture(UUID1);
    MsExportDomain d = { "test", UUID1, TRUE, kf };
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_libvirt_set_stats_metadata(dom, &d, 1795000000, &error));
    g_assert_no_error(error);

    char *got = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, MS_EXPORT_STATS_NS, VIR_DOMAIN_AFFECT_LIVE);
    g_assert_nonnull(got);
    g_assert_nonnull(strstr(got, "<balloon "));
    g_assert_nonnull(strstr(got, "target=\"872415232\""));

    g_autofree char *rng = g_test_build_filename(G_TEST_DIST, "..", "..", "xml-schemas", "memshare-stats.rng",
                                                 NULL);
    xmlRelaxNGParserCtxtPtr pctx = xmlRelaxNGNewParserCtxt(rng);
    xmlRelaxNGPtr schema = xmlRelaxNGParse(pctx);
    g_assert_nonnull(schema);
    xmlRelaxNGValidCtxtPtr vctx = xmlRelaxNGNewValidCtxt(schema);
    xmlDocPtr doc = xmlReadMemory(got, strlen(got), "metadata.xml", NULL, XML_PARSE_NONET);
    g_assert_nonnull(doc);
    g_assert_cmpint(xmlRelaxNGValidateDoc(vctx, doc), ==, 0);
    xmlFreeDoc(doc);
    xmlRelaxNGFreeValidCtxt(vctx);
    xmlRelaxNGFree(schema);
    xmlRelaxNGFreeParserCtxt(pctx);
    free(got);

    /* the live XML (virsh dumpxml) keeps it in its namespace */
    char *live = virDomainGetXMLDesc(dom, 0);
    g_assert_nonnull(live);
    g_assert_nonnull(strstr(live, "<stats xmlns=\"" MS_EXPORT_STATS_NS "\""));
    free(live);

    /* live only: the persistent definition stays clean */
    char *cfg = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, MS_EXPORT_STATS_NS, VIR_DOMAIN_AFFECT_CONFIG);
    g_assert_null(cfg);

    /* an invalid status is not published, and says which domain */
    g_autoptr(GKeyFile) bad = load_text("[balloon]\ntarget=x\n");
    MsExportDomain b = { "test", UUID1, TRUE, bad };
    g_assert_false(ms_libvirt_set_stats_metadata(dom, &b, 1, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_clear_error(&error);

    /* libvirt's refusal is reported with the domain named */
    virDomainDestroy(dom);
    g_assert_false(ms_libvirt_set_stats_metadata(dom, &d, 1, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_FAILED);
    g_assert_nonnull(strstr(error->message, "cannot set the stats metadata of domain 'test': "));
    virDomainFree(dom);
    virConnectClose(conn);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/export/field-types", test_field_types);
    g_test_add_func("/export/table", test_table);
    g_test_add_func("/export/prometheus-escaping", test_prometheus_escaping);
    g_test_add_func("/export/prometheus-invalid", test_prometheus_invalid);
    g_test_add_func("/export/textfile", test_textfile);
    g_test_add_func("/export/stats-xml", test_stats_xml);
    g_test_add_func("/export/config", test_config);
    g_test_add_func("/export/metadata", test_metadata);
    return g_test_run();
}
