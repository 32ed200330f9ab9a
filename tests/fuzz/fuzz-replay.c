/* tests/fuzz/fuzz-replay.c: runs a fuzz target's LLVMFuzzerTestOneInput on
 * every file of its corpus, without libFuzzer, so that the seed corpora (and
 * any crash reproducer added to them) are regression tests in the unit
 * suite with any compiler. TAP: one test per file.
 *   usage: fuzz-replay-NAME CORPUS_DIR */
#include <glib.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static gint
compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
replay(gconstpointer data)
{
    const char *path = data;
    g_autofree char *buf = NULL;
    gsize len = 0;
    g_autoptr(GError) error = NULL;

    if (!g_file_get_contents(path, &buf, &len, &error))
        g_error("%s", error->message);
    /* An exact-size copy, so that ASan/valgrind see reads past the end. */
    g_autofree uint8_t *copy = g_memdup2(buf, len);
    g_assert_cmpint(LLVMFuzzerTestOneInput(copy, len), ==, 0);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    g_autoptr(GError) error = NULL;
    g_autoptr(GDir) dir = g_dir_open(argv[1], 0, &error);
    if (dir == NULL)
        g_error("%s", error->message);
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    for (const char *n; (n = g_dir_read_name(dir)) != NULL;)
        g_ptr_array_add(files, g_build_filename(argv[1], n, NULL));
    g_ptr_array_sort(files, compare_names);
    if (files->len == 0)
        g_error("%s: empty corpus", argv[1]);
    for (guint i = 0; i < files->len; i++) {
        const char *path = g_ptr_array_index(files, i);
        g_autofree char *base = g_path_get_basename(path);
        g_autofree char *name = g_strdup_printf("/fuzz-replay/%s", base);
        g_test_add_data_func(name, path, replay);
    }
    return g_test_run();
}
