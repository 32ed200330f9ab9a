/* images/ms-image-store.c: the content-addressed image store (layout in
 * ms-image-store.h and docs/images.md). Every access below STORE goes
 * through openat(..., O_NOFOLLOW) from the store's directory fd: a name
 * from a policy or the command line can never lead outside the store, and
 * a planted symlink is refused rather than followed. Blobs are written to a
 * temp file in blobs/, fsynced, made 0444 and renamed to their digest, so a
 * blob under its final name is always complete and never changes. */
#include "ms-image-store.h"
#include "ms-error.h"
#include "ms-policy.h"
#include "ms-sharing.h"
#include "ms-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

void
ms_image_manifest_free(MsImageManifest *m)
{
    if (m == NULL)
        return;
    g_free(m->name);
    g_free(m->sha256);
    g_free(m->source);
    g_strfreev(m->paths);
    g_free(m->created);
    g_free(m->label);
    g_free(m->builder);
    g_free(m);
}

gboolean
ms_image_name_is_valid(const char *name)
{
    return ms_policy_image_name_is_valid(name);
}

static gboolean
ms_is_sha256_hex(const char *s)
{
    if (s == NULL || strlen(s) != 64)
        return FALSE;
    for (const char *p = s; *p; p++)
        if (!g_ascii_isdigit(*p) && !(*p >= 'a' && *p <= 'f'))
            return FALSE;
    return TRUE;
}

static gboolean
ms_store_is_host_group(const char *group)
{
    return group == NULL || strcmp(group, MS_IMAGE_GROUP_HOST) == 0;
}

char *
ms_image_store_default_path(void)
{
    const char *env = g_getenv("MEMSHARE_IMAGE_STORE");
    if (env && *env)
        return g_strdup(env);
    g_autoptr(GKeyFile) kf = ms_config_load(NULL);
    return ms_config_get_string(kf, "images", "store", "/var/lib/memshare/images");
}

/* ------------------------------------------------------------------ */
/* manifest                                                            */

char *
ms_image_manifest_to_json(const MsImageManifest *m)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, m->name);
    json_builder_set_member_name(b, "sha256");
    json_builder_add_string_value(b, m->sha256);
    json_builder_set_member_name(b, "size");
    json_builder_add_int_value(b, (gint64)m->size);
    json_builder_set_member_name(b, "block-size");
    json_builder_add_int_value(b, m->block_size);
    json_builder_set_member_name(b, "files");
    json_builder_add_int_value(b, (gint64)m->files);
    json_builder_set_member_name(b, "source");
    json_builder_add_string_value(b, m->source ? m->source : "");
    json_builder_set_member_name(b, "paths");
    json_builder_begin_array(b);
    for (guint i = 0; m->paths && m->paths[i]; i++)
        json_builder_add_string_value(b, m->paths[i]);
    json_builder_end_array(b);
    json_builder_set_member_name(b, "created");
    json_builder_add_string_value(b, m->created ? m->created : "");
    json_builder_set_member_name(b, "label");
    json_builder_add_string_value(b, m->label ? m->label : "");
    json_builder_set_member_name(b, "builder");
    json_builder_add_string_value(b, m->builder ? m->builder : "");
    if (m->usr) {
        /* only when set: manifests of other images keep their bytes */
        json_builder_set_member_name(b, "usr");
        json_builder_add_boolean_value(b, TRUE);
    }
    json_builder_end_object(b);
    g_autoptr(JsonGenerator) g = json_generator_new();
    g_autoptr(JsonNode) root = json_builder_get_root(b);
    json_generator_set_root(g, root);
    json_generator_set_pretty(g, TRUE);
    g_autofree char *text = json_generator_to_data(g, NULL);
    return g_strconcat(text, "\n", NULL);
}

static const char *
ms_json_string(JsonObject *o, const char *member)
{
    JsonNode *n = json_object_get_member(o, member);
    if (n == NULL || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
        return NULL;
    return json_node_get_string(n);
}

static gboolean
ms_json_uint(JsonObject *o, const char *member, guint64 *out)
{
    JsonNode *n = json_object_get_member(o, member);
    if (n == NULL || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
        return FALSE;
    gint64 v = json_node_get_int(n);
    if (v < 0)
        return FALSE;
    *out = v;
    return TRUE;
}

MsImageManifest *
ms_image_manifest_parse(const char *data, gsize len, const char *what, GError **error)
{
    if (len > MS_IMAGE_MANIFEST_MAX) {
        g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG, "%s: larger than %d bytes", what, MS_IMAGE_MANIFEST_MAX);
        return NULL;
    }
    g_autoptr(JsonParser) p = json_parser_new();
    g_autoptr(GError) jerr = NULL;
    if (!json_parser_load_from_data(p, data, len, &jerr)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: not JSON: %s", what, jerr->message);
        return NULL;
    }
    JsonNode *root = json_parser_get_root(p);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: not a JSON object", what);
        return NULL;
    }
    JsonObject *o = json_node_get_object(root);
    g_autoptr(MsImageManifest) m = g_new0(MsImageManifest, 1);
    const char *name = ms_json_string(o, "name");
    const char *sha = ms_json_string(o, "sha256");
    guint64 bs = 0;
    if (!ms_image_name_is_valid(name)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: \"name\" is missing or not a valid image name", what);
        return NULL;
    }
    if (!ms_is_sha256_hex(sha)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: \"sha256\" is missing or not 64 lowercase hex digits", what);
        return NULL;
    }
    if (!ms_json_uint(o, "size", &m->size) || !ms_json_uint(o, "files", &m->files) ||
        !ms_json_uint(o, "block-size", &bs) || bs > 65536) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: \"size\", \"files\" and \"block-size\" must be non-negative integers", what);
        return NULL;
    }
    m->name = g_strdup(name);
    m->sha256 = g_strdup(sha);
    m->block_size = bs;
    m->source = g_strdup(ms_json_string(o, "source"));
    m->created = g_strdup(ms_json_string(o, "created"));
    m->label = g_strdup(ms_json_string(o, "label"));
    m->builder = g_strdup(ms_json_string(o, "builder"));
    JsonNode *un = json_object_get_member(o, "usr");
    m->usr = un && JSON_NODE_HOLDS_VALUE(un) && json_node_get_value_type(un) == G_TYPE_BOOLEAN &&
             json_node_get_boolean(un);
    g_autoptr(GStrvBuilder) sb = g_strv_builder_new();
    JsonNode *pn = json_object_get_member(o, "paths");
    if (pn && JSON_NODE_HOLDS_ARRAY(pn)) {
        JsonArray *a = json_node_get_array(pn);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonNode *e = json_array_get_element(a, i);
            if (JSON_NODE_HOLDS_VALUE(e) && json_node_get_value_type(e) == G_TYPE_STRING)
                g_strv_builder_add(sb, json_node_get_string(e));
        }
    }
    m->paths = g_strv_builder_end(sb);
    return g_steal_pointer(&m);
}

/* ------------------------------------------------------------------ */
/* safe access                                                         */

static int
ms_store_openat(int dirfd, const char *name, int flags, const char *what, GError **error)
{
    int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        struct stat st;
        /* O_DIRECTORY on a symlink says ENOTDIR, not ELOOP */
        if (e == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
            e = ELOOP;
        g_set_error(error, MS_ERROR, e == ENOENT ? MS_ERROR_NOT_FOUND : MS_ERROR_FAILED, "%s: %s", what,
                    e == ELOOP ? "is a symbolic link (refused)" : g_strerror(e));
    }
    return fd;
}

static void
ms_close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

typedef int MsFd;
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(MsFd, ms_close_fd)

/* Opens STORE (and creates it and its subdirectories if asked). */
static int
ms_store_open(const char *store, gboolean create, GError **error)
{
    if (create) {
        if (g_mkdir_with_parents(store, 0755) < 0) {
            int e = errno;
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "image store %s: cannot create: %s", store,
                        g_strerror(e));
            return -1;
        }
    }
    int fd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, MS_ERROR, e == ENOENT ? MS_ERROR_NOT_FOUND : MS_ERROR_FAILED, "image store %s: %s",
                    store, g_strerror(e));
        return -1;
    }
    if (create) {
        for (guint i = 0; i < 2; i++) {
            const char *sub = i ? "names" : "blobs";
            if (mkdirat(fd, sub, 0755) < 0 && errno != EEXIST) {
                int e = errno;
                g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "image store %s: cannot create %s/: %s", store,
                            sub, g_strerror(e));
                close(fd);
                return -1;
            }
        }
    }
    return fd;
}

/* Serialises writers; readers (lookup, verify, the agent) need no lock
 * because everything they read is replaced by rename. */
