/* tools/ctl-image.c: memsharectl image: build images into the store (from a
 * directory or a guest's disk), list, inspect, verify and remove them, and
 * copy them between hosts' stores (push and fetch, with receive and send,
 * their far ends; the protocol is images/ms-image-transfer.c).
 * The work is in images/ (builder, store); this file owns the command line, the output format and the exit codes
 * (tools/ctl.h). `image advise` lives in ctl-advise.c. */
#include "ctl.h"
#include "ms-error.h"
#include "ms-image-build.h"
#include "ms-image-store.h"
#include "ms-image-transfer.h"
#include "ms-policy.h"
#include "ms-util.h"

#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Parses a subcommand's options. -h or --help anywhere before "--" prints
 * its help on stdout first, whatever else the line holds (ms_ctl_wants_help,
 * the convention of every memsharectl command). Returns -1 to go on, else
 * the exit code. The usage line names "memsharectl image SUB" (GOption
 * takes the program name from argv[0]). */
static int
parse_opts(const char *sub, const char *params, const char *summary, GOptionEntry *entries, int *argc,
           char ***argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new(params);
    g_option_context_set_summary(ctx, summary);
    g_option_context_add_main_entries(ctx, entries, NULL);
    static char prog[64];
    g_snprintf(prog, sizeof(prog), "memsharectl image %s", sub);
    if (*argc > 0)
        (*argv)[0] = prog;
    if (ms_ctl_wants_help(*argc, *argv)) {
        g_set_prgname(prog);
        g_autofree char *help = g_option_context_get_help(ctx, TRUE, NULL);
        fputs(help, stdout);
        return MS_CTL_EXIT_OK;
    }
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(ctx, argc, argv, &error)) {
        g_printerr("memsharectl image %s: %s\n", sub, error->message);
        return MS_CTL_EXIT_USAGE;
    }
    return -1;
}

/* The subcommands whose only option is --store: they get the store's path
 * and their operands, MIN to MAX of them (MAX -1: no limit). */
typedef struct {
    const char *name, *params, *summary;
    int min, max;
    const char *bad; /* what a wrong count is told; NULL: the first extra operand is named */
    int (*run)(const char *sp, int argc, char **argv);
} StoreCmd;

