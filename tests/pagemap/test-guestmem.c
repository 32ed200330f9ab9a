/* tests/pagemap/test-guestmem.c: unit tests of qmp-plugin/ms-guestmem:
 * the q35/pc RAM layout (tables of cases from QEMU 7.2's rules), QMP reply
 * parsing, and mapping discovery on fixture trees in discover/CASE/ (each
 * case: memdevs.json, proc/4242/{maps,smaps}, expected). Adding a discovery
 * case means adding a directory. */
#include <glib.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "ms-guestmem.h"

#define GiB (G_GUINT64_CONSTANT(1) << 30)
#define MiB (G_GUINT64_CONSTANT(1) << 20)
#define FIXTURE_PID 4242

typedef struct {
    MsGuestMemMachine machine;
    guint64 ram;
    guint64 max_below;
    guint64 below;
    guint64 above;
} LayoutCase;

static void
test_layout_split(void)
{
    static const LayoutCase cases[] = {
        /* q35: everything below 4 GiB while RAM < 2.75 GiB */
        { MS_GUESTMEM_MACHINE_Q35, 1 * GiB, 0, 1 * GiB, 0 },
        { MS_GUESTMEM_MACHINE_Q35, 0xb0000000 - 4096, 0, 0xb0000000 - 4096, 0 },
        /* ... and a 2 GiB split from 2.75 GiB on */
        { MS_GUESTMEM_MACHINE_Q35, 0xb0000000, 0, 2 * GiB, 0x30000000 },
        { MS_GUESTMEM_MACHINE_Q35, 4 * GiB, 0, 2 * GiB, 2 * GiB },
        { MS_GUESTMEM_MACHINE_Q35, 16 * GiB, 0, 2 * GiB, 14 * GiB },
        /* max-ram-below-4g lowers the split */
        { MS_GUESTMEM_MACHINE_Q35, 2 * GiB, 1 * GiB, 1 * GiB, 1 * GiB },
        { MS_GUESTMEM_MACHINE_Q35, 4 * GiB, 1 * GiB, 1 * GiB, 3 * GiB },
        /* pc (i440fx): 3.5 GiB fits, from 3.5 GiB on the split is 3 GiB */
        { MS_GUESTMEM_MACHINE_PC, 3 * GiB, 0, 3 * GiB, 0 },
        { MS_GUESTMEM_MACHINE_PC, 0xe0000000 - 4096, 0, 0xe0000000 - 4096, 0 },
        { MS_GUESTMEM_MACHINE_PC, 0xe0000000, 0, 3 * GiB, 0x20000000 },
        { MS_GUESTMEM_MACHINE_PC, 4 * GiB, 0, 3 * GiB, 1 * GiB },
        { MS_GUESTMEM_MACHINE_PC, 4 * GiB, 2 * GiB, 2 * GiB, 2 * GiB },
        /* max-ram-below-4g=4G raises it (legacy non-PAE guests) */
        { MS_GUESTMEM_MACHINE_PC, 3968 * MiB, 4 * GiB, 3968 * MiB, 0 },
        { MS_GUESTMEM_MACHINE_FLAT, 8 * GiB, 0, 8 * GiB, 0 },
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        const LayoutCase *c = &cases[i];
        MsGuestMemLayout l;
        g_autoptr(GError) error = NULL;
        g_test_message("case %u: machine %d ram %" G_GUINT64_FORMAT, i, c->machine, c->ram);
        g_assert_true(ms_guestmem_layout_init(&l, c->machine, c->ram, c->max_below, &error));
        g_assert_no_error(error);
        g_assert_cmpuint(l.below_4g, ==, c->below);
        g_assert_cmpuint(l.above_4g, ==, c->above);
        g_assert_cmpuint(l.below_4g + l.above_4g, ==, c->ram);
    }
}