static int
ms_store_lock(int store_fd, const char *store, GError **error)
{
    int fd = ms_store_openat(store_fd, ".lock", O_RDWR | O_CREAT, store, error);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX) < 0) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "image store %s: cannot lock: %s", store, g_strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

/* A receive's temp file is written without the store lock (a transfer may
 * take minutes, and the hook's own store operations must not wait for it):
 * its writer holds flock(LOCK_EX) on the file instead, taken while the
 * store lock was held at its creation. gc, under the store lock, leaves
 * such a file alone and removes only the ones nobody holds (a receive
 * killed midway). */
static gboolean
ms_store_temp_in_progress(int dir_fd, const char *name)
{
    g_auto(MsFd) fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return FALSE;
    return flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
}

static gboolean
ms_read_fd_bounded(int fd, gsize max, char **out, gsize *len, const char *what, GError **error)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: not a regular file", what);
        return FALSE;
    }
    if ((guint64)st.st_size > max) {
        g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG, "%s: larger than %zu bytes", what, max);
        return FALSE;
    }
    g_autofree char *buf = g_malloc(max + 1);
    gsize got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, max + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: %s", what, g_strerror(e));
            return FALSE;
        }
        if (r == 0)
            break;
        got += r;
        if (got > max) {
            g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG, "%s: larger than %zu bytes", what, max);
            return FALSE;
        }
    }
    buf[got] = '\0';
    *out = g_steal_pointer(&buf);
    *len = got;
    return TRUE;
}

static MsImageManifest *
ms_store_read_manifest(int store_fd, const char *store, const char *name, GError **error)
{
    if (!ms_image_name_is_valid(name)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "'%s' is not a valid image name (letters, digits, '.', '_', '-'; "
                    "first a letter or digit; at most 64)", name);
        return NULL;
    }
    g_autofree char *mname = g_strconcat(name, ".json", NULL);
    g_autofree char *mpath = g_build_filename(store, "names", mname, NULL);
    g_auto(MsFd) names_fd = ms_store_openat(store_fd, "names", O_RDONLY | O_DIRECTORY, mpath, error);
    if (names_fd < 0)
        return NULL;
    g_autoptr(GError) local = NULL;
    g_auto(MsFd) fd = ms_store_openat(names_fd, mname, O_RDONLY, mpath, &local);
    if (fd < 0) {
        if (g_error_matches(local, MS_ERROR, MS_ERROR_NOT_FOUND))
            g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "image '%s': no such image in %s", name, store);
        else
            g_propagate_error(error, g_steal_pointer(&local));
        return NULL;
    }
    g_autofree char *text = NULL;
    gsize len = 0;
    if (!ms_read_fd_bounded(fd, MS_IMAGE_MANIFEST_MAX, &text, &len, mpath, error))
        return NULL;
    g_autoptr(MsImageManifest) m = ms_image_manifest_parse(text, len, mpath, error);
    if (m == NULL)
        return NULL;
    if (strcmp(m->name, name) != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: names image '%s', not '%s'", mpath, m->name, name);
        return NULL;
    }
    return g_steal_pointer(&m);
}

/* Opens BNAME in the directory DIRFD read-only (PATH for messages),
 * refusing symlinks and anything but a regular file: a blob, or a group's
 * copy of one. */
static int
ms_store_open_regular(int dirfd, const char *bname, const char *path, GError **error)
{
    int fd = ms_store_openat(dirfd, bname, O_RDONLY, path, error);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* Opens the blob of M read-only (ms_store_open_regular). */
static int
ms_store_open_blob(int store_fd, const char *store, const MsImageManifest *m, char **path, GError **error)
{
    g_autofree char *bname = g_strdup_printf("sha256-%s.img", m->sha256);
    g_autofree char *bpath = g_build_filename(store, "blobs", bname, NULL);
    g_auto(MsFd) blobs_fd = ms_store_openat(store_fd, "blobs", O_RDONLY | O_DIRECTORY, bpath, error);
    if (blobs_fd < 0)
        return -1;
    int fd = ms_store_open_regular(blobs_fd, bname, bpath, error);
    if (fd < 0)
        return -1;
    if (path)
        *path = g_steal_pointer(&bpath);
    return fd;
}

static int ms_store_group_copy_fd(int store_fd, const char *store, const MsImageManifest *m, const char *group,
                                  gboolean create, char **path_out, gboolean *created, GError **error);

/* What every look-up of one image starts with: the store, NAME's manifest
 * and GROUP's copy of its blob (NULL or "host": blobs/ itself; made if
 * CREATE), read-only in *FD (the caller closes it), its path in *PATH. */
static MsImageManifest *
ms_store_open_image(const char *store, const char *name, const char *group, gboolean create, int *fd,
                    char **path, gboolean *created, GError **error)
{
    g_auto(MsFd) store_fd = ms_store_open(store, FALSE, error);
    if (store_fd < 0)
        return NULL;
    g_autoptr(MsImageManifest) m = ms_store_read_manifest(store_fd, store, name, error);
    if (m == NULL)
        return NULL;
    *fd = ms_store_group_copy_fd(store_fd, store, m, group, create, path, created, error);
    return *fd < 0 ? NULL : g_steal_pointer(&m);
}

MsImageManifest *
ms_image_store_lookup(const char *store, const char *name, char **blob_path, GError **error)
{
    g_auto(MsFd) fd = -1;
    return ms_store_open_image(store, name, NULL, FALSE, &fd, blob_path, NULL, error);
}

static char *
ms_blob_stamp(const struct stat *st)
{
    return g_strdup_printf("%ju %ju %jd %jd.%09ld %jd.%09ld\n", (uintmax_t)st->st_dev, (uintmax_t)st->st_ino,
                           (intmax_t)st->st_size, (intmax_t)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
                           (intmax_t)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

/* The check behind verify_cached: FD is the blob (or a group's copy) of
 * M at BPATH; SFILE the stamp's name in STAMP_DIR. */
static gboolean
ms_store_verify_fd_cached(const MsImageManifest *m, int fd, const char *bpath, const char *stamp_dir,
                          const char *sfile, GError **error)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "image '%s': cannot stat %s: %s", m->name, bpath,
                    g_strerror(errno));
        return FALSE;
    }
    if (st.st_mode & 0222) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "image '%s': %s is writable (mode %04o, must be 0444)",
                    m->name, bpath, (unsigned)(st.st_mode & 07777));
        return FALSE;
    }
    g_autofree char *stamp = ms_blob_stamp(&st);
    g_autofree char *spath = g_build_filename(stamp_dir, sfile, NULL);
    g_autofree char *old = NULL;
    if (ms_file_read_bounded(spath, 256, &old, NULL, NULL) && g_str_equal(old, stamp))
        return TRUE;

    char sha[65];
    guint64 size = 0;
    if (!ms_image_sha256_fd(fd, sha, &size, bpath, error))
        return FALSE;
    if (strcmp(sha, m->sha256) != 0 || size != m->size) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "image '%s': %s has sha256 %s (%" G_GUINT64_FORMAT " bytes), the manifest says %s (%"
                    G_GUINT64_FORMAT " bytes)", m->name, bpath, sha, size, m->sha256, m->size);
        unlink(spath);
        return FALSE;
    }
    /* A stamp we cannot write costs the next start a hash, nothing more. */
    if (g_mkdir_with_parents(stamp_dir, 0700) == 0)
        (void)ms_file_write_atomic(spath, stamp, -1, 0600, NULL);
    return TRUE;
}

gboolean
ms_image_store_verify_cached(const char *store, const char *name, const char *stamp_dir, GError **error)
{
    return ms_image_store_verify_group_cached(store, name, NULL, FALSE, stamp_dir, error);
}

gboolean
ms_image_manifest_check_mount(const MsImageManifest *m, const char *mount, GError **error)
{
    if (mount == NULL)
        return TRUE;
    g_autofree char *canon = g_canonicalize_filename(mount, "/");
    if (strcmp(canon, "/usr") != 0 || m->usr)
        return TRUE;
    g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                "image '%s' is mounted on /usr but was not built as a /usr (its manifest lacks \"usr\": true; "
                "source %s): rebuild it with memsharectl image build --usr, which checks for bin/ and lib/",
                m->name, m->source && *m->source ? m->source : "unknown");
    return FALSE;
}

gboolean
ms_image_store_check_mount(const char *store, const char *name, const char *mount, GError **error)
{
    g_autoptr(MsImageManifest) m = ms_image_store_lookup(store, name, NULL, error);
    if (m == NULL)
        return FALSE;
    return ms_image_manifest_check_mount(m, mount, error);
}

