/* tools/ctl-advise.c: `memsharectl image advise`: which files to put into a
 * shared image (the question DCSS left to the administrator). It reads the
 * guests' own disk images with libext2fs (read-only, never mounted, so a
 * hostile guest file system cannot reach the host kernel), finds the files
 * that are byte-identical at the same path in at least N of them, optionally
 * keeps only those the guests actually used (lists gathered in the guests),
 * and reports what one shared copy would save. The list it writes is the
 * PATH arguments of `memsharectl image build`. */
#include "ctl.h"
#include "ms-error.h"

#include <ext2fs/ext2fs.h>
#include <stdio.h>
#include <string.h>

#define ADVISE_MAX_DEPTH 64
#define ADVISE_MAX_ENTRIES (4 * 1024 * 1024)
#define ADVISE_MAX_PATH 4096

typedef struct {
    guint64 size;
    guint images;      /* how many disk images hold this exact content here */
    guint used;        /* how many --used lists name it */
} FileStat;

typedef struct {
    ext2_filsys fs;
    const char *image;
    GHashTable *files; /* "path\nsha256" -> FileStat* (shared across images) */
    GHashTable *seen;  /* per image: "path\nsha256" already counted */
    char **under;
    guint64 max_file;
    guint64 entries;
    GError *error;
} Walk;

typedef struct {
    GPtrArray *names;
    GArray *inos;
    GArray *types;
} DirList;

static int
collect_entry(ext2_ino_t dir, int entry, struct ext2_dir_entry *dirent, int offset, int blocksize,
              char *buf, void *priv)
{
    (void)dir; (void)entry; (void)offset; (void)blocksize; (void)buf;
    DirList *l = priv;
    int len = ext2fs_dirent_name_len(dirent);
    if ((len == 1 && dirent->name[0] == '.') || (len == 2 && dirent->name[0] == '.' && dirent->name[1] == '.'))
        return 0;
    if (l->names->len >= 1000000)
        return DIRENT_ABORT;
    g_ptr_array_add(l->names, g_strndup(dirent->name, len));
    ext2_ino_t ino = dirent->inode;
    g_array_append_val(l->inos, ino);
    int t = ext2fs_dirent_file_type(dirent);
    g_array_append_val(l->types, t);
    return 0;
}

/* Is PATH under one of the prefixes, or a directory leading to one? */
static gboolean
path_wanted(char **under, const char *path, gboolean is_dir)
{
    if (under == NULL || *under == NULL)
        return TRUE;
    for (char **u = under; *u; u++) {
        gsize n = strlen(*u);
        if (strncmp(path, *u, n) == 0 && (path[n] == '\0' || path[n] == '/' || n == 1))
            return TRUE;
        if (is_dir && strncmp(*u, path, strlen(path)) == 0 && ((*u)[strlen(path)] == '/' || strcmp(path, "/") == 0))
            return TRUE;
    }
    return FALSE;
}

static gboolean
hash_file(Walk *w, ext2_ino_t ino, const char *path, guint64 *size, char **hex)
{
    struct ext2_inode inode;
    errcode_t err = ext2fs_read_inode(w->fs, ino, &inode);
    if (err) {
        g_set_error(&w->error, MS_ERROR, MS_ERROR_INVALID, "%s: %s: inode %u: %s", w->image, path, ino,
                    error_message(err));
        return FALSE;
    }
    *size = EXT2_I_SIZE(&inode);
    if (*size > w->max_file)
        return TRUE; /* too big to be worth it (or to hash): skipped */
    ext2_file_t f;
    err = ext2fs_file_open(w->fs, ino, 0, &f);
    if (err) {
        g_set_error(&w->error, MS_ERROR, MS_ERROR_INVALID, "%s: %s: %s", w->image, path, error_message(err));
        return FALSE;
    }
    g_autoptr(GChecksum) ck = g_checksum_new(G_CHECKSUM_SHA256);
    g_autofree char *buf = g_malloc(1 << 16);
    guint64 total = 0;
    for (;;) {
        unsigned int got = 0;
        err = ext2fs_file_read(f, buf, 1 << 16, &got);
        if (err) {
            g_set_error(&w->error, MS_ERROR, MS_ERROR_INVALID, "%s: %s: %s", w->image, path, error_message(err));
            ext2fs_file_close(f);
            return FALSE;
        }
        if (got == 0)
            break;
        g_checksum_update(ck, (guchar *)buf, got);
        total += got;
        if (total > *size)
            break;
    }
    ext2fs_file_close(f);
    *hex = g_strdup(g_checksum_get_string(ck));
    return TRUE;
}