static void
test_layout_gpa(void)
{
    MsGuestMemLayout l;
    guint64 gpa = 0;
    g_assert_true(ms_guestmem_layout_init(&l, MS_GUESTMEM_MACHINE_Q35, 4 * GiB, 0, NULL));
    g_assert_true(ms_guestmem_layout_ram_to_gpa(&l, 0, &gpa));
    g_assert_cmpuint(gpa, ==, 0);
    g_assert_true(ms_guestmem_layout_ram_to_gpa(&l, 2 * GiB - 4096, &gpa));
    g_assert_cmpuint(gpa, ==, 2 * GiB - 4096);
    g_assert_true(ms_guestmem_layout_ram_to_gpa(&l, 2 * GiB, &gpa));
    g_assert_cmpuint(gpa, ==, 4 * GiB);
    g_assert_true(ms_guestmem_layout_ram_to_gpa(&l, 4 * GiB - 4096, &gpa));
    g_assert_cmpuint(gpa, ==, 6 * GiB - 4096);
    g_assert_false(ms_guestmem_layout_ram_to_gpa(&l, 4 * GiB, &gpa));

    /* Two NUMA cells of 2 GiB: the second lies wholly above 4 GiB; one
     * cell of 1 GiB + one of 3 GiB: the second straddles the split. */
    g_autoptr(GArray) e1 = ms_guestmem_layout_extents(&l, 2 * GiB, 2 * GiB);
    g_assert_cmpuint(e1->len, ==, 1);
    g_assert_cmpuint(g_array_index(e1, MsGuestMemExtent, 0).gpa, ==, 4 * GiB);
    g_autoptr(GArray) e2 = ms_guestmem_layout_extents(&l, 1 * GiB, 3 * GiB);
    g_assert_cmpuint(e2->len, ==, 2);
    MsGuestMemExtent *a = &g_array_index(e2, MsGuestMemExtent, 0);
    MsGuestMemExtent *b = &g_array_index(e2, MsGuestMemExtent, 1);
    g_assert_cmpuint(a->gpa, ==, 1 * GiB);
    g_assert_cmpuint(a->length, ==, 1 * GiB);
    g_assert_cmpuint(b->gpa, ==, 4 * GiB);
    g_assert_cmpuint(b->ram_offset, ==, 2 * GiB);
    g_assert_cmpuint(b->length, ==, 2 * GiB);

    g_autoptr(GError) error = NULL;
    g_assert_false(ms_guestmem_layout_init(&l, MS_GUESTMEM_MACHINE_Q35, 4 * GiB,
                                           5 * GiB, &error));
    g_assert_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID);
}

static void
test_machine_type(void)
{
    g_assert_cmpint(ms_guestmem_machine_from_type("pc-q35-7.2-machine"), ==, MS_GUESTMEM_MACHINE_Q35);
    g_assert_cmpint(ms_guestmem_machine_from_type("q35"), ==, MS_GUESTMEM_MACHINE_Q35);
    g_assert_cmpint(ms_guestmem_machine_from_type("pc-i440fx-7.2-machine"), ==, MS_GUESTMEM_MACHINE_PC);
    g_assert_cmpint(ms_guestmem_machine_from_type("pc"), ==, MS_GUESTMEM_MACHINE_PC);
    g_assert_cmpint(ms_guestmem_machine_from_type("microvm"), ==, MS_GUESTMEM_MACHINE_FLAT);
    g_assert_cmpint(ms_guestmem_machine_from_type(NULL), ==, MS_GUESTMEM_MACHINE_FLAT);
}

static JsonNode *
parse_json(const char *text)
{
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) error = NULL;
    g_assert_true(json_parser_load_from_data(p, text, -1, &error));
    return json_node_copy(json_parser_get_root(p));
}

static void
test_memdevs_json(void)
{
    g_autoptr(GError) error = NULL;
    JsonNode *n = parse_json("[{\"size\": 1073741824, \"merge\": true, \"dump\": true,"
                             " \"prealloc\": false, \"share\": false, \"host-nodes\": [],"
                             " \"policy\": \"default\", \"id\": \"pc.ram\", \"future\": 1},"
                             " {\"size\": 67108864, \"merge\": false, \"share\": true}]");
    g_autoptr(GPtrArray) mds = ms_guestmem_memdevs_from_json(n, &error);
    json_node_unref(n);
    g_assert_no_error(error);
    g_assert_cmpuint(mds->len, ==, 2);
    MsGuestMemdev *m0 = g_ptr_array_index(mds, 0), *m1 = g_ptr_array_index(mds, 1);
    g_assert_cmpstr(m0->id, ==, "pc.ram");
    g_assert_cmpuint(m0->size, ==, GiB);
    g_assert_true(m0->merge);
    g_assert_false(m0->share);
    g_assert_cmpstr(m1->id, ==, "memdev #1");
    g_assert_true(m1->share);

    static const struct { const char *json; const char *msg; } bad[] = {
        { "{}", "not an array" },
        { "[1]", "entry 0 is not an object" },
        { "[{\"id\": \"m\", \"merge\": true, \"share\": false}]", "memdev 'm' has no integer 'size'" },
        { "[{\"id\": \"m\", \"size\": \"1G\", \"merge\": true, \"share\": false}]", "no integer 'size'" },
        { "[{\"id\": \"m\", \"size\": -4096, \"merge\": true, \"share\": false}]", "size -4096" },
        { "[{\"id\": \"m\", \"size\": 4097, \"merge\": true, \"share\": false}]", "size 4097" },
        { "[{\"id\": \"m\", \"size\": 4096, \"share\": false}]", "no boolean 'merge'" },
        { "[{\"id\": \"m\", \"size\": 4096, \"merge\": true}]", "no boolean 'share'" },
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) e = NULL;
        JsonNode *b = parse_json(bad[i].json);
        g_autoptr(GPtrArray) r = ms_guestmem_memdevs_from_json(b, &e);
        json_node_unref(b);
        g_assert_null(r);
        g_assert_error(e, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID);
        if (!strstr(e->message, bad[i].msg))
            g_error("case %u: '%s' lacks '%s'", i, e->message, bad[i].msg);
    }
}