gboolean
ms_image_store_verify(const char *store, const char *name, GError **error)
{
    g_autofree char *bpath = NULL;
    g_auto(MsFd) fd = -1;
    g_autoptr(MsImageManifest) m = ms_store_open_image(store, name, NULL, FALSE, &fd, &bpath, NULL, error);
    if (m == NULL)
        return FALSE;
    char sha[65];
    guint64 size = 0;
    if (!ms_image_sha256_fd(fd, sha, &size, bpath, error))
        return FALSE;
    if (strcmp(sha, m->sha256) != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "image '%s': %s has sha256 %s, the manifest says %s",
                    name, bpath, sha, m->sha256);
        return FALSE;
    }
    if (size != m->size) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "image '%s': %s has %" G_GUINT64_FORMAT " bytes, the manifest says %" G_GUINT64_FORMAT,
                    name, bpath, size, m->size);
        return FALSE;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 0222)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "image '%s': %s is writable (mode %04o, must be 0444)",
                    name, bpath, (unsigned)(st.st_mode & 07777));
        return FALSE;
    }
    return TRUE;
}

guint
ms_image_store_verify_uses(const char *store, const char *name, GPtrArray *notes, GPtrArray *problems)
{
    g_autoptr(MsImageManifest) m = ms_image_store_lookup(store, name, NULL, NULL);
    g_autoptr(GPtrArray) uses = ms_image_store_uses();
    /* group/digest -> its problem ("" when fine): each file is hashed once */
    g_autoptr(GHashTable) checked = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    guint n = 0;
    for (guint i = 0; i < uses->len; i++) {
        MsImageUse *u = g_ptr_array_index(uses, i);
        if (strcmp(u->name, name) != 0)
            continue;
        /* a group's copy is its own file: checked on its own */
        g_autofree char *key = g_strdup_printf("%s/%s", u->group, u->sha256);
        const char *why = g_hash_table_lookup(checked, key);
        if (why == NULL) {
            g_autofree char *bpath = ms_image_store_group_blob_path(store, u->group, u->sha256);
            int fd = open(bpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            char sha[65] = "";
            if (fd < 0) {
                int e = errno;
                why = g_strdup_printf("%s is %s: the guest keeps its mapping of the file it attached until "
                                      "it stops, but the store no longer holds that build",
                                      bpath, e == ENOENT ? "gone (removed or renamed behind the store's back)"
                                                         : g_strerror(e));
            } else {
                g_autoptr(GError) herr = NULL;
                if (!ms_image_sha256_fd(fd, sha, NULL, bpath, &herr))
                    why = g_strdup(herr->message);
                else if (strcmp(sha, u->sha256) != 0)
                    why = g_strdup_printf("%s now has sha256 %s: the blob changed under its name (blobs are "
                                          "0444 root and never rewritten). Replaced by rename, the guest keeps "
                                          "the old bytes; modified in place, it sees the new ones (the agent's "
                                          "status says which, %s.blob=); stop the domain, then rebuild the image",
                                          bpath, sha, name);
                else
                    why = g_strdup("");
                close(fd);
            }
            g_hash_table_insert(checked, g_strdup(key), (char *)why);
        }
        if (*why) {
            n++;
            if (problems)
                g_ptr_array_add(problems, g_strdup_printf("image '%s': domain '%s' maps sha256 %s%s%s%s, but %s",
                                                          name, u->domain, u->sha256,
                                                          ms_store_is_host_group(u->group) ? "" : " (the copy of "
                                                          "sharing group '",
                                                          ms_store_is_host_group(u->group) ? "" : u->group,
                                                          ms_store_is_host_group(u->group) ? "" : "')", why));
        } else if (m && strcmp(m->sha256, u->sha256) != 0 && notes) {
            g_ptr_array_add(notes, g_strdup_printf("domain '%s' still maps the older build sha256 %s (OK); "
                                                   "the name now points to %s, which it gets when restarted",
                                                   u->domain, u->sha256, m->sha256));
        }
    }
    return n;
}

static int
ms_manifest_cmp(gconstpointer a, gconstpointer b)
{
    const MsImageManifest *x = *(MsImageManifest *const *)a, *y = *(MsImageManifest *const *)b;
    return strcmp(x->name, y->name);
}

/* Names of NAMES_FD's manifests, sorted ("NAME" without ".json"). */
static GPtrArray *
ms_store_names(int store_fd, const char *store, GError **error)
{
    g_autofree char *npath = g_build_filename(store, "names", NULL);
    int fd = ms_store_openat(store_fd, "names", O_RDONLY | O_DIRECTORY, npath, error);
    if (fd < 0)
        return NULL;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: %s", npath, g_strerror(e));
        return NULL;
    }
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!g_str_has_suffix(de->d_name, ".json"))
            continue;
        g_autofree char *n = g_strndup(de->d_name, strlen(de->d_name) - 5);
        if (ms_image_name_is_valid(n))
            g_ptr_array_add(out, g_steal_pointer(&n));
    }
    closedir(d);
    return g_steal_pointer(&out);
}

GPtrArray *
ms_image_store_list(const char *store, GPtrArray **problems, GError **error)
{
    g_auto(MsFd) store_fd = ms_store_open(store, FALSE, error);
    if (store_fd < 0)
        return NULL;
    g_autoptr(GPtrArray) names = ms_store_names(store_fd, store, error);
    if (names == NULL)
        return NULL;
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func((GDestroyNotify)ms_image_manifest_free);
    for (guint i = 0; i < names->len; i++) {
        g_autoptr(GError) local = NULL;
        MsImageManifest *m = ms_store_read_manifest(store_fd, store, g_ptr_array_index(names, i), &local);
        if (m)
            g_ptr_array_add(out, m);
        else if (problems) {
            if (*problems == NULL)
                *problems = g_ptr_array_new_with_free_func(g_free);
            g_ptr_array_add(*problems, g_strdup(local->message));
        }
    }
    g_ptr_array_sort(out, ms_manifest_cmp);
    return g_steal_pointer(&out);
}

/* ------------------------------------------------------------------ */
/* per-group copies                                                    */

gboolean
ms_image_store_group_is_valid(const char *group)
{
    return group != NULL && strlen(group) <= MS_SHARING_GROUP_MAX && ms_sharing_group_is_valid(group);
}

char *
ms_image_store_group_blob_path(const char *store, const char *group, const char *sha256)
{
    g_autofree char *bname = g_strdup_printf("sha256-%s.img", sha256);
    if (ms_store_is_host_group(group))
        return g_build_filename(store, "blobs", bname, NULL);
    return g_build_filename(store, "groups", group, bname, NULL);
}

static gboolean
ms_store_check_group(const char *group, GError **error)
{
    if (ms_image_store_group_is_valid(group))
        return TRUE;
    g_autofree char *pg = ms_printable(group ? group : "");
    g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                "'%s' is not a sharing group (a group name, domain:UUID, nova:PROJECT or host)", pg);
    return FALSE;
}

/* Opens STORE/groups/GROUP (creating both if asked), never through a
 * symlink. */
static int
ms_store_open_group_dir(int store_fd, const char *store, const char *group, gboolean create, GError **error)
{
    if (!ms_store_check_group(group, error))
        return -1;
    g_autofree char *gpath = g_build_filename(store, "groups", NULL);
    g_autofree char *path = g_build_filename(store, "groups", group, NULL);
    if (create && mkdirat(store_fd, "groups", 0755) < 0 && errno != EEXIST) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: cannot create: %s", gpath, g_strerror(e));
        return -1;
    }
    g_auto(MsFd) gfd = ms_store_openat(store_fd, "groups", O_RDONLY | O_DIRECTORY, gpath, error);
    if (gfd < 0)
        return -1;
    if (create && mkdirat(gfd, group, 0755) < 0 && errno != EEXIST) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: cannot create: %s", path, g_strerror(e));
        return -1;
    }
    return ms_store_openat(gfd, group, O_RDONLY | O_DIRECTORY, path, error);
}

/* Copies SIZE bytes of SRC to DST: a reflink (FICLONE) where the file
 * system has them (btrfs, XFS with reflink=1: no data blocks are copied,
 * but DST is its own inode with its own page cache, which is all a group
 * needs), else copy_file_range, else read and write. */
