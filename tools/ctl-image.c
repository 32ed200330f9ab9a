/* tools/ctl-image.c: memsharectl image: build images into the store, list,
 * inspect, verify and remove them. The work is in images/ (builder, store);
 * this file owns the command line, the output format and the exit codes
 * (tools/ctl.h). `image advise` lives in ctl-advise.c. */
#include "ctl.h"
#include "ms-error.h"
#include "ms-image-build.h"
#include "ms-image-store.h"
#include "ms-util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_LIST_MAX (64 * 1024 * 1024)

static int
exit_code(const GError *e)
{
    if (e == NULL || e->domain != MS_ERROR)
        return MS_CTL_EXIT_FAILURE;
    switch (e->code) {
    case MS_ERROR_INVALID:
    case MS_ERROR_TOO_BIG:
        return MS_CTL_EXIT_INVALID;
    case MS_ERROR_NOT_FOUND:
        return MS_CTL_EXIT_NOT_FOUND;
    default:
        return MS_CTL_EXIT_FAILURE;
    }
}

/* "123", "64K", "100M", "2G", "1T" with optional "iB"/"B": binary units. */
static gboolean
parse_size(const char *s, guint64 *out, GError **error)
{
    char *end = NULL;
    if (s == NULL || !g_ascii_isdigit(*s)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "size '%s' is not a number", s ? s : "");
        return FALSE;
    }
    errno = 0;
    guint64 v = g_ascii_strtoull(s, &end, 10);
    guint shift = 0;
    if (errno == 0 && *end) {
        switch (g_ascii_toupper(*end)) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        case 'B': shift = 0; end--; break;
        default: shift = 64; break;
        }
        end++;
        if (g_ascii_strcasecmp(end, "iB") == 0 || g_ascii_strcasecmp(end, "B") == 0)
            end += strlen(end);
    }
    if (errno || *end || shift >= 64 || (shift && v > (G_MAXUINT64 >> shift))) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "size '%s' is not a size (bytes, or a number with K, M, G or T)", s);
        return FALSE;
    }
    *out = v << shift;
    return TRUE;
}

static char *
human(guint64 b)
{
    const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = b;
    guint i = 0;
    while (v >= 1024 && i < G_N_ELEMENTS(u) - 1) {
        v /= 1024;
        i++;
    }
    return i == 0 ? g_strdup_printf("%" G_GUINT64_FORMAT " B", b) : g_strdup_printf("%.1f %s", v, u[i]);
}

static char *
store_path(const char *opt)
{
    return opt && *opt ? g_strdup(opt) : ms_image_store_default_path();
}

static gboolean
parse_opts(const char *sub, const char *params, GOptionEntry *entries, int *argc, char ***argv)
{
    g_autofree char *p = g_strdup_printf("%s - memsharectl image %s", params, sub);
    g_autoptr(GOptionContext) ctx = g_option_context_new(p);
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(ctx, argc, argv, &error)) {
        g_printerr("memsharectl image %s: %s\n", sub, error->message);
        return FALSE;
    }
    return TRUE;
}