static gboolean
walk_dir(Walk *w, ext2_ino_t dir, const char *path, guint depth)
{
    if (depth > ADVISE_MAX_DEPTH) {
        g_set_error(&w->error, MS_ERROR, MS_ERROR_INVALID, "%s: %s: deeper than %d levels (a loop?)", w->image,
                    path, ADVISE_MAX_DEPTH);
        return FALSE;
    }
    DirList l = { g_ptr_array_new_with_free_func(g_free), g_array_new(FALSE, FALSE, sizeof(ext2_ino_t)),
                  g_array_new(FALSE, FALSE, sizeof(int)) };
    errcode_t err = ext2fs_dir_iterate2(w->fs, dir, 0, NULL, collect_entry, &l);
    gboolean ok = TRUE;
    if (err) {
        g_set_error(&w->error, MS_ERROR, MS_ERROR_INVALID, "%s: %s: cannot read directory: %s", w->image, path,
                    error_message(err));
        ok = FALSE;
    }
    for (guint i = 0; ok && i < l.names->len; i++) {
        const char *name = g_ptr_array_index(l.names, i);
        ext2_ino_t ino = g_array_index(l.inos, ext2_ino_t, i);
        int type = g_array_index(l.types, int, i);
        g_autofree char *child = g_strconcat(strcmp(path, "/") == 0 ? "" : path, "/", name, NULL);
        if (strlen(child) > ADVISE_MAX_PATH || strchr(name, '\n')) {
            g_printerr("memsharectl: %s: a path of %zu bytes or with a newline skipped\n", w->image, strlen(child));
            continue;
        }
        if (++w->entries > ADVISE_MAX_ENTRIES) {
            g_set_error(&w->error, MS_ERROR, MS_ERROR_TOO_BIG, "%s: more than %d entries", w->image,
                        ADVISE_MAX_ENTRIES);
            ok = FALSE;
            break;
        }
        if (type == EXT2_FT_UNKNOWN) {
            /* file systems without the filetype feature: ask the inode */
            struct ext2_inode inode;
            if (ext2fs_read_inode(w->fs, ino, &inode) == 0)
                type = LINUX_S_ISDIR(inode.i_mode) ? EXT2_FT_DIR : LINUX_S_ISREG(inode.i_mode) ? EXT2_FT_REG_FILE : -1;
        }
        if (type == EXT2_FT_DIR) {
            if (path_wanted(w->under, child, TRUE))
                ok = walk_dir(w, ino, child, depth + 1);
        } else if (type == EXT2_FT_REG_FILE && path_wanted(w->under, child, FALSE)) {
            guint64 size = 0;
            g_autofree char *hex = NULL;
            ok = hash_file(w, ino, child, &size, &hex);
            if (ok && hex) {
                g_autofree char *key = g_strconcat(child, "\n", hex, NULL);
                if (g_hash_table_contains(w->seen, key))
                    continue; /* a hard link seen twice in one image */
                g_hash_table_add(w->seen, g_strdup(key));
                FileStat *st = g_hash_table_lookup(w->files, key);
                if (st == NULL) {
                    st = g_new0(FileStat, 1);
                    st->size = size;
                    g_hash_table_insert(w->files, g_steal_pointer(&key), st);
                }
                st->images++;
            }
        }
    }
    g_ptr_array_unref(l.names);
    g_array_unref(l.inos);
    g_array_unref(l.types);
    return ok;
}