static int
run_store_cmd(const StoreCmd *c, int argc, char **argv)
{
    g_autofree char *store = NULL;
    GOptionEntry entries[] = {
        { "store", 0, 0, G_OPTION_ARG_FILENAME, &store, "image store (default from memshare.conf)", "DIR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int prc = parse_opts(c->name, c->params, c->summary, entries, &argc, &argv);
    if (prc >= 0)
        return prc;
    int n = argc - 1;
    if (n < c->min || (c->max >= 0 && n > c->max)) {
        if (c->bad != NULL)
            g_printerr("memsharectl image %s: %s\n", c->name, c->bad);
        else
            g_printerr("memsharectl image %s: unexpected argument '%s'\n", c->name, argv[c->max + 1]);
        return MS_CTL_EXIT_USAGE;
    }
    g_autofree char *sp = store_path(store);
    return c->run(sp, argc, argv);
}

static int
cmd_build(int argc, char **argv)
{
    g_autofree char *from = NULL, *name = NULL, *max_size = NULL, *store = NULL, *paths_from = NULL;
    g_autofree char *from_disk = NULL;
    gint64 epoch = 0;
    gint partition = 0;
    gboolean clamp = FALSE, usr = FALSE;
    GOptionEntry entries[] = {
        { "from", 0, 0, G_OPTION_ARG_FILENAME, &from, "the source tree", "DIR" },
        { "from-disk", 0, 0, G_OPTION_ARG_FILENAME, &from_disk,
          "the source is PATH (default /) inside the ext2/3/4 file system of DISK, a raw disk image "
          "(whole-disk file system, or MBR/GPT partitions), read-only; qcow2: qemu-img convert -O raw first",
          "DISK[:PATH]" },
        { "partition", 0, 0, G_OPTION_ARG_INT, &partition,
          "with --from-disk: the partition number (default: the only ext partition)", "N" },
        { "usr", 0, 0, G_OPTION_ARG_NONE, &usr,
          "the image is a guest's /usr: refuse a tree without bin/ and lib/, and mark the manifest", NULL },
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
    int prc = parse_opts("build", "--from DIR | --from-disk DISK[:PATH] [PATH...]",
                    "Builds an ext4 image of a tree (a directory, or a path inside a guest's raw disk) into\n"
                    "the store under NAME. The same tree gives the same bytes either way. A new build of\n"
                    "a name replaces its manifest; running guests keep the blob they map until they stop.",
                    entries, &argc, &argv);
    if (prc >= 0)
        return prc;
    if ((from == NULL) == (from_disk == NULL)) {
        g_printerr("memsharectl image build: give one of --from DIR or --from-disk DISK[:PATH]\n");
        return MS_CTL_EXIT_USAGE;
    }
    if (partition < 0 || (partition && from_disk == NULL)) {
        g_printerr("memsharectl image build: --partition N (N >= 1) goes with --from-disk\n");
        return MS_CTL_EXIT_USAGE;
    }
    g_autofree char *disk = NULL, *disk_path = NULL;
    if (from_disk) {
        /* DISK itself may contain ':'; a PATH inside starts with '/' */
        const char *colon = strrchr(from_disk, ':');
        if (g_file_test(from_disk, G_FILE_TEST_EXISTS) || colon == NULL || colon[1] != '/') {
            disk = g_strdup(from_disk);
            disk_path = g_strdup("/");
        } else {
            disk = g_strndup(from_disk, colon - from_disk);
            disk_path = g_strdup(colon + 1);
        }
        from = g_strdup(disk_path);
    }
    if (name == NULL) {
        g_autofree char *canon = g_canonicalize_filename(from, "/");
        name = g_path_get_basename(canon);
        if (disk && strcmp(canon, "/") == 0) {
            g_free(name);
            name = g_path_get_basename(disk);
        }
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
    opts.disk = disk;
    opts.partition = partition;
    opts.usr = usr;

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
cmd_list(const char *sp, int argc, char **argv)
{
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
    g_autoptr(GPtrArray) uses = ms_image_store_uses();
    g_autoptr(GPtrArray) copies = ms_image_store_group_copies(sp, &problems, NULL);
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
        /* the sharing groups' own copies of this build (docs/images.md) */
        for (guint j = 0; copies && j < copies->len; j++) {
            MsImageCopy *c = g_ptr_array_index(copies, j);
            if (strcmp(c->sha256, m->sha256) != 0)
                continue;
            g_autoptr(GString) who = g_string_new(NULL);
            for (guint k = 0; k < uses->len; k++) {
                MsImageUse *u = g_ptr_array_index(uses, k);
                if (strcmp(u->sha256, c->sha256) == 0 && strcmp(u->group, c->group) == 0)
                    g_string_append_printf(who, "%s'%s' (%s)", who->len ? ", " : "", u->domain, u->mode);
            }
            g_print("  group %s copy %.12s inode %" G_GUINT64_FORMAT " %s%s\n", c->group, c->sha256, c->inode,
                    who->len ? "in use by " : "unused (image gc removes it unless a domain of the group runs)",
                    who->str);
        }
        /* after an update: the builds running guests still map */
        for (guint j = 0; j < uses->len; j++) {
            MsImageUse *u = g_ptr_array_index(uses, j);
            if (strcmp(u->name, m->name) == 0 && strcmp(u->sha256, m->sha256) != 0)
                g_print("  older %.12s in use by domain '%s' (%s, group %s) until it restarts\n", u->sha256,
                        u->domain, u->mode, u->group);
        }
    }
    for (guint i = 0; problems && i < problems->len; i++)
        g_printerr("memsharectl image list: skipped: %s\n", (char *)g_ptr_array_index(problems, i));
    return problems ? MS_CTL_EXIT_INVALID : MS_CTL_EXIT_OK;
}

static int
cmd_info(const char *sp, int argc, char **argv)
{
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
cmd_verify(const char *sp, int argc, char **argv)
{
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
        /* what running guests map may be an older build, or a blob that
         * changed under them */
        g_autoptr(GPtrArray) notes = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
        ms_image_store_verify_uses(sp, argv[i], notes, problems);
        ms_image_store_verify_copies(sp, argv[i], notes, problems);
        for (guint j = 0; j < notes->len; j++)
            g_print("%s: %s\n", argv[i], (char *)g_ptr_array_index(notes, j));
        for (guint j = 0; j < problems->len; j++)
            g_printerr("memsharectl image verify: %s\n", (char *)g_ptr_array_index(problems, j));
        if (problems->len)
            rc = MS_CTL_EXIT_INVALID;
    }
    return rc;
}

static int
cmd_remove(const char *sp, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    if (!ms_image_store_remove(sp, argv[1], &error)) {
        g_printerr("memsharectl image remove: %s\n", error->message);
        return exit_code(error);
    }
    g_print("image '%s' removed\n", argv[1]);
    return MS_CTL_EXIT_OK;
}

static int
cmd_gc(const char *sp, int argc, char **argv)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) kept = NULL;
    int n = ms_image_store_gc_report(sp, &kept, &error);
    if (n < 0) {
        g_printerr("memsharectl image gc: %s\n", error->message);
        return exit_code(error);
    }
    for (guint i = 0; kept && i < kept->len; i++)
        g_print("%s\n", (char *)g_ptr_array_index(kept, i));
    g_print("%d unreferenced blob(s) removed\n", n);
    return MS_CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* push, receive, send and fetch: images/ms-image-transfer.c has the
 * protocol and both ends (docs/images.md, "Moving an image to another
 * host"); here are the operands and messages. */

static void
close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}
typedef int CtlFd;
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(CtlFd, close_fd)

/* SIZE operand: decimal digits only (no sign, no units: it comes from a
 * program), at most MAX. */
static gboolean
parse_exact_size(const char *s, guint64 max, guint64 *out, GError **error)
{
    gsize len = strlen(s);
    gboolean digits = len > 0 && len <= 20;
    for (gsize i = 0; digits && i < len; i++)
        digits = g_ascii_isdigit(s[i]);
    errno = 0;
    guint64 v = digits ? g_ascii_strtoull(s, NULL, 10) : 0;
    if (!digits || errno) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "size '%s' is not a number of bytes", s);
        return FALSE;
    }
    if (v == 0 || v > max) {
        g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG,
                    "size %" G_GUINT64_FORMAT " is outside 1 to %" G_GUINT64_FORMAT " bytes (--max-size)", v, max);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

static gboolean
is_sha256_hex(const char *s)
{
    if (strlen(s) != 64)
        return FALSE;
    for (const char *p = s; *p; p++)
        if (!g_ascii_isdigit(*p) && !(*p >= 'a' && *p <= 'f'))
            return FALSE;
    return TRUE;
}

/* NAME and SHA256 operands that come from another host (receive, send)
 * or a user (fetch): each checked before any byte moves. SHA256 may be
 * NULL. */
static int
check_name_digest(const char *cmd, const char *name, const char *sha)
{
    if (!ms_image_name_is_valid(name)) {
        g_autofree char *shown = g_strndup(name, 80);
        g_printerr("memsharectl image %s: '%s%s' is not a valid image name (letters, digits, '.', '_', "
                   "'-'; first a letter or digit; at most 64)\n", cmd, shown, strlen(name) > 80 ? "..." : "");
        return MS_CTL_EXIT_INVALID;
    }
    if (sha && !is_sha256_hex(sha)) {
        g_printerr("memsharectl image %s: image '%s': '%.80s' is not a sha256 (64 lowercase hex digits)\n", cmd,
                   name, sha);
        return MS_CTL_EXIT_INVALID;
    }
    return -1;
}

static int
cmd_receive(int argc, char **argv)
{
    g_autofree char *store = NULL, *max_size = NULL;
    gboolean force = FALSE;
    GOptionEntry entries[] = {
        { "force", 0, 0, G_OPTION_ARG_NONE, &force, "replace a name that maps to another digest", NULL },
        { "max-size", 0, 0, G_OPTION_ARG_STRING, &max_size, "refuse larger images (default and ceiling 64G)",
          "SIZE" },
        { "store", 0, 0, G_OPTION_ARG_FILENAME, &store, "image store (default from memshare.conf)", "DIR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int prc = parse_opts("receive", "NAME SHA256 SIZE",
                         "The receiving end of `image push` (run through ssh; not for people): reads the\n"
                         "image's manifest and then exactly SIZE bytes from stdin, and keeps them as image\n"
                         "NAME only if they hash to SHA256. The protocol is in docs/images.md.",
                         entries, &argc, &argv);
    if (prc >= 0)
        return prc;
    if (argc != 4) {
        g_printerr("memsharectl image receive: give NAME SHA256 SIZE\n");
        return MS_CTL_EXIT_USAGE;
    }
    const char *name = argv[1], *sha = argv[2];
    int crc = check_name_digest("receive", name, sha);
    if (crc >= 0)
        return crc;
    g_autoptr(GError) error = NULL;
    guint64 max = MS_IMAGE_RECEIVE_MAX, size = 0;
    if (max_size && (!parse_size(max_size, &max, &error) || max > MS_IMAGE_RECEIVE_MAX)) {
        g_printerr("memsharectl image receive: --max-size: %s\n",
                   error ? error->message : "above the ceiling of 64G (MS_IMAGE_RECEIVE_MAX)");
        return MS_CTL_EXIT_USAGE;
    }
    if (!parse_exact_size(argv[3], max, &size, &error)) {
        g_printerr("memsharectl image receive: image '%s' sha256 %s: %s\n", name, sha, error->message);
        return exit_code(error);
    }
    g_autofree char *sp = store_path(store);
    gboolean had = FALSE;
    g_autoptr(MsImageManifest) m =
        ms_image_receive_stream(sp, name, sha, size, max, force, STDIN_FILENO, STDOUT_FILENO, &had, &error);
    if (m == NULL) {
        g_printerr("memsharectl image receive: %s\n", error->message);
        return exit_code(error);
    }
    return MS_CTL_EXIT_OK;
}

/* `image send NAME [SHA256]`: the sending end of a fetch, on stdin and
 * stdout. SHA256 given: refused unless NAME maps to that digest here, so
 * a fetch by digest never gets another build. */
static int
cmd_send(int argc, char **argv)
{
    g_autofree char *store = NULL;
    GOptionEntry entries[] = {
        { "store", 0, 0, G_OPTION_ARG_FILENAME, &store, "image store (default from memshare.conf)", "DIR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int prc = parse_opts("send", "NAME [SHA256]",
                         "The sending end of `image fetch` and of the hook's fetch at an incoming migration\n"
                         "(run through ssh; not for people): writes image NAME's manifest to stdout and,\n"
                         "if the other end asks for it, its bytes. The protocol is in docs/images.md.",
                         entries, &argc, &argv);
    if (prc >= 0)
        return prc;
    if (argc != 2 && argc != 3) {
        g_printerr("memsharectl image send: give NAME [SHA256]\n");
        return MS_CTL_EXIT_USAGE;
    }
    const char *name = argv[1], *sha = argc == 3 ? argv[2] : NULL;
    int crc = check_name_digest("send", name, sha);
    if (crc >= 0)
        return crc;
    g_autofree char *sp = store_path(store);
    g_autoptr(GError) error = NULL;
    g_auto(CtlFd) fd = -1;
    g_autoptr(MsImageManifest) m = ms_image_store_open_for_push(sp, name, &fd, &error);
    if (m == NULL) {
        g_printerr("memsharectl image send: %s\n", error->message);
        return exit_code(error);
    }
    if (sha && strcmp(sha, m->sha256) != 0) {
        g_printerr("memsharectl image send: image '%s' is sha256 %s in %s, not the sha256 %s asked for\n", name,
                   m->sha256, sp, sha);
        return MS_CTL_EXIT_NOT_FOUND;
    }
    signal(SIGPIPE, SIG_IGN);
    int out = STDOUT_FILENO;
    gboolean had = FALSE;
    guint64 sent = 0;
    if (!ms_image_send_stream(m, fd, STDIN_FILENO, &out, FALSE, &had, &sent, &error)) {
        g_printerr("memsharectl image send: image '%s' sha256 %s: %s\n", m->name, m->sha256, error->message);
        return exit_code(error);
    }
    return MS_CTL_EXIT_OK;
}

/* The other host (the last operand), --rsh and --remote-memsharectl, as
 * push and fetch take them: -1, or the exit code after a message. */
static int
remote_opts(const char *cmd, const char *dest, const char *rsh, const char *remote, char **host, GStrv *rshv)
{
    g_autoptr(GError) error = NULL;
    if ((*host = ms_image_transfer_host(dest, &error)) == NULL) {
        g_printerr("memsharectl image %s: %s\n", cmd, error->message);
        return MS_CTL_EXIT_USAGE;
    }
    if ((*rshv = ms_image_transfer_rsh(rsh, &error)) == NULL ||
        (remote && !ms_image_transfer_remote_is_valid(remote, &error))) {
        g_printerr("memsharectl image %s: %s%s\n", cmd, *rshv ? "" : "--rsh: ", error->message);
        return MS_CTL_EXIT_USAGE;
    }
    return -1;
}

#define REMOTE_OPTION_ENTRIES(rsh, remote)                                                             \
    { "rsh", 'e', 0, G_OPTION_ARG_STRING, &(rsh),                                                      \
      "the remote shell, split on white space; HOST and the command follow (default: ssh)", "CMD" },   \
    { "remote-memsharectl", 0, 0, G_OPTION_ARG_STRING, &(remote),                                      \
      "memsharectl on the other host (default: memsharectl, from its PATH)", "PATH" }

/* `image fetch NAME[@SHA256]... SOURCE`: the other way round from push */
static int
cmd_fetch(int argc, char **argv)
{
    g_autofree char *store = NULL, *rsh = NULL, *remote = NULL;
    int timeout_s = 0;
    GOptionEntry entries[] = {
        REMOTE_OPTION_ENTRIES(rsh, remote),
        { "timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s, "give up after SECONDS (default: never)", "SECONDS" },
        { "store", 0, 0, G_OPTION_ARG_FILENAME, &store, "image store (default from memshare.conf)", "DIR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int prc = parse_opts("fetch", "NAME[@SHA256]... SOURCE",
                         "Copies images from SOURCE's store (a host name, or a libvirt URI such as\n"
                         "qemu+ssh://HOST/system) into this host's, through ssh: SOURCE runs `memsharectl\n"
                         "image send`; the bytes are kept only if they hash to the digest of SOURCE's\n"
                         "manifest (and to SHA256, when given). A name this host maps to another digest is\n"
                         "never replaced; one it has already is not sent again.",
                         entries, &argc, &argv);
    if (prc >= 0)
        return prc;
    if (argc < 3 || timeout_s < 0) {
        g_printerr("memsharectl image fetch: give NAME[@SHA256]... SOURCE%s\n",
                   timeout_s < 0 ? " and a --timeout of 0 or more" : "");
        return MS_CTL_EXIT_USAGE;
    }
    g_autofree char *host = NULL;
    g_auto(GStrv) rshv = NULL;
    int orc = remote_opts("fetch", argv[argc - 1], rsh, remote, &host, &rshv);
    if (orc >= 0)
        return orc;
    g_autofree char *sp = store_path(store);
    int rc = MS_CTL_EXIT_OK;
    for (int i = 1; i < argc - 1; i++) {
        g_auto(GStrv) nd = g_strsplit(argv[i], "@", 2);
        int crc = check_name_digest("fetch", nd[0], nd[1]);
        if (crc >= 0) {
            rc = crc;
            continue;
        }
        gboolean had = FALSE;
        g_autoptr(GError) ferr = NULL;
        g_autoptr(MsImageManifest) m = ms_image_fetch(sp, nd[0], nd[1], host, rshv,
                                                      remote ? remote : "memsharectl", (guint)timeout_s, &had, &ferr);
        if (m == NULL) {
            g_printerr("memsharectl image fetch: %s\n", ferr->message);
            rc = exit_code(ferr);
        } else if (had) {
            g_print("image '%s' sha256 %s: this host has it already, nothing fetched\n", m->name, m->sha256);
        } else {
            g_print("image '%s' sha256 %s: %" G_GUINT64_FORMAT " bytes fetched from %s, verified here\n", m->name,
                    m->sha256, m->size, host);
        }
    }
    return rc;
}

static void
quiet_libvirt(void *opaque, virErrorPtr err)
{
    (void)opaque;
    (void)err;
}

/* The shared images DOMAIN's policy names (its live XML while it runs,
 * else its persistent one), looked up as `memsharectl policy` does: by
 * UUID when it looks like one, else by name. NULL with a message when
 * there is no such domain, or no policy, or no shared image in it. */
static GStrv
domain_images(const char *what, GError **error)
{
    virSetErrorFunc(NULL, quiet_libvirt);
    virConnectPtr conn = virConnectOpen(ms_ctl_connect_uri());
    if (conn == NULL) {
        virErrorPtr e = virGetLastError();
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot connect to libvirt%s%s: %s",
                    ms_ctl_connect_uri() ? " at " : "", ms_ctl_connect_uri() ? ms_ctl_connect_uri() : "",
                    e && e->message ? e->message : "unknown libvirt error");
        return NULL;
    }
    virDomainPtr dom = ms_uuid_is_valid(what) ? virDomainLookupByUUIDString(conn, what) : NULL;
    if (dom == NULL)
        dom = virDomainLookupByName(conn, what);
    char *xml = dom ? virDomainGetXMLDesc(dom, 0) : NULL;
    if (dom)
        virDomainFree(dom);
    virConnectClose(conn);
    if (xml == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "'%s' is neither an image in the store nor a domain", what);
        return NULL;
    }
    g_autoptr(MsPolicy) policy = NULL;
    gboolean ok = ms_policy_parse_domain_xml(xml, -1, MS_POLICY_CHECK_NONE, NULL, &policy, NULL, error);
    free(xml);
    if (!ok)
        return NULL;
    g_autoptr(GStrvBuilder) b = g_strv_builder_new();
    for (guint i = 0; policy && policy->images && i < policy->images->len; i++)
        g_strv_builder_add(b, ((MsSharedImage *)g_ptr_array_index(policy->images, i))->name);
    g_auto(GStrv) names = g_strv_builder_end(b);
    if (names[0] == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "domain '%s' has %s", what,
                    policy ? "no shared image in its memshare policy" : "no memshare policy");
        return NULL;
    }
    return g_steal_pointer(&names);
}

static int
cmd_push(int argc, char **argv)
{
    g_autofree char *store = NULL, *rsh = NULL, *remote = NULL;
    gboolean force = FALSE;
    GOptionEntry entries[] = {
        REMOTE_OPTION_ENTRIES(rsh, remote),
        { "force", 0, 0, G_OPTION_ARG_NONE, &force,
          "replace the destination's image of that name if it has another digest", NULL },
        { "store", 0, 0, G_OPTION_ARG_FILENAME, &store, "image store (default from memshare.conf)", "DIR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int prc = parse_opts("push", "IMAGE|DOMAIN... DESTINATION",
                         "Copies images (a DOMAIN: every shared image of its memshare policy) from this host's\n"
                         "store to DESTINATION's (a host name, or a libvirt URI such as qemu+ssh://HOST/system),\n"
                         "through ssh as rsync does: the destination runs `memsharectl image receive`, which\n"
                         "keeps the bytes only if they hash to the digest. An image the destination has under\n"
                         "that name and digest is not sent again. An operand is an image if the store has one\n"
                         "of that name, else a domain (libvirt: -c URI).",
                         entries, &argc, &argv);
    if (prc >= 0)
        return prc;
    if (argc < 3) {
        g_printerr("memsharectl image push: give IMAGE... DESTINATION\n");
        return MS_CTL_EXIT_USAGE;
    }
    g_autofree char *host = NULL;
    g_auto(GStrv) rshv = NULL;
    int orc = remote_opts("push", argv[argc - 1], rsh, remote, &host, &rshv);
    if (orc >= 0)
        return orc;
    g_autofree char *sp = store_path(store);
    int rc = MS_CTL_EXIT_OK;
    for (int i = 1; i < argc - 1; i++) {
        /* an image of the store first; else a domain: its policy's images */
        g_auto(GStrv) names = NULL;
        g_autoptr(MsImageManifest) m =
            ms_image_name_is_valid(argv[i]) ? ms_image_store_lookup(sp, argv[i], NULL, NULL) : NULL;
        if (m == NULL) {
            g_autoptr(GError) derr = NULL;
            names = domain_images(argv[i], &derr);
            if (names == NULL) {
                g_printerr("memsharectl image push: %s\n", derr->message);
                rc = MS_CTL_EXIT_FAILURE;
                continue;
            }
        }
        const char *one[] = { argv[i], NULL };
        for (const char *const *n = names ? (const char *const *)names : one; *n; n++) {
            g_autoptr(GError) perr = NULL;
            g_autoptr(MsImageManifest) pm = NULL;
            gboolean had = FALSE;
            guint64 sent = 0;
            if (!ms_image_push(sp, *n, host, rshv, remote ? remote : "memsharectl", force, &pm, &had, &sent,
                               &perr)) {
                g_printerr("memsharectl image push: %s\n", perr->message);
                rc = MS_CTL_EXIT_FAILURE;
            } else if (had) {
                g_print("image '%s' sha256 %s: %s has it already, nothing sent\n", pm->name, pm->sha256, host);
            } else {
                g_print("image '%s' sha256 %s: %" G_GUINT64_FORMAT " bytes sent to %s, verified there\n",
                        pm->name, pm->sha256, sent, host);
            }
        }
    }
    return rc;
}

static void
usage(FILE *f)
{
    fprintf(f, "Usage: memsharectl image COMMAND ...\n"
               "  build --from DIR [--name NAME] [--usr] [--max-size SIZE] [--paths-from FILE] [PATH...]\n"
               "  build --from-disk DISK[:PATH] [--partition N] ...   from a guest's raw ext4 disk\n"
               "  list                       NAME SIZE FILES SHA256 ADDED\n"
               "  info NAME                  the manifest\n"
               "  verify NAME...             recompute the sha256 of each image\n"
               "  remove NAME                refused while a running domain uses it\n"
               "  gc                         delete blobs no manifest or domain references\n"
               "  push IMAGE|DOMAIN... DEST  copy images to another host's store (ssh)\n"
               "  receive NAME SHA256 SIZE   push's other end (stdin; not for people)\n"
               "  fetch NAME[@SHA256]... SOURCE  copy images from another host's store (ssh)\n"
               "  send NAME [SHA256]         fetch's other end (stdout; not for people)\n"
               "  (each takes --help)\n"
               "  advise DISK-IMAGE...       propose the files to share\n"
               "  prepare-guest --name NAME GUEST-ROOT   make a Debian guest mount NAME as /usr\n"
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
    static const StoreCmd cmds[] = {
        { "list", "",
          "Lists the images: name, size, files, the current sha256, the sharing\n"
          "groups' own copies, and older digests that running domains still map.",
          0, 0, NULL, cmd_list },
        { "info", "NAME",
          "Prints the manifest of image NAME.",
          1, 1, "name one image", cmd_info },
        { "verify", "NAME...",
          "Recomputes the sha256 of each image's blob and of every older blob a running domain\n"
          "maps for it, and compares them with the digests they must have.",
          1, -1, "name at least one image", cmd_verify },
        { "remove", "NAME",
          "Removes image NAME (refused while a running domain uses it).",
          1, 1, "name one image", cmd_remove },
        { "gc", "",
          "Deletes blobs that no manifest names and no running domain maps, and says\n"
          "which older blobs are kept for which domain.",
          0, -1, NULL, cmd_gc },
    };
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return MS_CTL_EXIT_OK;
    }
    if (strcmp(sub, "advise") == 0)
        return ms_ctl_image_advise(argc - 1, argv + 1);
    if (strcmp(sub, "prepare-guest") == 0) return ms_ctl_image_prepare_guest(argc - 1, argv + 1);
    if (strcmp(sub, "build") == 0)
        return cmd_build(argc - 1, argv + 1);
    if (strcmp(sub, "push") == 0)
        return cmd_push(argc - 1, argv + 1);
    if (strcmp(sub, "fetch") == 0)
        return cmd_fetch(argc - 1, argv + 1);
    if (strcmp(sub, "send") == 0)
        return cmd_send(argc - 1, argv + 1);
    if (strcmp(sub, "receive") == 0)
        return cmd_receive(argc - 1, argv + 1);
    for (guint i = 0; i < G_N_ELEMENTS(cmds); i++)
        if (strcmp(sub, cmds[i].name) == 0)
            return run_store_cmd(&cmds[i], argc - 1, argv + 1);
    g_printerr("memsharectl image: unknown command '%s'\n", sub);
    usage(stderr);
    return MS_CTL_EXIT_USAGE;
}