static int
cmd_build(int argc, char **argv)
{
    g_autofree char *from = NULL, *name = NULL, *max_size = NULL, *store = NULL, *paths_from = NULL;
    gint64 epoch = 0;
    gboolean clamp = FALSE;
    GOptionEntry entries[] = {
        { "from", 0, 0, G_OPTION_ARG_FILENAME, &from, "the source tree", "DIR" },
        { "name", 0, 0, G_OPTION_ARG_STRING, &name, "image name (default: the source's base name)", "NAME" },
        { "max-size", 0, 0, G_OPTION_ARG_STRING, &max_size, "refuse trees whose image is larger", "SIZE" },
        { "paths-from", 0, 0, G_OPTION_ARG_FILENAME, &paths_from,
          "read the PATH list from FILE, one per line (as `image advise -o` writes it)", "FILE" },
        { "epoch", 0, 0, G_OPTION_ARG_INT64, &epoch,
          "timestamp of every inode (default $SOURCE_DATE_EPOCH, else 1)", "SECONDS" },
        { "clamp-mtime", 0, 0, G_OPTION_ARG_NONE, &clamp, "keep source mtimes older than the epoch", NULL },
        { "store", 0, 0, G_OPTION_ARG_FILENAME, &store, "image store (default from memshare.conf)", "DIR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse_opts("build", "--from DIR [PATH...]", entries, &argc, &argv))
        return MS_CTL_EXIT_USAGE;
    if (from == NULL) {
        g_printerr("memsharectl image build: --from DIR is required\n");
        return MS_CTL_EXIT_USAGE;
    }
    if (name == NULL) {
        g_autofree char *canon = g_canonicalize_filename(from, NULL);
        name = g_path_get_basename(canon);
    }
    if (!ms_image_name_is_valid(name)) {
        g_printerr("memsharectl image build: '%s' is not a valid image name (letters, digits, '.', '_', '-'; "
                   "first a letter or digit; at most 64); use --name\n", name);
        return MS_CTL_EXIT_USAGE;
    }
    g_autoptr(GError) error = NULL;
    MsImageBuildOptions opts = { 0 };
    if (max_size && !parse_size(max_size, &opts.max_size, &error)) {
        g_printerr("memsharectl image build: --max-size: %s\n", error->message);
        return MS_CTL_EXIT_USAGE;
    }
    g_autoptr(GStrvBuilder) pb = g_strv_builder_new();
    for (int i = 1; i < argc; i++)
        g_strv_builder_add(pb, argv[i]);
    if (paths_from) {
        g_autofree char *text = NULL;
        if (!ms_file_read_bounded(paths_from, PATH_LIST_MAX, &text, NULL, &error)) {
            g_printerr("memsharectl image build: --paths-from: %s\n", error->message);
            return MS_CTL_EXIT_INVALID;
        }
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        for (guint i = 0; lines[i]; i++)
            if (*lines[i] && *lines[i] != '#')
                g_strv_builder_add(pb, lines[i]);
    }
    g_auto(GStrv) paths = g_strv_builder_end(pb);
    opts.paths = (const char *const *)paths;
    opts.epoch = epoch;
    opts.clamp_mtime = clamp;

    g_autofree char *sp = store_path(store);
    g_autoptr(GPtrArray) warnings = NULL;
    g_autoptr(MsImageManifest) m = ms_image_store_add(sp, name, from, &opts, &warnings, &error);
    for (guint i = 0; warnings && i < warnings->len; i++)
        g_printerr("memsharectl image build: warning: %s\n", (char *)g_ptr_array_index(warnings, i));
    if (m == NULL) {
        g_printerr("memsharectl image build: image '%s': %s\n", name, error->message);
        return exit_code(error);
    }
    g_autofree char *h = human(m->size);
    g_print("image '%s': %s, %" G_GUINT64_FORMAT " files, sha256 %s\n", m->name, h, m->files, m->sha256);
    return MS_CTL_EXIT_OK;
}

static int
cmd_list(int argc, char **argv)
{
    g_autofree char *store = NULL;
    GOptionEntry entries[] = {
        { "store", 0, 0, G_OPTION_ARG_FILENAME, &store, "image store (default from memshare.conf)", "DIR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse_opts("list", "", entries, &argc, &argv))
        return MS_CTL_EXIT_USAGE;
    if (argc > 1) {
        g_printerr("memsharectl image list: unexpected argument '%s'\n", argv[1]);
        return MS_CTL_EXIT_USAGE;
    }
    g_autofree char *sp = store_path(store);
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) problems = NULL;
    g_autoptr(GPtrArray) all = ms_image_store_list(sp, &problems, &error);
    if (all == NULL) {
        if (g_error_matches(error, MS_ERROR, MS_ERROR_NOT_FOUND)) {
            /* no store yet: nothing built */
            g_print("%-24s %10s %8s %-12s %s\n", "NAME", "SIZE", "FILES", "SHA256", "ADDED");
            return MS_CTL_EXIT_OK;
        }
        g_printerr("memsharectl image list: %s\n", error->message);
        return exit_code(error);
    }
    g_print("%-24s %10s %8s %-12s %s\n", "NAME", "SIZE", "FILES", "SHA256", "ADDED");
    for (guint i = 0; i < all->len; i++) {
        MsImageManifest *m = g_ptr_array_index(all, i);
        g_autofree char *h = human(m->size);
        /* When the image entered the store (its manifest's mtime), not the
         * manifest's "created": that is the image's reproducible epoch
         * (SOURCE_DATE_EPOCH or 1), the same for every build of one tree. */
        g_autofree char *mpath = g_strdup_printf("%s/names/%s.json", sp, m->name);
        g_autofree char *added = NULL;
        struct stat st;
        if (stat(mpath, &st) == 0) {
            g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(st.st_mtime);
            added = dt ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : NULL;
        }
        g_print("%-24s %10s %8" G_GUINT64_FORMAT " %.12s %s\n", m->name, h, m->files, m->sha256,
                added ? added : "-");
    }
    for (guint i = 0; problems && i < problems->len; i++)
        g_printerr("memsharectl image list: skipped: %s\n", (char *)g_ptr_array_index(problems, i));
    return problems ? MS_CTL_EXIT_INVALID : MS_CTL_EXIT_OK;
}

static int
cmd_info(int argc, char **argv)
{
    g_autofree char *store = NULL;
    GOptionEntry entries[] = {
        { "store", 0, 0, G_OPTION_ARG_FILENAME, &store, "image store (default from memshare.conf)", "DIR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse_opts("info", "NAME", entries, &argc, &argv))
        return MS_CTL_EXIT_USAGE;
    if (argc != 2) {
        g_printerr("memsharectl image info: name one image\n");
        return MS_CTL_EXIT_USAGE;
    }
    g_autofree char *sp = store_path(store);
    g_autoptr(GError) error = NULL;
    g_autofree char *blob = NULL;
    g_autoptr(MsImageManifest) m = ms_image_store_lookup(sp, argv[1], &blob, &error);
    if (m == NULL) {
        g_printerr("memsharectl image info: %s\n", error->message);
        return exit_code(error);
    }
    g_autofree char *json = ms_image_manifest_to_json(m);
    g_print("%s", json);
    return MS_CTL_EXIT_OK;
}

static int
cmd_verify(int argc, char **argv)
{
    g_autofree char *store = NULL;
    GOptionEntry entries[] = {
        { "store", 0, 0, G_OPTION_ARG_FILENAME, &store, "image store (default from memshare.conf)", "DIR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse_opts("verify", "NAME...", entries, &argc, &argv))
        return MS_CTL_EXIT_USAGE;
    if (argc < 2) {
        g_printerr("memsharectl image verify: name at least one image\n");
        return MS_CTL_EXIT_USAGE;
    }
    g_autofree char *sp = store_path(store);
    int rc = MS_CTL_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        g_autoptr(GError) error = NULL;
        if (ms_image_store_verify(sp, argv[i], &error)) {
            g_print("%s: OK\n", argv[i]);
        } else {
            g_printerr("memsharectl image verify: %s\n", error->message);
            int c = exit_code(error);
            /* the worst wins: invalid (corrupt) over not found over failure */
            if (rc == MS_CTL_EXIT_OK || c == MS_CTL_EXIT_INVALID)
                rc = c;
        }
    }
    return rc;
}

static int
cmd_remove(int argc, char **argv)
{
    g_autofree char *store = NULL;
    GOptionEntry entries[] = {
        { "store", 0, 0, G_OPTION_ARG_FILENAME, &store, "image store (default from memshare.conf)", "DIR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse_opts("remove", "NAME", entries, &argc, &argv))
        return MS_CTL_EXIT_USAGE;
    if (argc != 2) {
        g_printerr("memsharectl image remove: name one image\n");
        return MS_CTL_EXIT_USAGE;
    }
    g_autofree char *sp = store_path(store);
    g_autoptr(GError) error = NULL;
    if (!ms_image_store_remove(sp, argv[1], &error)) {
        g_printerr("memsharectl image remove: %s\n", error->message);
        return exit_code(error);
    }
    g_print("image '%s' removed\n", argv[1]);
    return MS_CTL_EXIT_OK;
}

static int
cmd_gc(int argc, char **argv)
{
    g_autofree char *store = NULL;
    GOptionEntry entries[] = {
        { "store", 0, 0, G_OPTION_ARG_FILENAME, &store, "image store (default from memshare.conf)", "DIR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse_opts("gc", "", entries, &argc, &argv))
        return MS_CTL_EXIT_USAGE;
    g_autofree char *sp = store_path(store);
    g_autoptr(GError) error = NULL;
    int n = ms_image_store_gc(sp, &error);
    if (n < 0) {
        g_printerr("memsharectl image gc: %s\n", error->message);
        return exit_code(error);
    }
    g_print("%d unreferenced blob(s) removed\n", n);
    return MS_CTL_EXIT_OK;
}

static void
usage(FILE *f)
{
    fprintf(f, "Usage: memsharectl image COMMAND ...\n"
               "  build --from DIR [--name NAME] [--max-size SIZE] [--paths-from FILE] [PATH...]\n"
               "  list                       NAME SIZE FILES SHA256 ADDED\n"
               "  info NAME                  the manifest\n"
               "  verify NAME...             recompute the sha256 of each image\n"
               "  remove NAME                refused while a running domain uses it\n"
               "  gc                         delete blobs no manifest or domain references\n"
               "  advise DISK-IMAGE...       propose the files to share\n"
               "All take --store DIR (default: [images] store= of memshare.conf, or\n"
               "/var/lib/memshare/images; $MEMSHARE_IMAGE_STORE overrides).\n");
}

int
ms_ctl_image(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MS_CTL_EXIT_USAGE;
    }
    const char *sub = argv[1];
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        { "build", cmd_build },   { "list", cmd_list },     { "info", cmd_info },
        { "verify", cmd_verify }, { "remove", cmd_remove }, { "gc", cmd_gc },
    };
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return MS_CTL_EXIT_OK;
    }
    if (strcmp(sub, "advise") == 0)
        return ms_ctl_image_advise(argc - 1, argv + 1);
    for (guint i = 0; i < G_N_ELEMENTS(cmds); i++)
        if (strcmp(sub, cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    g_printerr("memsharectl image: unknown command '%s'\n", sub);
    usage(stderr);
    return MS_CTL_EXIT_USAGE;
}