/* IMAGE or IMAGE@OFFSET (bytes: a file system inside a partitioned disk). */
static gboolean
scan_image(const char *spec, GHashTable *files, char **under, guint64 max_file, GError **error)
{
    g_autofree char *path = g_strdup(spec);
    g_autofree char *io_opts = NULL;
    char *at = strrchr(path, '@');
    if (at) {
        guint64 off;
        if (!g_ascii_string_to_unsigned(at + 1, 10, 0, G_MAXINT64, &off, NULL)) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: '%s' is not a byte offset", spec, at + 1);
            return FALSE;
        }
        *at = '\0';
        io_opts = g_strdup_printf("offset=%" G_GUINT64_FORMAT, off);
    }
    ext2_filsys fs = NULL;
    /* read-only, no journal replay: the guest's file system is evidence,
     * not something to repair */
    errcode_t err = ext2fs_open2(path, io_opts, EXT2_FLAG_64BITS | EXT2_FLAG_IGNORE_CSUM_ERRORS, 0, 0,
                                 unix_io_manager, &fs);
    if (err) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: not an ext2/3/4 file system image (%s); qcow2 images need `qemu-img convert -O raw` "
                    "first, partitioned disks IMAGE@OFFSET", spec, error_message(err));
        return FALSE;
    }
    Walk w = { .fs = fs, .image = spec, .files = files, .under = under, .max_file = max_file,
               .seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL) };
    gboolean ok = walk_dir(&w, EXT2_ROOT_INO, "/", 0);
    g_hash_table_unref(w.seen);
    ext2fs_close_free(&fs);
    if (!ok)
        g_propagate_error(error, w.error);
    return ok;
}

static GHashTable *
read_used_list(const char *file, GError **error)
{
    g_autofree char *text = NULL;
    gsize len;
    if (!g_file_get_contents(file, &text, &len, error))
        return NULL;
    if (len > 256 * 1024 * 1024) {
        g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG, "%s: larger than 256 MiB", file);
        return NULL;
    }
    GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        g_strstrip(*l);
        if (**l == '/')
            g_hash_table_add(set, g_strdup(*l));
    }
    return set;
}

/* g_ptr_array_sort passes pointers to the elements */
static gint
compare_paths(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* g_format_size puts a no-break space before the unit; scripts grep this. */
static char *
human(guint64 bytes)
{
    static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)bytes;
    guint u = 0;
    while (v >= 1024 && u + 1 < G_N_ELEMENTS(units)) {
        v /= 1024;
        u++;
    }
    return u == 0 ? g_strdup_printf("%" G_GUINT64_FORMAT " bytes", bytes) : g_strdup_printf("%.1f %s", v, units[u]);
}