static void
test_drop_device_backed(void)
{
    JsonNode *n = parse_json("[{\"id\": \"pc.ram\", \"size\": 1073741824, \"merge\": true, \"share\": false},"
                             " {\"id\": \"img0\", \"size\": 67108864, \"merge\": false, \"share\": true}]");
    g_autoptr(GPtrArray) mds = ms_guestmem_memdevs_from_json(n, NULL);
    json_node_unref(n);
    g_assert_nonnull(mds);
    JsonNode *devs = parse_json("[{\"type\": \"virtio-pmem\", \"data\": {\"id\": \"pmem0\","
                                " \"memaddr\": 4294967296, \"size\": 67108864,"
                                " \"memdev\": \"/objects/img0\"}}]");
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_guestmem_memdevs_drop_device_backed(mds, devs, &error));
    json_node_unref(devs);
    g_assert_cmpuint(mds->len, ==, 1);
    g_assert_cmpstr(((MsGuestMemdev *)g_ptr_array_index(mds, 0))->id, ==, "pc.ram");
}

/* ---- discovery fixtures ---- */

typedef struct {
    JsonObject *choices;   /* memdev id -> hex start of the right mapping */
    guint calls;
} Chooser;

static gint
choose_by_fixture(const MsGuestMemdev *memdev, guint64 ram_offset,
                  GPtrArray *candidates, gpointer user_data, GError **error)
{
    Chooser *ch = user_data;
    ch->calls++;
    const char *want = json_object_has_member(ch->choices, memdev->id)
                       ? json_object_get_string_member(ch->choices, memdev->id) : NULL;
    for (guint i = 0; want && i < candidates->len; i++) {
        MsGuestMemCandidate *c = g_ptr_array_index(candidates, i);
        if (c->start == g_ascii_strtoull(want, NULL, 16))
            return (gint)i;
    }
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "fixture has no choice for '%s'",
                memdev->id);
    return -1;
}

static MsGuestMemBackend
backend_from_name(const char *name)
{
    if (g_str_equal(name, "memory-backend-ram"))
        return MS_GUESTMEM_BACKEND_RAM;
    if (g_str_equal(name, "memory-backend-memfd"))
        return MS_GUESTMEM_BACKEND_MEMFD;
    if (g_str_equal(name, "memory-backend-file"))
        return MS_GUESTMEM_BACKEND_FILE;
    g_error("unknown backend type '%s' in fixture", name);
}

static void
test_discover_case(gconstpointer data)
{
    const char *name = data;
    g_autofree char *dir = g_test_build_filename(G_TEST_DIST, "discover", name, NULL);
    g_autofree char *spec_path = g_build_filename(dir, "memdevs.json", NULL);
    g_autofree char *proc = g_build_filename(dir, "proc", NULL);
    g_autofree char *exp_path = g_build_filename(dir, "expected", NULL);
    g_autofree char *expected = NULL;
    g_assert_true(g_file_get_contents(exp_path, &expected, NULL, NULL));

    g_autoptr(JsonParser) parser = json_parser_new();
    g_assert_true(json_parser_load_from_file(parser, spec_path, NULL));
    JsonObject *spec = json_node_get_object(json_parser_get_root(parser));
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) mds =
        ms_guestmem_memdevs_from_json(json_object_get_member(spec, "query-memdev"), &error);
    g_assert_no_error(error);
    if (json_object_has_member(spec, "backends")) {
        JsonObject *be = json_object_get_object_member(spec, "backends");
        for (guint i = 0; i < mds->len; i++) {
            MsGuestMemdev *md = g_ptr_array_index(mds, i);
            JsonObject *o = json_object_get_object_member(be, md->id);
            if (!o)
                continue;
            md->backend = backend_from_name(json_object_get_string_member(o, "type"));
            if (json_object_has_member(o, "mem-path"))
                md->mem_path = g_strdup(json_object_get_string_member(o, "mem-path"));
        }
    }
    Chooser ch = { 0 };
    MsGuestMemDisambiguateFunc cb = NULL;
    if (json_object_has_member(spec, "disambiguate")) {
        ch.choices = json_object_get_object_member(spec, "disambiguate");
        cb = choose_by_fixture;
    }

    g_autoptr(GPtrArray) blocks = ms_guestmem_discover(FIXTURE_PID, mds, proc, cb, &ch, &error);

    if (g_str_has_prefix(expected, "error ")) {
        /* "error CODE fragment|fragment|..." */
        g_strchomp(expected);
        g_auto(GStrv) head = g_strsplit(expected + 6, " ", 2);
        g_assert_null(blocks);
        g_assert_nonnull(error);
        g_test_message("%s", error->message);
        g_assert_true(error->domain == MS_GUESTMEM_ERROR);
        if (g_str_equal(head[0], "ambiguous"))
            g_assert_cmpint(error->code, ==, MS_GUESTMEM_ERROR_AMBIGUOUS);
        else if (g_str_equal(head[0], "not-found"))
            g_assert_cmpint(error->code, ==, MS_GUESTMEM_ERROR_NOT_FOUND);
        else
            g_error("bad expected code '%s'", head[0]);
        g_auto(GStrv) frags = g_strsplit(head[1], "|", -1);
        for (guint i = 0; frags[i]; i++)
            if (!strstr(error->message, frags[i]))
                g_error("error '%s' lacks '%s'", error->message, frags[i]);
        return;
    }
    g_assert_no_error(error);
    g_auto(GStrv) lines = g_strsplit(g_strchomp(expected), "\n", -1);
    g_assert_cmpuint(blocks->len, ==, g_strv_length(lines));
    for (guint i = 0; i < blocks->len; i++) {
        MsGuestMemBlock *b = g_ptr_array_index(blocks, i);
        g_autofree char *got =
            g_strdup_printf("%s %" G_GINT64_MODIFIER "x %" G_GINT64_MODIFIER "x %"
                            G_GUINT64_FORMAT " %s", b->memdev_id, b->ram_offset,
                            b->host_start, b->kernel_page_size, b->mergeable ? "mg" : "-");
        g_assert_cmpstr(got, ==, lines[i]);
    }
    if (cb)
        g_assert_cmpuint(ch.calls, ==, 1);
}