static gboolean
ms_store_copy_data(int src, int dst, guint64 size, const char *what, gboolean *reflinked, GError **error)
{
    *reflinked = ioctl(dst, FICLONE, src) == 0;
    if (*reflinked)
        return TRUE;
    loff_t in = 0, out = 0;
    gboolean plain = FALSE;
    while ((guint64)in < size && !plain) {
        ssize_t r = copy_file_range(src, &in, dst, &out, MIN(size - (guint64)in, (guint64)1 << 30), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && in == 0 && (errno == ENOSYS || errno == EXDEV || errno == EOPNOTSUPP || errno == EINVAL)) {
            plain = TRUE;
            break;
        }
        if (r < 0) {
            int e = errno;
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: cannot copy: %s", what, g_strerror(e));
            return FALSE;
        }
        if (r == 0)
            break;   /* the source is shorter: the digest check says so */
    }
    if (!plain)
        return TRUE;
    g_autofree char *buf = g_malloc(1 << 20);
    for (guint64 off = 0;;) {
        ssize_t r = pread(src, buf, 1 << 20, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: cannot read the blob: %s", what, g_strerror(e));
            return FALSE;
        }
        if (r == 0)
            return TRUE;
        for (ssize_t w = 0; w < r;) {
            ssize_t n = pwrite(dst, buf + w, r - w, off + w);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                int e = errno;
                g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: cannot write: %s", what, g_strerror(e));
                return FALSE;
            }
            w += n;
        }
        off += r;
    }
}

/* Makes GROUP's copy of M's blob in GFD (the store is locked). The copy
 * is written to a temp name, synced, hashed and compared with the
 * manifest, made 0444 and renamed: a copy under its final name is always
 * complete and right. The page cache is left as found: the blob's pages
 * the copy read are dropped again unless they were there, and the copy's
 * are dropped (no guest maps it yet). */
static gboolean
ms_store_make_copy(int store_fd, const char *store, const MsImageManifest *m, int gfd, const char *group,
                   GError **error)
{
    g_autofree char *srcpath = NULL;
    g_auto(MsFd) src = ms_store_open_blob(store_fd, store, m, &srcpath, error);
    if (src < 0)
        return FALSE;
    g_autofree char *bname = g_strdup_printf("sha256-%s.img", m->sha256);
    g_autofree char *tmpname = g_strdup_printf(".tmp-%s-%d.img", m->sha256, (int)getpid());
    g_autofree char *path = g_build_filename(store, "groups", group, bname, NULL);
    g_autofree char *tmp = g_build_filename(store, "groups", group, tmpname, NULL);
    (void)unlinkat(gfd, tmpname, 0);   /* of a crashed predecessor with our pid */
    g_auto(MsFd) dst = openat(gfd, tmpname, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (dst < 0) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "image '%s': cannot create %s: %s%s", m->name, tmp,
                    g_strerror(e), e == EROFS || e == EACCES || e == EPERM
                                       ? " (group copies are made by the hook at prepare, as root)" : "");
        return FALSE;
    }
    gsize npages = 0;
    g_autofree guint8 *resident = ms_image_residency(src, m->size, &npages);
    gboolean reflinked = FALSE;
    gboolean ok = ms_store_copy_data(src, dst, m->size, tmp, &reflinked, error);
    if (resident)
        ms_image_drop_new_pages(src, resident, npages);
    if (ok && fsync(dst) < 0) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: fsync: %s", tmp, g_strerror(e));
        ok = FALSE;
    }
    char sha[65];
    guint64 size = 0;
    if (ok)
        ok = ms_image_sha256_fd(dst, sha, &size, tmp, error);
    if (ok && (strcmp(sha, m->sha256) != 0 || size != m->size)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "image '%s': the copy for group '%s' has sha256 %s (%" G_GUINT64_FORMAT " bytes), the "
                    "manifest says %s (%" G_GUINT64_FORMAT " bytes): the blob %s changed behind the store's "
                    "back (memsharectl image verify %s)", m->name, group, sha, size, m->sha256, m->size,
                    srcpath, m->name);
        ok = FALSE;
    }
    if (ok)
        (void)posix_fadvise(dst, 0, 0, POSIX_FADV_DONTNEED);
    if (ok && (fchmod(dst, 0444) < 0 || renameat(gfd, tmpname, gfd, bname) < 0)) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: %s", path, g_strerror(e));
        ok = FALSE;
    }
    if (!ok) {
        (void)unlinkat(gfd, tmpname, 0);
        return FALSE;
    }
    fsync(gfd);
    g_message("image '%s': made the copy for sharing group '%s' (%s, %" G_GUINT64_FORMAT " MiB): %s", m->name,
              group, reflinked ? "a reflink: no data copied" : "a full copy", m->size >> 20, path);
    return TRUE;
}

/* GROUP's copy of M's blob, read-only (made if CREATE and missing). */
static int
ms_store_group_copy_fd(int store_fd, const char *store, const MsImageManifest *m, const char *group,
                       gboolean create, char **path_out, gboolean *created, GError **error)
{
    if (created)
        *created = FALSE;
    if (ms_store_is_host_group(group))
        return ms_store_open_blob(store_fd, store, m, path_out, error);
    if (!ms_store_check_group(group, error))
        return -1;
    /* the store's own blob must be there: it is the source and the
     * proof that the name has that content */
    g_auto(MsFd) blob = ms_store_open_blob(store_fd, store, m, NULL, error);
    if (blob < 0)
        return -1;
    g_autofree char *bname = g_strdup_printf("sha256-%s.img", m->sha256);
    g_autofree char *path = ms_image_store_group_blob_path(store, group, m->sha256);
    g_autoptr(GError) local = NULL;
    int fd = -1;
    {
        g_auto(MsFd) gfd = ms_store_open_group_dir(store_fd, store, group, FALSE, &local);
        if (gfd >= 0)
            fd = ms_store_open_regular(gfd, bname, path, &local);
    }
    if (fd < 0 && !g_error_matches(local, MS_ERROR, MS_ERROR_NOT_FOUND)) {
        g_propagate_error(error, g_steal_pointer(&local));
        return -1;
    }
    if (fd < 0 && !create) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND,
                    "image '%s': sharing group '%s' has no copy of it (%s): the hook makes it at prepare "
                    "when a domain of the group starts", m->name, group, path);
        return -1;
    }
    if (fd < 0) {
        g_auto(MsFd) lock = ms_store_lock(store_fd, store, error);
        if (lock < 0)
            return -1;
        g_auto(MsFd) gfd = ms_store_open_group_dir(store_fd, store, group, TRUE, error);
        if (gfd < 0)
            return -1;
        g_clear_error(&local);
        /* another start of the group may have made it meanwhile */
        fd = ms_store_open_regular(gfd, bname, path, &local);
        if (fd < 0 && !g_error_matches(local, MS_ERROR, MS_ERROR_NOT_FOUND)) {
            g_propagate_error(error, g_steal_pointer(&local));
            return -1;
        }
        if (fd < 0) {
            if (!ms_store_make_copy(store_fd, store, m, gfd, group, error))
                return -1;
            if (created)
                *created = TRUE;
            fd = ms_store_open_regular(gfd, bname, path, error);
            if (fd < 0)
                return -1;
        }
    }
    if (path_out)
        *path_out = g_steal_pointer(&path);
    return fd;
}

MsImageManifest *
ms_image_store_lookup_group(const char *store, const char *name, const char *group, gboolean create,
                            char **blob_path, gboolean *created, GError **error)
{
    g_auto(MsFd) fd = -1;
    return ms_store_open_image(store, name, group, create, &fd, blob_path, created, error);
}

gboolean
ms_image_store_verify_group_cached(const char *store, const char *name, const char *group, gboolean create,
                                   const char *stamp_dir, GError **error)
{
    g_autofree char *path = NULL;
    g_auto(MsFd) fd = -1;
    g_autoptr(MsImageManifest) m = ms_store_open_image(store, name, group, create, &fd, &path, NULL, error);
    if (m == NULL)
        return FALSE;
    g_autofree char *sfile = ms_store_is_host_group(group) ? g_strdup_printf("sha256-%s", m->sha256)
                                                           : g_strdup_printf("%s@sha256-%s", group, m->sha256);
    return ms_store_verify_fd_cached(m, fd, path, stamp_dir, sfile, error);
}

void
ms_image_copy_free(MsImageCopy *c)
{
    if (c == NULL)
        return;
    g_free(c->group);
    g_free(c->sha256);
    g_free(c->path);
    g_free(c);
}

static gboolean
ms_is_blob_name(const char *e)
{
    if (!g_str_has_prefix(e, "sha256-") || !g_str_has_suffix(e, ".img") || strlen(e) != 7 + 64 + 4)
        return FALSE;
    g_autofree char *hex = g_strndup(e + 7, 64);
    return ms_is_sha256_hex(hex);
}