int
ms_ctl_image_advise(int argc, char **argv)
{
    g_auto(GStrv) under = NULL;
    g_auto(GStrv) used = NULL;
    g_auto(GStrv) images = NULL;
    g_autofree char *output = NULL;
    gint min_guests = 0;
    gint64 max_file_mib = 512;
    GOptionEntry entries[] = {
        { "under", 0, 0, G_OPTION_ARG_STRING_ARRAY, &under, "only files under PATH (repeatable; default /usr and /lib)", "PATH" },
        { "used", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &used, "a list of files one guest used (repeatable)", "FILE" },
        { "min-guests", 0, 0, G_OPTION_ARG_INT, &min_guests, "a file must be identical in at least N images (default: all)", "N" },
        { "max-file", 0, 0, G_OPTION_ARG_INT64, &max_file_mib, "skip files larger than MIB (default 512)", "MIB" },
        { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "write the proposed paths to FILE", "FILE" },
        { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &images, NULL, "DISK-IMAGE[@OFFSET]..." },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- memsharectl image advise: propose the files to share");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("memsharectl image advise: %s\n", error->message);
        return MS_CTL_EXIT_USAGE;
    }
    guint n_images = images ? g_strv_length(images) : 0;
    if (n_images == 0) {
        g_printerr("memsharectl image advise: name at least one guest disk image (raw ext4)\n");
        return MS_CTL_EXIT_USAGE;
    }
    if (min_guests <= 0)
        min_guests = (gint)n_images;
    if ((guint)min_guests > n_images || max_file_mib <= 0) {
        g_printerr("memsharectl image advise: --min-guests must be 1..%u and --max-file > 0\n", n_images);
        return MS_CTL_EXIT_USAGE;
    }
    if (under == NULL) {
        const char *def[] = { "/usr", "/lib", NULL };
        under = g_strdupv((char **)def);
    }
    for (char **u = under; *u; u++) {
        if (**u != '/' || strstr(*u, "/../") || g_str_has_suffix(*u, "/..")) {
            g_printerr("memsharectl image advise: --under %s: must be an absolute path without '..'\n", *u);
            return MS_CTL_EXIT_USAGE;
        }
        if (strlen(*u) > 1 && g_str_has_suffix(*u, "/"))
            (*u)[strlen(*u) - 1] = '\0';
    }

    g_autoptr(GHashTable) files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (guint i = 0; i < n_images; i++) {
        if (!scan_image(images[i], files, under, (guint64)max_file_mib << 20, &error)) {
            g_printerr("memsharectl: %s\n", error->message);
            return MS_CTL_EXIT_INVALID;
        }
    }
    guint n_used = used ? g_strv_length(used) : 0;
    for (guint i = 0; i < n_used; i++) {
        g_autoptr(GHashTable) set = read_used_list(used[i], &error);
        if (set == NULL) {
            g_printerr("memsharectl: %s\n", error->message);
            return MS_CTL_EXIT_FAILURE;
        }
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, files);
        while (g_hash_table_iter_next(&it, &k, &v)) {
            g_autofree char *p = g_strndup(k, strchr(k, '\n') - (char *)k);
            if (g_hash_table_contains(set, p))
                ((FileStat *)v)->used++;
        }
    }

    /* Selection: identical in >= min_guests images, and when usage lists
     * were given, used by >= min(min_guests, lists) guests. Savings: a file
     * read by k guests costs k page-cache copies privately, one shared. */
    g_autoptr(GPtrArray) chosen = g_ptr_array_new_with_free_func(g_free);
    guint64 bytes = 0, saving = 0;
    guint need_used = n_used ? MIN((guint)min_guests, n_used) : 0;
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, files);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        FileStat *st = v;
        if (st->images < (guint)min_guests || (n_used && st->used < need_used))
            continue;
        g_ptr_array_add(chosen, g_strndup(k, strchr(k, '\n') - (char *)k));
        bytes += st->size;
        guint readers = n_used ? st->used : st->images;
        saving += st->size * (readers > 0 ? readers - 1 : 0);
    }
    g_ptr_array_sort(chosen, compare_paths);

    g_autofree char *hb = human(bytes), *hs = human(saving);
    g_autofree char *ulist = g_strjoinv(", ", under);
    g_print("# memshare image advise: %u disk image(s), files identical in >= %d of them under %s%s\n",
            n_images, min_guests, ulist, n_used ? " and used by the guests" : "");
    g_print("files=%u\nbytes=%" G_GUINT64_FORMAT " (%s)\nexpected-saving=%" G_GUINT64_FORMAT " (%s, "
            "page cache of %s guests reading them, one shared copy instead)\n",
            chosen->len, bytes, hb, saving, hs, n_used ? "the" : "all");
    if (output) {
        GString *s = g_string_new(NULL);
        for (guint i = 0; i < chosen->len; i++)
            g_string_append_printf(s, "%s\n", (char *)g_ptr_array_index(chosen, i) + 1);
        gboolean ok = g_file_set_contents(output, s->str, s->len, &error);
        g_string_free(s, TRUE);
        if (!ok) {
            g_printerr("memsharectl: %s\n", error->message);
            return MS_CTL_EXIT_FAILURE;
        }
        g_print("paths written to %s (relative; give them to `memsharectl image build --from ROOT`)\n", output);
    }
    return MS_CTL_EXIT_OK;
}
