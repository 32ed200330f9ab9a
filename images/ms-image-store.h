/* images/ms-image-store.h: the content-addressed image store.
 *
 *   STORE/blobs/sha256-HEX.img   the images, mode 0444, never rewritten
 *   STORE/groups/GROUP/sha256-HEX.img
 *                                a sharing group's own copy of a blob (same
 *                                bytes, its own inode, so its own page-cache
 *                                pages: docs/security.md); group "host" uses
 *                                blobs/ itself
 *   STORE/names/NAME.json        one manifest per name, written atomically
 *   STORE/.lock                  flock: one writer (add, remove, gc, a
 *                                group copy) at a time
 *
 * STORE is $MEMSHARE_IMAGE_STORE, else [images] store= of memshare.conf, else
 * /var/lib/memshare/images. Names are resolved only inside the store, never
 * through a symlink. An image is in use while a running domain's
 * RUNTIME_DIR/domains/UUID/images lists it ("NAME SHA256 MODE" per line,
 * written by the agent); such images cannot be removed and their blobs are
 * never collected. */
#pragma once

#include <glib.h>

#include "ms-image-build.h"
#include "ms-policy.h"

G_BEGIN_DECLS

#define MS_IMAGE_NAME_LEN_MAX MS_POLICY_IMAGE_NAME_MAX
#define MS_IMAGE_MANIFEST_MAX (1024 * 1024)

typedef struct {
    char *name;
    char *sha256;       /* 64 lowercase hex digits */
    guint64 size;
    guint block_size;
    guint64 files;
    char *source;       /* the --from directory */
    GStrv paths;        /* the path selection; empty: the whole tree */
    char *created;      /* ISO 8601 (UTC) of the image's epoch: reproducible */
    char *label;
    char *builder;
    /* Built with --usr: the tree was checked to be a /usr ("usr": true). */
    gboolean usr;
} MsImageManifest;

void ms_image_manifest_free(MsImageManifest *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsImageManifest, ms_image_manifest_free)

/* [A-Za-z0-9][A-Za-z0-9._-]{0,63}: ms_policy_image_name_is_valid, the
 * policy parser's own rule. */
gboolean ms_image_name_is_valid(const char *name);

/* The store directory (see above); the caller frees it. */
char *ms_image_store_default_path(void);

/* Serialises / parses a manifest. Parsing checks every field (bounded
 * input: at most MS_IMAGE_MANIFEST_MAX bytes). */
char *ms_image_manifest_to_json(const MsImageManifest *m);
MsImageManifest *ms_image_manifest_parse(const char *data, gsize len, const char *what, GError **error);

/* Builds SOURCE into the store under NAME (replacing an older image of that
 * name; its blob is collected unless in use). The label is NAME cut to 16
 * bytes. Returns the new manifest. */
MsImageManifest *ms_image_store_add(const char *store, const char *name, const char *source,
                                    const MsImageBuildOptions *opts, GPtrArray **warnings,
                                    GError **error);

/* Resolves NAME inside the store: manifest and (if blob_path) the blob's
 * path. Refuses invalid names and symlinks anywhere below STORE. */
MsImageManifest *ms_image_store_lookup(const char *store, const char *name, char **blob_path,
                                       GError **error);

/* Does image M suit a policy's mount point MOUNT (NULL: none)? An image
 * mounted on /usr must have been built with --usr (the builder checked its
 * bin/ and lib/). FALSE with a message naming the image and what is
 * missing. The hook calls this at prepare and warns (a guest whose /usr is
 * not a /usr does not boot, but the domain itself is fine). */
gboolean ms_image_manifest_check_mount(const MsImageManifest *m, const char *mount, GError **error);

/* The same for image NAME of the store. */
gboolean ms_image_store_check_mount(const char *store, const char *name, const char *mount, GError **error);

/* Recomputes the blob's sha256 and size and compares them with the manifest. */
gboolean ms_image_store_verify(const char *store, const char *name, GError **error);

/* As ms_image_store_verify, but remembers a success: a stamp in STAMP_DIR
 * (one file per digest, holding the blob's device, inode, size, mtime and
 * ctime) lets the next call skip the hashing while the blob is untouched.
 * Any write to the blob changes its ctime, which no user can set back, so
 * a stale stamp cannot hide a modified blob. STAMP_DIR is created (0700);
 * the hook uses RUNSTATEDIR/memshare/verified, reset at boot. */
gboolean ms_image_store_verify_cached(const char *store, const char *name, const char *stamp_dir,
                                      GError **error);

/* Checks the blobs that running domains map for image NAME (which may be
 * older builds than the manifest's): each must still exist under its
 * digest's name and hash to that digest. NOTES (char*) get one line per
 * domain on an older build; PROBLEMS (char*) one per blob that is gone or
 * changed, naming the image, the domain and both digests. Returns the
 * number of problems. */
guint ms_image_store_verify_uses(const char *store, const char *name, GPtrArray *notes, GPtrArray *problems);

/* All manifests, sorted by name. Unreadable manifests are skipped with a
 * message in *problems (char*), if given. */
GPtrArray *ms_image_store_list(const char *store, GPtrArray **problems, GError **error);

/* Names of images that running domains use (from RUNTIME_DIR), and their
 * blobs' digests. Either may be NULL. */
void ms_image_store_in_use(GHashTable **names, GHashTable **digests);

/* One image attached to a running domain, from its agent's runtime file
 * ("NAME SHA256 MODE GROUP"; a line without GROUP is of an agent that
 * attached blobs/ itself: group "host"). */