static int
ms_copy_cmp(gconstpointer a, gconstpointer b)
{
    const MsImageCopy *x = *(MsImageCopy *const *)a, *y = *(MsImageCopy *const *)b;
    int c = strcmp(x->sha256, y->sha256);
    return c ? c : strcmp(x->group, y->group);
}

static void
ms_add_problem(GPtrArray **problems, char *msg)
{
    if (problems == NULL) {
        g_free(msg);
        return;
    }
    if (*problems == NULL)
        *problems = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(*problems, msg);
}

GPtrArray *
ms_image_store_group_copies(const char *store, GPtrArray **problems, GError **error)
{
    g_auto(MsFd) store_fd = ms_store_open(store, FALSE, error);
    if (store_fd < 0)
        return NULL;
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func((GDestroyNotify)ms_image_copy_free);
    g_autofree char *gpath = g_build_filename(store, "groups", NULL);
    g_autoptr(GError) local = NULL;
    int gfd = ms_store_openat(store_fd, "groups", O_RDONLY | O_DIRECTORY, gpath, &local);
    if (gfd < 0) {
        if (g_error_matches(local, MS_ERROR, MS_ERROR_NOT_FOUND))
            return g_steal_pointer(&out);
        g_propagate_error(error, g_steal_pointer(&local));
        return NULL;
    }
    DIR *d = fdopendir(gfd);
    if (d == NULL) {
        close(gfd);
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: cannot read", gpath);
        return NULL;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *g = de->d_name;
        if (strcmp(g, ".") == 0 || strcmp(g, "..") == 0)
            continue;
        g_autofree char *dpath = g_build_filename(gpath, g, NULL);
        if (!ms_image_store_group_is_valid(g)) {
            ms_add_problem(problems, g_strdup_printf("%s: not a sharing group's directory (ignored)", dpath));
            continue;
        }
        g_autoptr(GError) derr = NULL;
        int cfd = ms_store_openat(dirfd(d), g, O_RDONLY | O_DIRECTORY, dpath, &derr);
        if (cfd < 0) {
            ms_add_problem(problems, g_strdup(derr->message));
            continue;
        }
        DIR *cd = fdopendir(cfd);
        if (cd == NULL) {
            close(cfd);
            continue;
        }
        struct dirent *ce;
        while ((ce = readdir(cd)) != NULL) {
            if (!ms_is_blob_name(ce->d_name))
                continue;
            struct stat st;
            g_autofree char *cpath = g_build_filename(dpath, ce->d_name, NULL);
            if (fstatat(dirfd(cd), ce->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
                ms_add_problem(problems, g_strdup_printf("%s: not a regular file (ignored)", cpath));
                continue;
            }
            MsImageCopy *c = g_new0(MsImageCopy, 1);
            c->group = g_strdup(g);
            c->sha256 = g_strndup(ce->d_name + 7, 64);
            c->path = g_steal_pointer(&cpath);
            c->size = st.st_size;
            c->inode = st.st_ino;
            g_ptr_array_add(out, c);
        }
        closedir(cd);
    }
    closedir(d);
    g_ptr_array_sort(out, ms_copy_cmp);
    return g_steal_pointer(&out);
}

guint
ms_image_store_verify_copies(const char *store, const char *name, GPtrArray *notes, GPtrArray *problems)
{
    g_autoptr(MsImageManifest) m = ms_image_store_lookup(store, name, NULL, NULL);
    g_autoptr(GPtrArray) copies = m ? ms_image_store_group_copies(store, NULL, NULL) : NULL;
    guint n = 0;
    for (guint i = 0; copies && i < copies->len; i++) {
        MsImageCopy *c = g_ptr_array_index(copies, i);
        if (strcmp(c->sha256, m->sha256) != 0)
            continue;
        g_autoptr(GError) error = NULL;
        g_auto(MsFd) fd = open(c->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        char sha[65] = "";
        guint64 size = 0;
        struct stat st;
        char *why = NULL;
        if (fd < 0)
            why = g_strdup_printf("cannot open %s: %s", c->path, g_strerror(errno));
        else if (!ms_image_sha256_fd(fd, sha, &size, c->path, &error))
            why = g_strdup(error->message);
        else if (strcmp(sha, m->sha256) != 0 || size != m->size)
            why = g_strdup_printf("%s has sha256 %s (%" G_GUINT64_FORMAT " bytes), the manifest says %s: the "
                                  "copy changed behind the store's back; stop the group's domains, delete it "
                                  "(the next start makes it again)", c->path, sha, size, m->sha256);
        else if (fstat(fd, &st) == 0 && (st.st_mode & 0222))
            why = g_strdup_printf("%s is writable (mode %04o, must be 0444)", c->path,
                                  (unsigned)(st.st_mode & 07777));
        if (why) {
            n++;
            if (problems)
                g_ptr_array_add(problems, g_strdup_printf("image '%s': the copy of sharing group '%s': %s", name,
                                                          c->group, why));
            g_free(why);
        } else if (notes) {
            g_ptr_array_add(notes, g_strdup_printf("copy of sharing group '%s': OK (%s, inode %" G_GUINT64_FORMAT
                                                   ")", c->group, c->path, c->inode));
        }
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* what running domains use                                            */

/* A domain directory counts while its agent runs. Without an agent.pid we
 * cannot tell, so it counts too: deleting a blob a guest maps is worse
 * than keeping one too long. A stale pid file means the domain is gone. */
static gboolean
ms_domain_dir_live(const char *dir)
{
    g_autofree char *pidfile = g_build_filename(dir, "agent.pid", NULL);
    if (!g_file_test(pidfile, G_FILE_TEST_EXISTS))
        return TRUE;
    return ms_pidfile_read_live(pidfile) > 0;
}

void
ms_image_use_free(MsImageUse *u)
{
    if (u == NULL)
        return;
    g_free(u->uuid);
    g_free(u->domain);
    g_free(u->name);
    g_free(u->sha256);
    g_free(u->mode);
    g_free(u->group);
    g_free(u);
}

static int
ms_use_cmp(gconstpointer a, gconstpointer b)
{
    const MsImageUse *x = *(MsImageUse *const *)a, *y = *(MsImageUse *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->domain, y->domain);
}

GPtrArray *
ms_image_store_uses(void)
{
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)ms_image_use_free);
    g_autofree char *root = g_build_filename(ms_runtime_dir(), "domains", NULL);
    g_autoptr(GDir) dir = g_dir_open(root, 0, NULL);
    const char *ent;
    while (dir && (ent = g_dir_read_name(dir)) != NULL) {
        g_autofree char *ddir = g_build_filename(root, ent, NULL);
        g_autofree char *file = g_build_filename(ddir, "images", NULL);
        g_autofree char *text = NULL;
        if (!ms_file_read_bounded(file, MS_SMALL_FILE_MAX, &text, NULL, NULL))
            continue;
        if (!ms_domain_dir_live(ddir))
            continue;
        /* the domain's name, for messages: the agent's status file */
        g_autofree char *status = g_build_filename(ddir, "status", NULL);
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autofree char *dname = NULL;
        if (g_key_file_load_from_file(kf, status, G_KEY_FILE_NONE, NULL))
            dname = g_key_file_get_string(kf, "agent", "domain", NULL);
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        for (guint i = 0; lines[i]; i++) {
            g_auto(GStrv) f = g_strsplit_set(g_strstrip(lines[i]), " \t", -1);
            if (g_strv_length(f) < 2 || !ms_image_name_is_valid(f[0]) || !ms_is_sha256_hex(f[1]))
                continue;
            MsImageUse *u = g_new0(MsImageUse, 1);
            u->uuid = g_strdup(ent);
            u->domain = g_strdup(dname && *dname ? dname : ent);
            u->name = g_strdup(f[0]);
            u->sha256 = g_strdup(f[1]);
            u->mode = g_strdup(f[2] ? f[2] : "");
            /* an agent from before group copies attached blobs/ itself */
            const char *g = f[2] && f[3] ? f[3] : MS_IMAGE_GROUP_HOST;
            if (!ms_image_store_group_is_valid(g)) {
                g_debug("%s: line %u: '%s' is not a sharing group", file, i + 1, g);
                ms_image_use_free(u);
                continue;
            }
            u->group = g_strdup(g);
            g_ptr_array_add(out, u);
        }
    }
    g_ptr_array_sort(out, ms_use_cmp);
    return out;
}

void
ms_image_store_in_use(GHashTable **names, GHashTable **digests)
{
    g_autoptr(GHashTable) n = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GHashTable) d = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autofree char *root = g_build_filename(ms_runtime_dir(), "domains", NULL);
    g_autoptr(GDir) dir = g_dir_open(root, 0, NULL);
    const char *ent;
    while (dir && (ent = g_dir_read_name(dir)) != NULL) {
        g_autofree char *ddir = g_build_filename(root, ent, NULL);
        g_autofree char *file = g_build_filename(ddir, "images", NULL);
        g_autofree char *text = NULL;
        if (!ms_file_read_bounded(file, MS_SMALL_FILE_MAX, &text, NULL, NULL))
            continue;
        if (!ms_domain_dir_live(ddir))
            continue;
        g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
        for (guint i = 0; lines[i]; i++) {
            g_auto(GStrv) f = g_strsplit_set(g_strstrip(lines[i]), " \t", -1);
            if (g_strv_length(f) < 2 || !ms_image_name_is_valid(f[0])) {
                if (*lines[i])
                    g_debug("%s: line %u ignored (not \"NAME SHA256 MODE\")", file, i + 1);
                continue;
            }
            g_hash_table_add(n, g_strdup(f[0]));
            if (ms_is_sha256_hex(f[1]))
                g_hash_table_add(d, g_strdup(f[1]));
        }
    }
    if (names)
        *names = g_steal_pointer(&n);
    if (digests)
        *digests = g_steal_pointer(&d);
}

/* ------------------------------------------------------------------ */
/* writers                                                             */

/* Groups of the domains the hook has recorded (RUNTIME/domains/UUID/
 * sharing, from prepare to release) that are still live: their copies of
 * current images stay, so that a copy the hook made at prepare is there
 * when the agent attaches it a moment later. */
static GHashTable *
ms_store_live_groups(void)
{
    GHashTable *out = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autofree char *root = g_build_filename(ms_runtime_dir(), "domains", NULL);
    g_autoptr(GDir) dir = g_dir_open(root, 0, NULL);
    const char *ent;
    while (dir && (ent = g_dir_read_name(dir)) != NULL) {
        g_autofree char *ddir = g_build_filename(root, ent, NULL);
        g_autofree char *file = g_build_filename(ddir, "sharing", NULL);
        g_autofree char *buf = NULL, *name = NULL, *group = NULL;
        gsize len = 0;
        gboolean merging;
        if (!ms_file_read_bounded(file, MS_SHARING_RECORD_MAX, &buf, &len, NULL) ||
            !ms_sharing_record_parse(buf, len, file, &name, &group, &merging, NULL) || !ms_domain_dir_live(ddir))
            continue;
        g_hash_table_add(out, g_steal_pointer(&group));
    }
    return out;
}

/* Removes the group copies nobody needs: a copy stays while a running
 * domain of its group maps it (its agent's runtime file lists the group
 * and the digest), or while a recorded domain of its group runs and the
 * copy is of a digest a manifest names (CURRENT: "sha256-HEX.img"). Temp
 * files of an interrupted copy go; empty group directories too. What is
 * not a valid group's directory or a copy's name is left alone. Returns
 * the number of copies removed; REPORT (if given) gets a line per copy
 * removed. */
static int
ms_store_gc_groups_locked(int store_fd, const char *store, GHashTable *current, GPtrArray *report)
{
    g_autofree char *gpath = g_build_filename(store, "groups", NULL);
    int gfd = openat(store_fd, "groups", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (gfd < 0) {
        if (errno != ENOENT)
            g_warning("%s: %s", gpath, g_strerror(errno));
        return errno == ENOENT ? 0 : -1;
    }
    DIR *d = fdopendir(gfd);
    if (d == NULL) {
        close(gfd);
        return -1;
    }
    g_autoptr(GHashTable) live = ms_store_live_groups();
    g_autoptr(GHashTable) used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GPtrArray) uses = ms_image_store_uses();
    for (guint i = 0; i < uses->len; i++) {
        MsImageUse *u = g_ptr_array_index(uses, i);
        g_hash_table_add(used, g_strdup_printf("%s/sha256-%s.img", u->group, u->sha256));
    }
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *g = de->d_name;
        if (!ms_image_store_group_is_valid(g))
            continue;
        int cfd = openat(dirfd(d), g, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0)
            continue;   /* a symlink or a file: not ours to touch */
        DIR *cd = fdopendir(cfd);
        if (cd == NULL) {
            close(cfd);
            continue;
        }
        struct dirent *ce;
        while ((ce = readdir(cd)) != NULL) {
            const char *e = ce->d_name;
            gboolean temp = g_str_has_prefix(e, ".tmp-");
            if (!temp && !ms_is_blob_name(e))
                continue;
            if (!temp) {
                g_autofree char *key = g_strdup_printf("%s/%s", g, e);
                if (g_hash_table_contains(used, key) ||
                    (g_hash_table_contains(live, g) && g_hash_table_contains(current, e)))
                    continue;
            }
            if (unlinkat(dirfd(cd), e, 0) < 0) {
                g_warning("%s/%s/%s: cannot remove: %s", gpath, g, e, g_strerror(errno));
                continue;
            }
            if (temp)
                continue;
            removed++;
            if (report)
                g_ptr_array_add(report, g_strdup_printf("%s/%s/%s: removed, no running domain of sharing "
                                                        "group '%s' maps it", gpath, g, e, g));
        }
        closedir(cd);
        /* the last copy gone: the directory too (ENOTEMPTY otherwise) */
        (void)unlinkat(dirfd(d), g, AT_REMOVEDIR);
    }
    closedir(d);
    return removed;
}