static void
test_discover_missing_process(void)
{
    g_autoptr(GPtrArray) mds = g_ptr_array_new_with_free_func((GDestroyNotify)ms_guestmem_memdev_free);
    MsGuestMemdev *md = g_new0(MsGuestMemdev, 1);
    md->id = g_strdup("pc.ram");
    md->size = GiB;
    g_ptr_array_add(mds, md);
    g_autofree char *proc = g_test_build_filename(G_TEST_DIST, "discover", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) blocks = ms_guestmem_discover(999999, mds, proc, NULL, NULL, &error);
    g_assert_null(blocks);
    g_assert_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_IO);
    g_assert_nonnull(strstr(error->message, "999999"));
}

static void
test_parse_maps_bad(void)
{
    static const char *const bad[] = {
        "not a maps line\n",
        "7f00-7e00 rw-p 00000000 00:00 0\n",       /* end before start */
        "7f00000000-7f00001000 rw\n",               /* truncated */
        "7f00000000-7f00001000 rw-p\n",
    };
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;
        g_autoptr(GPtrArray) r = ms_guestmem_parse_maps(bad[i], strlen(bad[i]), NULL, 0, &error);
        g_assert_null(r);
        g_assert_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID);
    }
    /* A path with spaces stays whole. */
    const char *ok = "7f0000000000-7f0000100000 rw-s 00000000 fd:01 12 /srv/my images/a b.img (deleted)\n";
    g_autoptr(GPtrArray) r = ms_guestmem_parse_maps(ok, strlen(ok), NULL, 0, NULL);
    g_assert_nonnull(r);
    g_assert_cmpuint(r->len, ==, 1);
    g_assert_cmpstr(((MsGuestMemCandidate *)g_ptr_array_index(r, 0))->path, ==,
                    "/srv/my images/a b.img (deleted)");
}

static gint
cmp_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/guestmem/layout/split", test_layout_split);
    g_test_add_func("/guestmem/layout/gpa", test_layout_gpa);
    g_test_add_func("/guestmem/layout/machine-type", test_machine_type);
    g_test_add_func("/guestmem/json/memdevs", test_memdevs_json);
    g_test_add_func("/guestmem/json/drop-device-backed", test_drop_device_backed);
    g_test_add_func("/guestmem/maps/bad", test_parse_maps_bad);
    g_test_add_func("/guestmem/discover/missing-process", test_discover_missing_process);

    g_autofree char *dir = g_test_build_filename(G_TEST_DIST, "discover", NULL);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    g_assert_nonnull(d);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(d)))
        g_ptr_array_add(names, g_strdup(name));
    g_ptr_array_sort(names, cmp_names);
    for (guint i = 0; i < names->len; i++) {
        const char *n = g_ptr_array_index(names, i);
        g_autofree char *path = g_strdup_printf("/guestmem/discover/%s", n);
        g_test_add_data_func(path, n, test_discover_case);
    }
    return g_test_run();
}