typedef struct {
    char *uuid;
    char *domain;    /* the name from the agent's status file, else the UUID */
    char *name;
    char *sha256;    /* what the domain maps: after a rebuild, an older digest */
    char *mode;
    char *group;     /* whose copy it maps */
} MsImageUse;

void ms_image_use_free(MsImageUse *u);

/* Every image every running domain uses (MsImageUse*), sorted by image
 * name, then domain. */
GPtrArray *ms_image_store_uses(void);

/* Removes NAME (refused while a running domain uses it) and collects blobs
 * no manifest references. */
gboolean ms_image_store_remove(const char *store, const char *name, GError **error);

/* Deletes blobs (and stale temp files) no manifest and no running domain
 * references. Returns the number removed, -1 on error. */
int ms_image_store_gc(const char *store, GError **error);

/* As ms_image_store_gc; *KEPT (char*, if given) says which blobs no
 * manifest references were kept and which running domain uses each. */
int ms_image_store_gc_report(const char *store, GPtrArray **kept, GError **error);

/* ------------------------------------------------------------------ */
/* per-group copies (docs/images.md, "One copy per sharing group")      */

/* The group whose copy is STORE/blobs/ itself: every domain of it trusts
 * every other ([sharing] default-group=host, memshare before groups). */
#define MS_IMAGE_GROUP_HOST "host"

/* A resolved sharing group (ms_sharing_group_is_valid, at most
 * MS_SHARING_GROUP_MAX): the same rule the hook's records follow. A valid
 * group has no '/', does not start with '.', and so is one safe path
 * component below STORE/groups/. */
gboolean ms_image_store_group_is_valid(const char *group);

/* Path of GROUP's copy of the blob SHA256 (group "host": the blob itself). */
char *ms_image_store_group_blob_path(const char *store, const char *group, const char *sha256);

/* As ms_image_store_lookup, for GROUP: *blob_path is GROUP's copy of the
 * blob. A missing copy is made when CREATE is set (under the store's lock:
 * a reflink where the file system has them, FICLONE, else a plain copy;
 * hashed and compared with the manifest before it takes its name, mode
 * 0444), else it is MS_ERROR_NOT_FOUND. *created (if given) says whether
 * this call made it. Every component is opened with O_NOFOLLOW: a planted
 * symlink (groups/b -> groups/a) is refused, never followed. */
MsImageManifest *ms_image_store_lookup_group(const char *store, const char *name, const char *group,
                                             gboolean create, char **blob_path, gboolean *created,
                                             GError **error);

/* As ms_image_store_verify_cached, for GROUP's copy (made if CREATE and
 * missing). The stamp is per group and digest. */
gboolean ms_image_store_verify_group_cached(const char *store, const char *name, const char *group,
                                            gboolean create, const char *stamp_dir, GError **error);

/* One group copy in STORE/groups/. */
typedef struct {
    char *group;
    char *sha256;
    char *path;
    guint64 size;
    guint64 inode;
} MsImageCopy;

void ms_image_copy_free(MsImageCopy *c);

/* Every group copy (MsImageCopy*), sorted by digest, then group. An
 * entry that is not a directory of a valid group or a copy's name is
 * skipped (with a line in *problems, if given). No groups/: empty. */
GPtrArray *ms_image_store_group_copies(const char *store, GPtrArray **problems, GError **error);

/* Hashes every group copy of image NAME's current digest and compares it
 * with the manifest (a writable copy is a problem too). NOTES get one
 * line per copy that is fine, PROBLEMS one per copy that is not. Returns
 * the number of problems. */
guint ms_image_store_verify_copies(const char *store, const char *name, GPtrArray *notes, GPtrArray *problems);

/* ------------------------------------------------------------------ */
/* push and receive (docs/images.md, "Moving an image to another host") */

/* The largest image `image receive` takes (64 GiB, ten times a whole
 * Debian /usr): the size comes from another host, before any byte does. */
#define MS_IMAGE_RECEIVE_MAX (G_GUINT64_CONSTANT(64) << 30)

/* Opens image NAME's blob read-only for sending (every component with
 * O_NOFOLLOW, as ms_image_store_lookup): its manifest, the blob in *FD
 * (the caller closes it). */
MsImageManifest *ms_image_store_open_for_push(const char *store, const char *name, int *fd, GError **error);

/* Can M (a manifest from the sending host: name, digest, size) be
 * received? Refuses a size of 0 or above MAX_SIZE, and a name the store
 * maps to another digest unless FORCE (naming both digests). *HAVE: the
 * name already maps to M's digest and its blob verifies (nothing to send). */
gboolean ms_image_store_check_receive(const char *store, const MsImageManifest *m, guint64 max_size,
                                      gboolean force, gboolean *have, GError **error);

/* Reads exactly M->size bytes from IN_FD into a temp file in STORE/blobs
 * (O_EXCL|O_NOFOLLOW, under the store's lock), hashes them, and takes M's
 * name as `image build` does (blob 0444 under its digest, the manifest
 * written atomically). A short stream, a byte more, or another digest
 * (both named) is refused and the temp file removed: nothing is kept.
 * Checks as ms_image_store_check_receive first, and free space. Returns
 * the manifest as stored. */
MsImageManifest *ms_image_store_receive(const char *store, const MsImageManifest *m, int in_fd,
                                        guint64 max_size, gboolean force, GError **error);

G_END_DECLS