static int
ms_store_gc_locked(int store_fd, const char *store, GPtrArray *kept, GError **error)
{
    g_autoptr(GPtrArray) names = ms_store_names(store_fd, store, error);
    if (names == NULL)
        return -1;
    g_autoptr(GHashTable) keep = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; i < names->len; i++) {
        g_autoptr(GError) local = NULL;
        g_autoptr(MsImageManifest) m = ms_store_read_manifest(store_fd, store, g_ptr_array_index(names, i),
                                                              &local);
        if (m == NULL) {
            /* cannot tell which blob it names: collect nothing */
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "not collecting blobs: %s", local->message);
            return -1;
        }
        g_hash_table_add(keep, g_strdup_printf("sha256-%s.img", m->sha256));
    }
    g_autoptr(GHashTable) used = NULL;
    ms_image_store_in_use(NULL, &used);

    g_autofree char *bdir = g_build_filename(store, "blobs", NULL);
    int fd = ms_store_openat(store_fd, "blobs", O_RDONLY | O_DIRECTORY, bdir, error);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: cannot read", bdir);
        return -1;
    }
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *e = de->d_name;
        gboolean blob = g_str_has_prefix(e, "sha256-") && g_str_has_suffix(e, ".img") && strlen(e) == 7 + 64 + 4;
        /* temp files of an interrupted add: nobody else writes while we
         * hold the lock */
        gboolean temp = g_str_has_prefix(e, ".tmp-");
        if (!blob && !temp)
            continue;
        if (temp && ms_store_temp_in_progress(dirfd(d), e))
            continue;
        if (blob) {
            g_autofree char *hex = g_strndup(e + 7, 64);
            if (g_hash_table_contains(keep, e))
                continue;
            if (g_hash_table_contains(used, hex)) {
                /* an older build a running guest still maps */
                if (kept) {
                    g_autoptr(GPtrArray) uses = ms_image_store_uses();
                    g_autoptr(GString) who = g_string_new(NULL);
                    for (guint i = 0; i < uses->len; i++) {
                        MsImageUse *u = g_ptr_array_index(uses, i);
                        if (strcmp(u->sha256, hex) == 0)
                            g_string_append_printf(who, "%sdomain '%s' (image '%s')", who->len ? ", " : "",
                                                   u->domain, u->name);
                    }
                    g_ptr_array_add(kept, g_strdup_printf("%s/%s: kept, in use by %s until it stops", bdir, e,
                                                          who->str));
                }
                continue;
            }
        }
        if (unlinkat(dirfd(d), e, 0) == 0)
            removed++;
        else
            g_warning("%s/%s: cannot remove: %s", bdir, e, g_strerror(errno));
    }
    closedir(d);
    int r = ms_store_gc_groups_locked(store_fd, store, keep, kept);
    return r < 0 ? removed : removed + r;
}

int
ms_image_store_gc_report(const char *store, GPtrArray **kept, GError **error)
{
    g_auto(MsFd) store_fd = ms_store_open(store, FALSE, error);
    if (store_fd < 0)
        return -1;
    g_auto(MsFd) lock = ms_store_lock(store_fd, store, error);
    if (lock < 0)
        return -1;
    g_autoptr(GPtrArray) k = g_ptr_array_new_with_free_func(g_free);
    int n = ms_store_gc_locked(store_fd, store, k, error);
    if (n >= 0 && kept)
        *kept = g_steal_pointer(&k);
    return n;
}

