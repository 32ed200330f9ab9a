/* tests/qmp/test-images-bus.c: where the shared-image module hot-plugs its
 * devices, from query-pci replies recorded from QEMU 7.2 (q35, two PCIe
 * root ports, a balloon behind pci.1): before the guest firmware numbered
 * the buses QEMU cannot tell which port is occupied, afterwards it can. */
#include "ms-images.h"

static JsonNode *
load(const char *name)
{
    g_autofree char *path = g_test_build_filename(G_TEST_DIST, "data", name, NULL);
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(json_parser_load_from_file(p, path, &error));
    g_assert_no_error(error);
    return json_node_copy(json_parser_get_root(p));
}

static char *
joined(GPtrArray *a)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < a->len; i++)
        g_string_append_printf(s, "%s%s", i ? "," : "", (char *)g_ptr_array_index(a, i));
    return g_string_free(s, FALSE);
}

static void
test_enumerated(void)
{
    g_autoptr(JsonNode) n = load("query-pci-enumerated.json");
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) buses = ms_images_hotplug_buses(n, &error);
    g_assert_no_error(error);
    g_autofree char *s = joined(buses);
    /* pci.1 holds the balloon: never offered */
    g_assert_cmpstr(s, ==, "pci.2");
}

static void
test_unnumbered(void)
{
    g_autoptr(JsonNode) n = load("query-pci-unnumbered.json");
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) buses = ms_images_hotplug_buses(n, &error);
    g_assert_no_error(error);
    g_autofree char *s = joined(buses);
    /* unknown occupancy: both offered, device_add decides */
    g_assert_cmpstr(s, ==, "pci.1,pci.2");
}

static void
test_bad(void)
{
    const char *cases[] = {
        "{}", "[]", "[1]", "[{\"devices\": 3}]",
        "[{\"devices\": [{\"pci_bridge\": {}, \"qdev_id\": 7}]}]",
        "[{\"devices\": [{\"pci_bridge\": 1, \"qdev_id\": \"x\"}]}]",
        "[{\"devices\": [{\"pci_bridge\": {}, \"qdev_id\": \"\"}]}]",
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(JsonParser) p = json_parser_new();
        g_assert_true(json_parser_load_from_data(p, cases[i], -1, NULL));
        g_autoptr(GError) error = NULL;
        g_autoptr(GPtrArray) buses = ms_images_hotplug_buses(json_parser_get_root(p), &error);
        g_assert_null(buses);
        g_assert_nonnull(error);
        g_test_message("%s -> %s", cases[i], error->message);
    }
    /* a bridge without qdev id cannot be named in device_add */
    g_autoptr(GError) error = NULL;
    g_assert_null(ms_images_hotplug_buses(NULL, &error));
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/images/bus/enumerated", test_enumerated);
    g_test_add_func("/images/bus/unnumbered", test_unnumbered);
    g_test_add_func("/images/bus/bad", test_bad);
    return g_test_run();
}