int
ms_image_store_gc(const char *store, GError **error)
{
    return ms_image_store_gc_report(store, NULL, error);
}

static char *
ms_iso_time(gint64 t)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(t);
    return dt ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup("");
}

/* Gives the finished temp file TMPNAME in blobs/ (hashed by the caller:
 * M's digest and size are its bytes) the blob's name, mode 0444, unless
 * the same bytes are stored already (blobs are never rewritten: the temp
 * file goes), then points M->name at it and collects the name's previous
 * blob if nothing else uses it. The store's lock is held. What `image
 * build` and `image receive` share: the one place a name is taken. */
static gboolean
ms_store_take_name_locked(int store_fd, const char *store, int blobs_fd, int names_fd, const char *tmpname,
                          const MsImageManifest *m, GError **error)
{
    g_autofree char *bdir = g_build_filename(store, "blobs", NULL);
    g_autofree char *bname = g_strdup_printf("sha256-%s.img", m->sha256);
    struct stat st;
    if (fstatat(blobs_fd, bname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        /* same bytes already stored: blobs are never rewritten */
        unlinkat(blobs_fd, tmpname, 0);
        if (!S_ISREG(st.st_mode)) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s/%s: exists and is not a regular file", bdir, bname);
            return FALSE;
        }
    } else {
        if (fchmodat(blobs_fd, tmpname, 0444, 0) < 0 || renameat(blobs_fd, tmpname, blobs_fd, bname) < 0) {
            int e = errno;
            unlinkat(blobs_fd, tmpname, 0);
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s/%s: %s", bdir, bname, g_strerror(e));
            return FALSE;
        }
        fsync(blobs_fd);
    }

    g_autofree char *json = ms_image_manifest_to_json(m);
    g_autofree char *mname = g_strconcat(m->name, ".json", NULL);
    g_autofree char *mpath = g_build_filename(store, "names", mname, NULL);
    if (!ms_file_write_atomic(mpath, json, -1, 0644, error))
        return FALSE;
    fsync(names_fd);

    /* the name's previous blob, if nothing else uses it */
    g_autoptr(GError) gerr = NULL;
    if (ms_store_gc_locked(store_fd, store, NULL, &gerr) < 0)
        g_debug("image store %s: %s", store, gerr->message);
    return TRUE;
}

/* What add and receive write through: the store, its blobs/ and names/
 * directories (each opened without following a symlink) and the store's
 * lock. One prelude, so the two ways an image enters the store open and
 * check the same things. */
typedef struct {
    int store_fd;
    int lock;
    int blobs_fd;
    int names_fd;
    char *bdir;
} MsStoreWriter;

#define MS_STORE_WRITER_INIT { -1, -1, -1, -1, NULL }

static void
ms_store_writer_clear(MsStoreWriter *w)
{
    ms_close_fd(&w->names_fd);
    ms_close_fd(&w->blobs_fd);
    ms_close_fd(&w->lock);
    ms_close_fd(&w->store_fd);
    g_clear_pointer(&w->bdir, g_free);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(MsStoreWriter, ms_store_writer_clear)

static gboolean
ms_store_writer_open(MsStoreWriter *w, const char *store, GError **error)
{
    if ((w->store_fd = ms_store_open(store, TRUE, error)) < 0 ||
        (w->lock = ms_store_lock(w->store_fd, store, error)) < 0)
        return FALSE;
    w->bdir = g_build_filename(store, "blobs", NULL);
    g_autofree char *ndir = g_build_filename(store, "names", NULL);
    return (w->blobs_fd = ms_store_openat(w->store_fd, "blobs", O_RDONLY | O_DIRECTORY, w->bdir, error)) >= 0 &&
           (w->names_fd = ms_store_openat(w->store_fd, "names", O_RDONLY | O_DIRECTORY, ndir, error)) >= 0;
}

MsImageManifest *
ms_image_store_add(const char *store, const char *name, const char *source, const MsImageBuildOptions *opts,
                   GPtrArray **warnings, GError **error)
{
    if (!ms_image_name_is_valid(name)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "'%s' is not a valid image name (letters, digits, '.', '_', '-'; "
                    "first a letter or digit; at most 64)", name);
        return NULL;
    }
    g_auto(MsStoreWriter) sw = MS_STORE_WRITER_INIT;
    if (!ms_store_writer_open(&sw, store, error))
        return NULL;
    const int store_fd = sw.store_fd, blobs_fd = sw.blobs_fd, names_fd = sw.names_fd;
    const char *bdir = sw.bdir;

    MsImageBuildOptions o = opts ? *opts : (MsImageBuildOptions){ 0 };
    char label[MS_IMAGE_LABEL_MAX + 1];
    g_strlcpy(label, name, sizeof(label));
    o.label = label;

    g_autofree char *tmpname = g_strdup_printf(".tmp-%s-%d.img", name, (int)getpid());
    g_autofree char *tmp = g_build_filename(bdir, tmpname, NULL);
    MsImageBuildResult r = { 0 };
    if (!ms_image_build(source, tmp, &o, &r, error))
        return NULL;
    if (warnings)
        *warnings = g_steal_pointer(&r.warnings);

    /* the manifest first: ms_store_take_name_locked takes the temp file */
    g_autoptr(MsImageManifest) m = g_new0(MsImageManifest, 1);
    m->name = g_strdup(name);
    m->sha256 = g_strdup(r.sha256);
    m->size = r.size;
    m->block_size = MS_IMAGE_BLOCK_SIZE;
    m->files = r.files;
    g_autofree char *cwd = g_get_current_dir();
    if (opts && opts->disk) {
        g_autofree char *disk = g_path_is_absolute(opts->disk) ? g_strdup(opts->disk)
                                                               : g_build_filename(cwd, opts->disk, NULL);
        g_autofree char *part = r.partition ? g_strdup_printf(" partition %u", r.partition) : g_strdup("");
        m->source = g_strdup_printf("%s%s:%s", disk, part, source);
    } else {
        m->source = g_path_is_absolute(source) ? g_strdup(source) : g_build_filename(cwd, source, NULL);
    }
    g_autoptr(GStrvBuilder) sb = g_strv_builder_new();
    for (guint i = 0; opts && opts->paths && opts->paths[i]; i++) {
        g_autofree char *p = ms_image_path_normalize(opts->paths[i], NULL);
        if (p)
            g_strv_builder_add(sb, p);
    }
    m->paths = g_strv_builder_end(sb);
    {
        /* the image's own epoch, so the manifest is reproducible too */
        gint64 epoch = opts && opts->epoch ? opts->epoch : 0;
        const char *sde = g_getenv("SOURCE_DATE_EPOCH");
        if (epoch == 0 && sde && *sde)
            epoch = g_ascii_strtoll(sde, NULL, 10);
        m->created = ms_iso_time(epoch ? epoch : 1);
    }
    m->label = g_strdup(label);
    m->builder = g_strdup(MS_IMAGE_BUILDER_VERSION);
    m->usr = opts && opts->usr;
    ms_image_build_result_clear(&r);
    if (!ms_store_take_name_locked(store_fd, store, blobs_fd, names_fd, tmpname, m, error))
        return NULL;
    return g_steal_pointer(&m);
}

gboolean
ms_image_store_remove(const char *store, const char *name, GError **error)
{
    g_auto(MsFd) store_fd = ms_store_open(store, FALSE, error);
    if (store_fd < 0)
        return FALSE;
    g_auto(MsFd) lock = ms_store_lock(store_fd, store, error);
    if (lock < 0)
        return FALSE;
    g_autoptr(MsImageManifest) m = ms_store_read_manifest(store_fd, store, name, error);
    if (m == NULL)
        return FALSE;
    g_autoptr(GHashTable) used = NULL;
    ms_image_store_in_use(&used, NULL);
    if (g_hash_table_contains(used, name)) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED,
                    "image '%s' is in use by a running domain (listed in %s/domains/*/images)", name,
                    ms_runtime_dir());
        return FALSE;
    }
    g_autofree char *ndir = g_build_filename(store, "names", NULL);
    g_auto(MsFd) names_fd = ms_store_openat(store_fd, "names", O_RDONLY | O_DIRECTORY, ndir, error);
    if (names_fd < 0)
        return FALSE;
    g_autofree char *mname = g_strconcat(name, ".json", NULL);
    if (unlinkat(names_fd, mname, 0) < 0) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s/%s: cannot remove: %s", ndir, mname, g_strerror(e));
        return FALSE;
    }
    fsync(names_fd);
    g_autoptr(GError) gerr = NULL;
    if (ms_store_gc_locked(store_fd, store, NULL, &gerr) < 0)
        g_debug("image store %s: %s", store, gerr->message);
    return TRUE;
}

/* ------------------------------------------------------------------ */
/* receive: an image pushed from another host (docs/images.md)          */

/* The one message for a received M whose name this store maps to OLD,
 * another digest. */
static void
ms_store_set_clash_error(GError **error, const char *store, const MsImageManifest *old, const MsImageManifest *m)
{
    g_set_error(error, MS_ERROR, MS_ERROR_FAILED,
                "image '%s' is sha256 %s in %s, the one sent is sha256 %s (--force replaces it)", m->name,
                old->sha256, store, m->sha256);
}

gboolean
ms_image_store_check_receive(const char *store, const MsImageManifest *m, guint64 max_size, gboolean force,
                             gboolean *have, GError **error)
{
    *have = FALSE;
    if (!ms_image_name_is_valid(m->name) || !ms_is_sha256_hex(m->sha256)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "image '%s' sha256 %s: not a valid name and digest",
                    m->name ? m->name : "", m->sha256 ? m->sha256 : "");
        return FALSE;
    }
    if (m->size == 0 || m->size > max_size) {
        g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG,
                    "image '%s' sha256 %s: %" G_GUINT64_FORMAT " bytes, the limit is 1 to %" G_GUINT64_FORMAT,
                    m->name, m->sha256, m->size, max_size);
        return FALSE;
    }
    g_auto(MsFd) store_fd = ms_store_open(store, FALSE, NULL);
    if (store_fd < 0)
        return TRUE;    /* no store yet: everything is missing */
    g_autoptr(GError) local = NULL;
    g_autoptr(MsImageManifest) old = ms_store_read_manifest(store_fd, store, m->name, &local);
    if (old == NULL) {
        if (g_error_matches(local, MS_ERROR, MS_ERROR_NOT_FOUND))
            return TRUE;
        /* an unreadable manifest is not replaced behind the admin's back */
        if (force)
            return TRUE;
        g_propagate_prefixed_error(error, g_steal_pointer(&local), "image '%s' sha256 %s: ", m->name, m->sha256);
        return FALSE;
    }
    if (strcmp(old->sha256, m->sha256) != 0) {
        if (force)
            return TRUE;
        ms_store_set_clash_error(error, store, old, m);
        return FALSE;
    }
    /* the same digest: have it if the blob is really there and whole
     * (its stamp-less verify costs a hash; a missing or bad blob is fetched
     * again, which a later take of the name cannot tell apart) */
    g_autoptr(GError) verr = NULL;
    if (ms_image_store_verify(store, m->name, &verr)) {
        *have = TRUE;
        return TRUE;
    }
    g_debug("image store %s: receiving again: %s", store, verr->message);
    return TRUE;
}

/* A received M may not take a name the store maps to another digest
 * (without --force). */
static gboolean
ms_store_check_clash(int store_fd, const char *store, const MsImageManifest *m, GError **error)
{
    g_autoptr(MsImageManifest) old = ms_store_read_manifest(store_fd, store, m->name, NULL);
    if (old && strcmp(old->sha256, m->sha256) != 0) {
        ms_store_set_clash_error(error, store, old, m);
        return FALSE;
    }
    return TRUE;
}

MsImageManifest *
ms_image_store_receive(const char *store, const MsImageManifest *m, int in_fd, guint64 max_size, gboolean force,
                       GError **error)
{
    gboolean have = FALSE;
    if (!ms_image_store_check_receive(store, m, max_size, force, &have, error))
        return NULL;
    /* the lock is held to create the temp file and again to take the
     * name, not while the bytes arrive (ms_store_temp_in_progress) */
    g_auto(MsStoreWriter) sw = MS_STORE_WRITER_INIT;
    if (!ms_store_writer_open(&sw, store, error))
        return NULL;
    const int store_fd = sw.store_fd, blobs_fd = sw.blobs_fd, names_fd = sw.names_fd;
    const char *bdir = sw.bdir;
    struct statvfs vfs;
    if (fstatvfs(blobs_fd, &vfs) == 0 && (guint64)vfs.f_bavail * vfs.f_frsize < m->size) {
        g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG,
                    "image '%s' sha256 %s: %" G_GUINT64_FORMAT " bytes, %s has %" G_GUINT64_FORMAT " free",
                    m->name, m->sha256, m->size, bdir, (guint64)vfs.f_bavail * vfs.f_frsize);
        return NULL;
    }

    /* a temp file of the same file system, so that the rename is atomic;
     * O_EXCL|O_NOFOLLOW: nothing planted under its name is followed */
    g_autofree char *tmpname = g_strdup_printf(".tmp-%s-%d.img", m->name, (int)getpid());
    g_autofree char *tmp = g_build_filename(bdir, tmpname, NULL);
    /* one of that name left by a receive killed midway (with our pid, now
     * reused) is stale: no live process has our pid */
    unlinkat(blobs_fd, tmpname, 0);
    g_auto(MsFd) out = openat(blobs_fd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0 || flock(out, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        if (out >= 0)
            unlinkat(blobs_fd, tmpname, 0);
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: %s", tmp, g_strerror(e));
        return NULL;
    }
    /* the temp file is ours now (gc skips it while we hold it): the
     * store is free for everyone else while the bytes arrive */
    ms_close_fd(&sw.lock);
    g_autoptr(GChecksum) ck = g_checksum_new(G_CHECKSUM_SHA256);
    enum { CHUNK = 1024 * 1024 };
    g_autofree guchar *buf = g_malloc(CHUNK);
    guint64 got = 0;
    const char *why = NULL;
    int err = 0;
    while (got < m->size) {
        gsize want = MIN((guint64)CHUNK, m->size - got);
        ssize_t r = read(in_fd, buf, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = r < 0 ? errno : 0;
            why = "read";
            break;
        }
        g_checksum_update(ck, buf, r);
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, r - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                err = errno;
                why = "write";
                break;
            }
            off += w;
        }
        if (why)
            break;
        got += r;
    }
    if (why == NULL) {
        /* exactly SIZE bytes: one more is a sender that lies about the size */
        char extra;
        ssize_t r;
        while ((r = read(in_fd, &extra, 1)) < 0 && errno == EINTR)
            ;
        if (r != 0) {
            err = r < 0 ? errno : 0;
            why = r < 0 ? "read" : "extra";
        }
    }
    if (why == NULL && fsync(out) < 0) {
        err = errno;
        why = "write";
    }
    if (why) {
        unlinkat(blobs_fd, tmpname, 0);
        if (strcmp(why, "extra") == 0)
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "image '%s' sha256 %s: the stream holds more than the %" G_GUINT64_FORMAT
                        " bytes announced; nothing kept", m->name, m->sha256, m->size);
        else if (strcmp(why, "read") == 0 && err == 0)
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "image '%s' sha256 %s: the stream ended after %" G_GUINT64_FORMAT " of %"
                        G_GUINT64_FORMAT " bytes; nothing kept", m->name, m->sha256, got, m->size);
        else
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "image '%s' sha256 %s: %s %s: %s; nothing kept",
                        m->name, m->sha256, why, strcmp(why, "read") == 0 ? "the stream" : tmp,
                        g_strerror(err));
        return NULL;
    }
    const char *sha = g_checksum_get_string(ck);
    if (strcmp(sha, m->sha256) != 0) {
        unlinkat(blobs_fd, tmpname, 0);
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "image '%s': the %" G_GUINT64_FORMAT " bytes received have sha256 %s, the sender announced "
                    "sha256 %s; nothing kept", m->name, m->size, sha, m->sha256);
        return NULL;
    }
    if ((sw.lock = ms_store_lock(store_fd, store, error)) < 0) {
        unlinkat(blobs_fd, tmpname, 0);
        return NULL;
    }
    /* again: the name may have been taken while the bytes arrived */
    if (!force && !ms_store_check_clash(store_fd, store, m, error)) {
        unlinkat(blobs_fd, tmpname, 0);
        return NULL;
    }
    if (!ms_store_take_name_locked(store_fd, store, blobs_fd, names_fd, tmpname, m, error))
        return NULL;
    /* the manifest as taken: the sender's, whose digest and size the
     * bytes now prove */
    g_autoptr(MsImageManifest) taken = ms_store_read_manifest(store_fd, store, m->name, error);
    return g_steal_pointer(&taken);
}

MsImageManifest *
ms_image_store_open_for_push(const char *store, const char *name, int *fd, GError **error)
{
    g_autofree char *bpath = NULL;
    return ms_store_open_image(store, name, NULL, FALSE, fd, &bpath, NULL, error);
}
