/* qmp-plugin/ms-images.c: the shared-image module of the agent. For each
 * <shared-image> of the policy it resolves the name inside the image store
 * (never a path from the metadata), verifies the blob's sha256, and attaches
 * it read-only:
 *   dax: object-add memory-backend-file (mem-path = the blob, share=on,
 *        readonly=on: one host page-cache copy for every guest, and the
 *        mapping cannot write the file) + device_add virtio-pmem-pci on a free
 *        PCIe root port. libvirt 9.0 cannot express this safely
 *        (platform-facts.md), so it goes through QMP;
 *   blk: a <disk> with <readonly/><shareable/> through virDomainAttachDevice
 *        when the agent talks to libvirt (so it stays in libvirt's live XML),
 *        blockdev-add + device_add virtio-blk-pci for a bare QEMU.
 * The blob is the domain's sharing group's own copy (STORE/groups/GROUP/,
 * blobs/ for group host; docs/security.md): the group it started in, never
 * another group's, whatever the policy says later.
 * It records what is attached in RUNTIME_DIR/images ("NAME SHA256 MODE
 * GROUP" per line), which `memsharectl image remove` reads to refuse removing an image
 * in use, and reports in the status file's [images] group. Attaching is
 * idempotent: an agent that restarts finds its devices by id and does not
 * attach twice; if the name was rebuilt meanwhile, it keeps (and lists) the
 * older blob the guest maps, which the guest leaves at its next start.
 * A dax image's placement (root port, devfn, guest address) goes into the
 * live metadata for live migration (formats/ms-dax-carry.h); on the
 * destination the hook has put the same backend and device on QEMU's
 * command line, and the agent adopts them like an earlier agent's.
 * Every period it checks the attached blobs: one modified in place (the
 * guest sees the changed bytes), removed, or replaced under its name is
 * reported with the image, the domain and both digests; the guest runs on.
 * Nothing is detached at stop: the guest may have the image mounted, and
 * the devices go away with QEMU. */
#include "ms-images.h"
#include "ms-dax-carry.h"
#include "ms-status-keys.h"
#include "ms-error.h"
#include "ms-image-build.h"
#include "ms-image-store.h"
#include "ms-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>

#define MS_IMAGES_PERIOD_MS 30000
#define MS_IMAGES_MANIFEST_MAX (1024 * 1024)
/* virtio-pmem regions are hot-plugged memory: the guest kernel maps them
 * in 2 MiB subsections, so the backend size must be a multiple of that. */
#define MS_IMAGES_DAX_ALIGN (2 * 1024 * 1024)

typedef struct {
    char *name;
    char *mount;
    MsImageMode mode;
    guint index;           /* position in the policy: device ids derive from it */
    char *sha256;
    guint64 size;
    char *blob;            /* STORE/blobs/sha256-HEX.img */
    gboolean attached;
    char *error;           /* last error, logged once per change */
    int blob_fd;           /* the verified blob, held open to watch its inode */
    MsImagesBlobWatch watch;
    char *update_noted;    /* the newer digest already logged */
    char *mount_warning;   /* mount='/usr' for an image not built --usr */
} MsImageSlot;

typedef struct {
    GPtrArray *slots;      /* MsImageSlot* */
    char *store;
    gboolean dax_unpublished;  /* the placement metadata is to be (re)written */
    /* the sharing group whose copies the domain maps: the one it started
     * in ([sharing] group of the status), fixed at the first attach */
    char *group;
    char *group_noted;     /* the pending group already logged */
} MsImages;

static void
ms_image_slot_free(MsImageSlot *s)
{
    if (s == NULL)
        return;
    g_free(s->name);
    g_free(s->mount);
    g_free(s->sha256);
    g_free(s->blob);
    g_free(s->error);
    if (s->blob_fd >= 0)
        close(s->blob_fd);
    ms_images_blob_watch_clear(&s->watch);
    g_free(s->update_noted);
    g_free(s->mount_warning);
    g_free(s);
}

static void
ms_images_free(gpointer p)
{
    MsImages *m = p;
    if (m == NULL)
        return;
    g_clear_pointer(&m->slots, g_ptr_array_unref);
    g_free(m->store);
    g_free(m->group);
    g_free(m->group_noted);
    g_free(m);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsImages, ms_images_free)

static guint64
ms_images_period(const MsAgentEnv *env)
{
    if (env->policy == NULL || env->policy->images == NULL || env->policy->images->len == 0)
        return 0;
    /* tests shorten the blob check's period instead of waiting 30 s */
    const char *e = g_getenv("MEMSHARE_IMAGES_PERIOD_MS");
    guint64 v = e ? g_ascii_strtoull(e, NULL, 10) : 0;
    return v >= 100 && v <= 3600000 ? v : MS_IMAGES_PERIOD_MS;
}

void
ms_images_blob_watch_clear(MsImagesBlobWatch *w)
{
    g_clear_pointer(&w->message, g_free);
    memset(w, 0, sizeof(*w));
}

static gboolean
ms_stat_same_inode(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static gboolean
ms_stat_same_content(const struct stat *a, const struct stat *b)
{
    /* a write changes mtime and ctime, and nobody can set ctime back */
    return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
           a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void
ms_watch_set(MsImagesBlobWatch *w, MsImagesBlobState state, char *message)
{
    w->state = state;
    g_free(w->message);
    w->message = message;
}

MsImagesBlobState
ms_images_blob_check(MsImagesBlobWatch *w, const char *image, const char *domain, const char *sha256,
                     const char *path, int fd)
{
    /* modified in place is the worst, and stays reported: the guest may
     * already have read the changed bytes */
    if (w->state == MS_IMAGES_BLOB_MODIFIED)
        return w->state;
    struct stat now;
    if (fd >= 0 && fstat(fd, &now) == 0 && !ms_stat_same_content(&now, &w->at)) {
        char hex[65];
        guint64 size = 0;
        g_autoptr(GError) herr = NULL;
        if (!ms_image_sha256_fd(fd, hex, &size, path, &herr)) {
            g_debug("image '%s': %s", image, herr->message);
        } else if (strcmp(hex, sha256) != 0) {
            ms_watch_set(w, MS_IMAGES_BLOB_MODIFIED,
                         g_strdup_printf("image '%s' of domain '%s': the blob the guest maps was MODIFIED IN "
                                         "PLACE: it now has sha256 %s, the guest attached sha256 %s (%s); the "
                                         "guest sees the changed bytes. Blobs are 0444 root and must never be "
                                         "written: stop the domain, rebuild the image, start it again",
                                         image, domain, hex, sha256, path));
            return w->state;
        } else {
            w->at = now;   /* touched or chmodded, same bytes */
        }
    }
    if (!w->path_known) {
        w->path_seen = w->at;
        w->path_known = TRUE;
    }
    struct stat ps;
    if (lstat(path, &ps) < 0) {
        int e = errno;
        if (w->state != MS_IMAGES_BLOB_REMOVED)
            ms_watch_set(w, MS_IMAGES_BLOB_REMOVED,
                         g_strdup_printf("image '%s' of domain '%s': its blob %s (sha256 %s) is %s; the guest "
                                         "keeps mapping the file it attached, nothing is lost, but that build "
                                         "cannot be attached again", image, domain, path, sha256,
                                         e == ENOENT ? "gone from the store" : g_strerror(e)));
        memset(&w->path_seen, 0, sizeof(w->path_seen));
        return w->state;
    }
    if (fd >= 0 && ms_stat_same_inode(&ps, &w->at)) {
        ms_watch_set(w, MS_IMAGES_BLOB_OK, NULL);
        w->path_seen = ps;
        return w->state;
    }
    /* the same other file as last time (a replacement, or a copy of the
     * same bytes): hashed already, a 600 MiB blob is not hashed every period */
    if (w->state != MS_IMAGES_BLOB_REMOVED && ms_stat_same_inode(&ps, &w->path_seen) &&
        ms_stat_same_content(&ps, &w->path_seen))
        return w->state;
    w->path_seen = ps;
    char hex[65] = "unreadable";
    int nfd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (nfd >= 0) {
        if (!ms_image_sha256_fd(nfd, hex, NULL, path, NULL))
            g_strlcpy(hex, "unreadable", sizeof(hex));
        close(nfd);
    }
    if (strcmp(hex, sha256) == 0) {
        /* the same bytes under another inode (restored from a copy) */
        ms_watch_set(w, MS_IMAGES_BLOB_OK, NULL);
        return w->state;
    }
    ms_watch_set(w, MS_IMAGES_BLOB_REPLACED,
                 g_strdup_printf("image '%s' of domain '%s': %s was replaced by another file (sha256 %s; the guest "
                                 "attached sha256 %s); the guest keeps mapping the old file, nothing is lost, but "
                                 "the store's blob no longer matches its name (memsharectl image verify %s)",
                                 image, domain, path, hex, sha256, image));
    return w->state;
}

/* Resolves the image inside the store (images/ms-image-store.c: names are
 * checked, nothing below the store is followed if it is a symlink) and
 * verifies its blob right before the attach. */
static gboolean
ms_images_resolve(MsImages *m, MsImageSlot *s, GError **error)
{
    g_autofree char *blob = NULL;
    if (m->group == NULL) {
        /* without a group there is no copy that is surely this domain's */
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "the domain's sharing group is unknown (memshare.sharing.error): no image is attached "
                    "without one");
        return FALSE;
    }
    /* The group's own copy (images/ms-image-store.c): the hook made it at
     * prepare; a bare QEMU's agent, which runs as root without the unit's
     * read-only store, makes it itself. */
    g_autoptr(MsImageManifest) man = ms_image_store_lookup_group(m->store, s->name, m->group, TRUE, &blob,
                                                                 NULL, error);
    if (man == NULL)
        return FALSE;
    /* a warning, not a refusal: the domain is fine, its guest may not boot
     * (the hook warns at prepare too) */
    g_autoptr(GError) merr = NULL;
    if (!ms_image_manifest_check_mount(man, s->mount, &merr) && s->mount_warning == NULL) {
        g_warning("%s", merr->message);
        s->mount_warning = g_strdup(merr->message);
    }
    int fd = open(blob, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "%s: %s", blob,
                    e == ELOOP ? "is a symbolic link (refused)" : g_strerror(e));
        return FALSE;
    }
    struct stat st;
    /* Shared by every guest: it must not be writable by anyone but root,
     * whatever QEMU's mapping says. */
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 0222) != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: must be a regular, read-only (0444) file owned by root", blob);
        close(fd);
        return FALSE;
    }
    /* The digest is checked before every attach: a blob changed behind the
     * store's back must never reach a guest. */
    char hex[65];
    guint64 size = 0;
    gboolean ok = ms_image_sha256_fd(fd, hex, &size, blob, error);
    if (!ok) {
        close(fd);
        return FALSE;
    }
    if (strcmp(hex, man->sha256) != 0 || size != man->size) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: sha256 %s (%" G_GUINT64_FORMAT " bytes) does not match the manifest (%s, %"
                    G_GUINT64_FORMAT " bytes)", blob, hex, size, man->sha256, man->size);
        close(fd);
        return FALSE;
    }
    /* held open: the periodic check watches this very inode */
    if (s->blob_fd >= 0)
        close(s->blob_fd);
    s->blob_fd = fd;
    ms_images_blob_watch_clear(&s->watch);
    s->watch.at = st;
    g_free(s->sha256);
    s->sha256 = g_strdup(man->sha256);
    g_free(s->blob);
    s->blob = g_steal_pointer(&blob);
    s->size = size;
    return TRUE;
}

GPtrArray *
ms_images_hotplug_buses(JsonNode *query_pci, GError **error)
{
    if (query_pci == NULL || !JSON_NODE_HOLDS_ARRAY(query_pci)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "query-pci: reply is not an array");
        return NULL;
    }
    g_autoptr(GPtrArray) empty = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) unknown = g_ptr_array_new_with_free_func(g_free);
    JsonArray *buses = json_node_get_array(query_pci);
    for (guint b = 0; b < json_array_get_length(buses); b++) {
        JsonNode *bn = json_array_get_element(buses, b);
        if (!JSON_NODE_HOLDS_OBJECT(bn))
            continue;
        JsonObject *bus = json_node_get_object(bn);
        if (!json_object_has_member(bus, "devices") ||
            !JSON_NODE_HOLDS_ARRAY(json_object_get_member(bus, "devices")))
            continue;
        JsonArray *devs = json_object_get_array_member(bus, "devices");
        for (guint d = 0; d < json_array_get_length(devs); d++) {
            JsonNode *dn = json_array_get_element(devs, d);
            if (!JSON_NODE_HOLDS_OBJECT(dn))
                continue;
            JsonObject *dev = json_node_get_object(dn);
            if (!json_object_has_member(dev, "pci_bridge") || !json_object_has_member(dev, "qdev_id"))
                continue;
            JsonNode *br = json_object_get_member(dev, "pci_bridge");
            JsonNode *idn = json_object_get_member(dev, "qdev_id");
            if (!JSON_NODE_HOLDS_OBJECT(br) || !JSON_NODE_HOLDS_VALUE(idn) ||
                json_node_get_value_type(idn) != G_TYPE_STRING)
                continue;
            const char *id = json_node_get_string(idn);
            if (id == NULL || *id == '\0')
                continue;
            /* QEMU lists the devices behind a bridge only once the guest
             * firmware numbered its bus: a bridge without "devices" may
             * be occupied all the same. Known-empty ones come first; the
             * others are tried, and device_add refuses an occupied slot. */
            JsonObject *bro = json_node_get_object(br);
            JsonNode *sub = json_object_has_member(bro, "devices") ? json_object_get_member(bro, "devices") : NULL;
            if (sub && JSON_NODE_HOLDS_ARRAY(sub)) {
                if (json_array_get_length(json_node_get_array(sub)) == 0)
                    g_ptr_array_add(empty, g_strdup(id));
            } else {
                g_ptr_array_add(unknown, g_strdup(id));
            }
        }
    }
    for (guint i = 0; i < unknown->len; i++)
        g_ptr_array_add(empty, g_strdup(g_ptr_array_index(unknown, i)));
    if (empty->len == 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND,
                    "no free PCIe root port to hot-plug into (add <controller type='pci' model='pcie-root-port'/>)");
        return NULL;
    }
    return g_steal_pointer(&empty);
}

static JsonNode *
ms_images_qmp(const MsAgentEnv *env, const char *cmd, JsonBuilder *args, GError **error)
{
    g_autoptr(JsonNode) root = args ? json_builder_get_root(args) : NULL;
    return ms_qmp_client_execute(env->qmp, cmd, root ? json_node_get_object(root) : NULL, error);
}

static JsonNode *
ms_images_qom_get(const MsAgentEnv *env, const char *path, const char *property, GError **error)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "path");
    json_builder_add_string_value(b, path);
    json_builder_set_member_name(b, "property");
    json_builder_add_string_value(b, property);
    json_builder_end_object(b);
    return ms_images_qmp(env, "qom-get", b, error);
}

/* Is /objects/ID there, backed by PATH? (an earlier agent attached it, or
 * the hook put it on the command line of an incoming migration's QEMU) */
static gboolean
ms_images_object_has_path(const MsAgentEnv *env, const char *id, const char *path, gboolean *exists)
{
    g_autofree char *qom = g_strdup_printf("/objects/%s", id);
    g_autoptr(JsonNode) r = ms_images_qom_get(env, qom, "mem-path", NULL);
    *exists = r != NULL;
    return r && JSON_NODE_HOLDS_VALUE(r) && json_node_get_value_type(r) == G_TYPE_STRING &&
           g_strcmp0(json_node_get_string(r), path) == 0;
}

/* Candidate buses for a hot-plugged PCI device; a single NULL entry on
 * i440fx, whose root bus takes hotplug itself. */
static GPtrArray *
ms_images_hotplug_candidates(const MsAgentEnv *env, GError **error)
{
    const char *machine = env->policy->domain.machine;
    if (machine && !strstr(machine, "q35")) {
        GPtrArray *one = g_ptr_array_new_with_free_func(g_free);
        g_ptr_array_add(one, NULL);
        return one;
    }
    g_autoptr(JsonNode) pci = ms_images_qmp(env, "query-pci", NULL, error);
    if (pci == NULL)
        return NULL;
    return ms_images_hotplug_buses(pci, error);
}

/* device_add on the first candidate bus that takes it. */
static gboolean
ms_images_device_add(const MsAgentEnv *env, JsonBuilder *(*build)(const MsImageSlot *, const char *),
                     const MsImageSlot *s, GError **error)
{
    g_autoptr(GPtrArray) buses = ms_images_hotplug_candidates(env, error);
    if (buses == NULL)
        return FALSE;
    g_autoptr(GError) last = NULL;
    for (guint i = 0; i < buses->len; i++) {
        g_autoptr(JsonBuilder) d = build(s, g_ptr_array_index(buses, i));
        g_clear_error(&last);
        g_autoptr(JsonNode) r = ms_images_qmp(env, "device_add", d, &last);
        if (r != NULL)
            return TRUE;
        if (!g_error_matches(last, MS_QMP_ERROR, MS_QMP_ERROR_COMMAND))
            break;   /* the monitor itself failed: do not try further */
    }
    g_propagate_prefixed_error(error, g_steal_pointer(&last), "device_add (tried %u bus%s): ",
                               buses->len, buses->len == 1 ? "" : "es");
    return FALSE;
}

static JsonBuilder *
ms_images_pmem_args(const MsImageSlot *s, const char *bus)
{
    g_autofree char *obj = g_strdup_printf("ms-img%u", s->index);
    g_autofree char *dev = g_strdup_printf("ms-pmem%u", s->index);
    JsonBuilder *d = json_builder_new();
    json_builder_begin_object(d);
    json_builder_set_member_name(d, "driver");
    json_builder_add_string_value(d, "virtio-pmem-pci");
    json_builder_set_member_name(d, "id");
    json_builder_add_string_value(d, dev);
    json_builder_set_member_name(d, "memdev");
    json_builder_add_string_value(d, obj);
    if (bus) {
        json_builder_set_member_name(d, "bus");
        json_builder_add_string_value(d, bus);
    }
    json_builder_end_object(d);
    return d;
}

static JsonBuilder *
ms_images_vblk_args(const MsImageSlot *s, const char *bus)
{
    g_autofree char *node = g_strdup_printf("ms-blk%u", s->index);
    g_autofree char *dev = g_strdup_printf("ms-vblk%u", s->index);
    g_autofree char *serial = g_strdup_printf("ms-%.17s", s->sha256);
    JsonBuilder *d = json_builder_new();
    json_builder_begin_object(d);
    json_builder_set_member_name(d, "driver");
    json_builder_add_string_value(d, "virtio-blk-pci");
    json_builder_set_member_name(d, "id");
    json_builder_add_string_value(d, dev);
    json_builder_set_member_name(d, "drive");
    json_builder_add_string_value(d, node);
    json_builder_set_member_name(d, "share-rw");
    json_builder_add_boolean_value(d, TRUE);
    json_builder_set_member_name(d, "serial");
    json_builder_add_string_value(d, serial);
    if (bus) {
        json_builder_set_member_name(d, "bus");
        json_builder_add_string_value(d, bus);
    }
    json_builder_end_object(d);
    return d;
}

/* The blob an earlier agent attached as ID, if it is an older build in
 * this store: the name was rebuilt while the guest ran. The guest keeps it
 * until it restarts; the runtime file must then list that digest, or gc
 * would take the blob. */
static gboolean
ms_images_adopt_path(MsImages *m, MsImageSlot *s, const char *path)
{
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    /* only a build in this group's own copies (blobs/ for group host):
     * another group's copy is never taken for ours */
    g_autofree char *probe = ms_image_store_group_blob_path(m->store, m->group, "x");
    g_autofree char *blobs = g_path_get_dirname(probe);
    if (strcmp(dir, blobs) != 0 || strlen(base) != 7 + 64 + 4 || !g_str_has_prefix(base, "sha256-") ||
        !g_str_has_suffix(base, ".img"))
        return FALSE;
    g_autofree char *hex = g_strndup(base + 7, 64);
    for (const char *p = hex; *p; p++)
        if (!g_ascii_isxdigit(*p) || g_ascii_isupper(*p))
            return FALSE;
    g_message("image '%s': the guest maps the older build sha256 %.12s (the name now points to %.12s); "
              "it keeps it until it restarts", s->name, hex, s->sha256);
    g_free(s->sha256);
    s->sha256 = g_steal_pointer(&hex);
    g_free(s->blob);
    s->blob = g_strdup(path);
    if (s->blob_fd >= 0)
        close(s->blob_fd);
    ms_images_blob_watch_clear(&s->watch);
    s->blob_fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (s->blob_fd >= 0 && fstat(s->blob_fd, &st) == 0) {
        s->watch.at = st;
        s->size = st.st_size;
    }
    return TRUE;
}

static gboolean
ms_images_adopt_older(const MsAgentEnv *env, MsImages *m, MsImageSlot *s, const char *id)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "path");
    g_autofree char *qom = g_strdup_printf("/objects/%s", id);
    json_builder_add_string_value(b, qom);
    json_builder_set_member_name(b, "property");
    json_builder_add_string_value(b, "mem-path");
    json_builder_end_object(b);
    g_autoptr(JsonNode) r = ms_images_qmp(env, "qom-get", b, NULL);
    if (r == NULL || !JSON_NODE_HOLDS_VALUE(r) || json_node_get_value_type(r) != G_TYPE_STRING)
        return FALSE;
    return ms_images_adopt_path(m, s, json_node_get_string(r));
}

/* The source file of the disk an earlier agent attached with alias
 * ua-ms-blkINDEX, from libvirt's live XML; NULL if there is none. */
static char *
ms_images_live_blk_source(const char *live, guint index)
{
    g_autofree char *alias = g_strdup_printf("ua-ms-blk%u", index);
    xmlDocPtr doc = xmlReadMemory(live, strlen(live), "live.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR |
                                                                             XML_PARSE_NOWARNING);
    if (doc == NULL)
        return NULL;
    char *out = NULL;
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    g_autofree char *expr = g_strdup_printf("/domain/devices/disk[alias/@name='%s']/source/@file", alias);
    xmlXPathObjectPtr r = ctx ? xmlXPathEvalExpression((const xmlChar *)expr, ctx) : NULL;
    if (r && r->nodesetval && r->nodesetval->nodeNr > 0) {
        xmlChar *v = xmlNodeGetContent(r->nodesetval->nodeTab[0]);
        out = g_strdup((const char *)v);
        xmlFree(v);
    }
    xmlXPathFreeObject(r);
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(doc);
    return out;
}

static gboolean
ms_images_attach_dax(const MsAgentEnv *env, MsImages *m, MsImageSlot *s, GError **error)
{
    g_autofree char *obj = g_strdup_printf("ms-img%u", s->index);
    gboolean exists;

    if (ms_images_object_has_path(env, obj, s->blob, &exists))
        return TRUE;   /* attached by an earlier agent */
    if (exists && ms_images_adopt_older(env, m, s, obj))
        return TRUE;
    if (exists) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED,
                    "QEMU object %s exists but maps another file than sharing group '%s''s copy of the image "
                    "(the policy changed while running); refused, the domain runs on", obj, m->group);
        return FALSE;
    }
    if (s->size == 0 || s->size % MS_IMAGES_DAX_ALIGN != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: size %" G_GUINT64_FORMAT " is not a multiple of 2 MiB, as virtio-pmem needs "
                    "(rebuild it with memsharectl image build)", s->blob, s->size);
        return FALSE;
    }
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "qom-type");
    json_builder_add_string_value(b, "memory-backend-file");
    json_builder_set_member_name(b, "id");
    json_builder_add_string_value(b, obj);
    json_builder_set_member_name(b, "mem-path");
    json_builder_add_string_value(b, s->blob);
    json_builder_set_member_name(b, "size");
    json_builder_add_int_value(b, (gint64)s->size);
    /* share=on: every guest maps the same host page-cache pages;
     * readonly=on: QEMU opens and maps the file read-only, so no guest
     * write can reach it (libvirt's nvdimm <readonly/> does not do this). */
    json_builder_set_member_name(b, "share");
    json_builder_add_boolean_value(b, TRUE);
    json_builder_set_member_name(b, "readonly");
    json_builder_add_boolean_value(b, TRUE);
    json_builder_end_object(b);
    g_autoptr(JsonNode) r1 = ms_images_qmp(env, "object-add", b, error);
    if (r1 == NULL)
        return FALSE;

    if (!ms_images_device_add(env, ms_images_pmem_args, s, error)) {
        /* leave nothing half-attached */
        g_autoptr(JsonBuilder) del = json_builder_new();
        json_builder_begin_object(del);
        json_builder_set_member_name(del, "id");
        json_builder_add_string_value(del, obj);
        json_builder_end_object(del);
        g_autoptr(JsonNode) r3 = ms_images_qmp(env, "object-del", del, NULL);
        return FALSE;
    }
    return TRUE;
}

/* The blk path through libvirt: the disk then is part of libvirt's live
 * XML (virsh domblklist shows it) and libvirt detaches it at stop. */
static gboolean
ms_images_attach_blk_libvirt(const MsAgentEnv *env, MsImages *m, MsImageSlot *s, GError **error)
{
    virDomainPtr dom = env->libvirt_domain;
    char *live = virDomainGetXMLDesc(dom, 0);
    if (live == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot read the live domain XML: %s",
                    virGetLastErrorMessage());
        return FALSE;
    }
    g_autofree char *escaped = g_markup_escape_text(s->blob, -1);
    g_autofree char *needle = g_strdup_printf("<source file='%s'", escaped);
    gboolean present = strstr(live, needle) != NULL;
    char target[8] = { 0 };
    /* the first vdX libvirt does not use yet (vda is usually the root disk) */
    for (char c = 'b'; c <= 'z' && !present; c++) {
        g_autofree char *t = g_strdup_printf("dev='vd%c'", c);
        if (strstr(live, t) == NULL) {
            g_snprintf(target, sizeof(target), "vd%c", c);
            break;
        }
    }
    /* attached by an earlier agent, of an older build of the name? */
    g_autofree char *earlier = present ? NULL : ms_images_live_blk_source(live, s->index);
    free(live);
    if (present)
        return TRUE;
    if (earlier) {
        if (ms_images_adopt_path(m, s, earlier))
            return TRUE;
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED,
                    "disk ua-ms-blk%u exists but maps %s, not sharing group '%s''s copy of the image (the policy "
                    "changed while running); refused, the domain runs on", s->index, earlier, m->group);
        return FALSE;
    }
    if (target[0] == '\0') {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "no free virtio disk name (vdb..vdz all used)");
        return FALSE;
    }
    /* serial: virtio-blk keeps 20 bytes; the digest prefix names the
     * content, so a guest can tell images apart besides the label. */
    g_autofree char *xml = g_strdup_printf(
        "<disk type='file' device='disk'>"
        "<driver name='qemu' type='raw'/>"
        "<source file='%s'/>"
        "<target dev='%s' bus='virtio'/>"
        "<readonly/><shareable/>"
        "<serial>ms-%.17s</serial>"
        "<alias name='ua-ms-blk%u'/>"
        "</disk>", escaped, target, s->sha256, s->index);
    if (virDomainAttachDeviceFlags(dom, xml, VIR_DOMAIN_AFFECT_LIVE) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "virDomainAttachDeviceFlags: %s",
                    virGetLastErrorMessage());
        return FALSE;
    }
    return TRUE;
}

static gboolean
ms_images_attach_blk_qmp(const MsAgentEnv *env, MsImages *m, MsImageSlot *s, GError **error)
{
    g_autofree char *node = g_strdup_printf("ms-blk%u", s->index);

    g_autoptr(JsonNode) named = ms_images_qmp(env, "query-named-block-nodes", NULL, NULL);
    if (named && JSON_NODE_HOLDS_ARRAY(named)) {
        JsonArray *a = json_node_get_array(named);
        for (guint i = 0; i < json_array_get_length(a); i++) {
            JsonNode *e = json_array_get_element(a, i);
            if (!JSON_NODE_HOLDS_OBJECT(e))
                continue;
            JsonObject *o = json_node_get_object(e);
            if (g_strcmp0(json_object_get_string_member_with_default(o, "node-name", ""), node) != 0)
                continue;
            /* ours from an earlier agent: the same blob, or an older build */
            const char *file = json_object_get_string_member_with_default(o, "file", "");
            if (g_strcmp0(file, s->blob) == 0 || ms_images_adopt_path(m, s, file))
                return TRUE;
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED,
                        "block node %s exists but maps %s, not sharing group '%s''s copy of the image (the "
                        "policy changed while running); refused, the domain runs on", node, file, m->group);
            return FALSE;
        }
    }
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "driver");
    json_builder_add_string_value(b, "raw");
    json_builder_set_member_name(b, "node-name");
    json_builder_add_string_value(b, node);
    json_builder_set_member_name(b, "read-only");
    json_builder_add_boolean_value(b, TRUE);
    json_builder_set_member_name(b, "file");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "driver");
    json_builder_add_string_value(b, "file");
    json_builder_set_member_name(b, "filename");
    json_builder_add_string_value(b, s->blob);
    json_builder_set_member_name(b, "read-only");
    json_builder_add_boolean_value(b, TRUE);
    json_builder_end_object(b);
    json_builder_end_object(b);
    g_autoptr(JsonNode) r1 = ms_images_qmp(env, "blockdev-add", b, error);
    if (r1 == NULL)
        return FALSE;

    if (!ms_images_device_add(env, ms_images_vblk_args, s, error)) {
        g_autoptr(JsonBuilder) del = json_builder_new();
        json_builder_begin_object(del);
        json_builder_set_member_name(del, "node-name");
        json_builder_add_string_value(del, node);
        json_builder_end_object(del);
        g_autoptr(JsonNode) r3 = ms_images_qmp(env, "blockdev-del", del, NULL);
        return FALSE;
    }
    return TRUE;
}

/* ---- DAX placement for live migration -----------------------------------
 * Where a dax image sits in this QEMU (root port, devfn, guest address),
 * published in the domain's live metadata (formats/ms-dax-carry.h) so
 * that a destination's hook can give the incoming QEMU the same backend
 * and device. It describes QEMU, not the agent: it stays when the agent
 * exits, as the device does. docs/migration.md. */

static gboolean
ms_images_qom_u64(const MsAgentEnv *env, const char *path, const char *property, guint64 *out, GError **error)
{
    g_autoptr(JsonNode) r = ms_images_qom_get(env, path, property, error);
    if (r == NULL)
        return FALSE;
    if (!JSON_NODE_HOLDS_VALUE(r) || json_node_get_value_type(r) != G_TYPE_INT64 || json_node_get_int(r) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "qom-get %s %s: not an unsigned integer", path, property);
        return FALSE;
    }
    *out = (guint64)json_node_get_int(r);
    return TRUE;
}

static MsDaxCarry *
ms_images_dax_placement(const MsAgentEnv *env, const MsImageSlot *s, GError **error)
{
    g_autofree char *dev = g_strdup_printf("/machine/peripheral/ms-pmem%u", s->index);
    g_autoptr(JsonNode) bus = ms_images_qom_get(env, dev, "parent_bus", error);
    if (bus == NULL)
        return NULL;
    /* "/machine/peripheral/pci.1/pci.1": the bus is named after its port */
    const char *bus_path = JSON_NODE_HOLDS_VALUE(bus) && json_node_get_value_type(bus) == G_TYPE_STRING
                               ? json_node_get_string(bus) : NULL;
    const char *slash = bus_path ? strrchr(bus_path, '/') : NULL;
    if (slash == NULL || slash[1] == '\0') {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "qom-get %s parent_bus: not a QOM path", dev);
        return NULL;
    }
    g_autoptr(MsDaxCarry) c = g_new0(MsDaxCarry, 1);
    guint64 addr;
    if (!ms_images_qom_u64(env, dev, "addr", &addr, error) ||
        !ms_images_qom_u64(env, dev, "memaddr", &c->memaddr, error))
        return NULL;
    c->name = g_strdup(s->name);
    c->sha256 = g_strdup(s->sha256);
    c->size = s->size;
    c->index = s->index;
    c->bus = g_strdup(slash + 1);
    c->addr = (guint)addr;
    return g_steal_pointer(&c);
}

static void
ms_images_publish_dax(MsImages *m, const MsAgentEnv *env)
{
    virDomainPtr dom = env->libvirt_domain;
    m->dax_unpublished = FALSE;
    if (dom == NULL)
        return;   /* a bare QEMU: nothing migrates it through libvirt */
    g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func((GDestroyNotify)ms_dax_carry_free);
    for (guint i = 0; i < m->slots->len; i++) {
        MsImageSlot *s = g_ptr_array_index(m->slots, i);
        if (s->mode != MS_IMAGE_DAX || !s->attached)
            continue;
        g_autoptr(GError) error = NULL;
        MsDaxCarry *c = ms_images_dax_placement(env, s, &error);
        if (c == NULL) {
            g_warning("image '%s': cannot read where its device sits (%s); the domain cannot migrate yet",
                      s->name, error->message);
            m->dax_unpublished = TRUE;
            return;
        }
        g_ptr_array_add(entries, c);
    }
    if (entries->len == 0)
        return;
    g_autofree char *xml = ms_dax_carry_format(entries);
    if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, MS_DAX_CARRY_KEY, MS_DAX_CARRY_NS,
                             VIR_DOMAIN_AFFECT_LIVE) < 0) {
        g_warning("cannot publish the dax images' placement in the live metadata: %s; the domain cannot "
                  "migrate yet", virGetLastErrorMessage());
        m->dax_unpublished = TRUE;
    }
}

static gpointer
ms_images_create(const MsAgentEnv *env, GError **error)
{
    (void)error;
    g_autoptr(MsImages) m = g_new0(MsImages, 1);
    m->store = ms_image_store_default_path();
    m->slots = g_ptr_array_new_with_free_func((GDestroyNotify)ms_image_slot_free);
    for (guint i = 0; i < env->policy->images->len; i++) {
        const MsSharedImage *img = g_ptr_array_index(env->policy->images, i);
        MsImageSlot *s = g_new0(MsImageSlot, 1);
        s->blob_fd = -1;
        s->name = g_strdup(img->name);
        s->mount = g_strdup(img->mount);
        s->mode = img->mode;
        s->index = i;
        g_ptr_array_add(m->slots, s);
    }
    return g_steal_pointer(&m);
}

static void
ms_images_write_runtime(MsImages *m, const MsAgentEnv *env)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < m->slots->len; i++) {
        MsImageSlot *sl = g_ptr_array_index(m->slots, i);
        if (sl->attached)
            g_string_append_printf(s, "%s %s %s %s\n", sl->name, sl->sha256,
                                   sl->mode == MS_IMAGE_DAX ? "dax" : "blk", m->group);
    }
    g_autofree char *path = g_build_filename(env->runtime_dir, "images", NULL);
    g_autoptr(GError) error = NULL;
    if (!ms_file_write_atomic(path, s->str, s->len, 0644, &error))
        g_warning("images: %s", error->message);
    g_string_free(s, TRUE);
}

static const char *
ms_blob_state_name(MsImagesBlobState st)
{
    switch (st) {
    case MS_IMAGES_BLOB_OK: return "ok";
    case MS_IMAGES_BLOB_REMOVED: return "removed";
    case MS_IMAGES_BLOB_REPLACED: return "replaced";
    case MS_IMAGES_BLOB_MODIFIED: return "modified";
    }
    return "unknown";
}

/* The periodic check of an attached image: its blob (ms_images_blob_check)
 * and whether the name was rebuilt since. Each finding is logged once. */
static void
ms_images_check_attached(MsImages *m, MsImageSlot *s, const MsAgentEnv *env, GKeyFile *status)
{
    const char *domain = env->name ? env->name : env->uuid;
    g_autofree char *old_msg = g_strdup(s->watch.message);
    MsImagesBlobState st = ms_images_blob_check(&s->watch, s->name, domain, s->sha256, s->blob, s->blob_fd);
    if (st != MS_IMAGES_BLOB_OK && g_strcmp0(old_msg, s->watch.message) != 0) {
        if (st == MS_IMAGES_BLOB_MODIFIED)
            g_critical("%s", s->watch.message);
        else
            g_warning("%s", s->watch.message);
    }
    g_autofree char *kblob = g_strconcat(s->name, MS_STATUS_IMAGE_BLOB, NULL);
    g_autofree char *kmsg = g_strconcat(s->name, MS_STATUS_IMAGE_BLOB_ERROR, NULL);
    g_autofree char *ksha = g_strconcat(s->name, MS_STATUS_IMAGE_SHA256, NULL);
    g_autofree char *knew = g_strconcat(s->name, MS_STATUS_IMAGE_NEWER_SHA256, NULL);
    g_key_file_set_string(status, MS_STATUS_IMAGES, kblob, ms_blob_state_name(st));
    g_key_file_set_string(status, MS_STATUS_IMAGES, ksha, s->sha256);
    if (s->watch.message)
        g_key_file_set_string(status, MS_STATUS_IMAGES, kmsg, s->watch.message);
    else
        g_key_file_remove_key(status, MS_STATUS_IMAGES, kmsg, NULL);
    g_autoptr(MsImageManifest) man = ms_image_store_lookup(m->store, s->name, NULL, NULL);
    if (man && strcmp(man->sha256, s->sha256) != 0) {
        g_key_file_set_string(status, MS_STATUS_IMAGES, knew, man->sha256);
        if (g_strcmp0(s->update_noted, man->sha256) != 0) {
            g_message("image '%s' was rebuilt (now sha256 %.12s); domain '%s' keeps sha256 %.12s until it "
                      "restarts", s->name, man->sha256, domain, s->sha256);
            g_free(s->update_noted);
            s->update_noted = g_strdup(man->sha256);
        }
    } else {
        g_key_file_remove_key(status, MS_STATUS_IMAGES, knew, NULL);
    }
}

/* The group whose copies the domain maps. Fixed at the first tick with a
 * group: the hook checked and recorded that one at prepare, and a policy
 * edited to name another group (even one whose copy exists) changes
 * nothing until the next start, as for KSM (memshare.sharing.pending). */
static void
ms_images_update_group(MsImages *m, GKeyFile *status)
{
    g_autofree char *group = g_key_file_get_string(status, MS_STATUS_SHARING, MS_STATUS_SHARING_GROUP, NULL);
    g_autofree char *pending = g_key_file_get_string(status, MS_STATUS_SHARING, MS_STATUS_SHARING_PENDING, NULL);
    if (m->group == NULL && group && ms_image_store_group_is_valid(group))
        m->group = g_strdup(group);
    if (m->group && pending && g_strcmp0(pending, m->group) != 0 && g_strcmp0(m->group_noted, pending) != 0) {
        g_warning("images: the policy now names sharing group '%s', but the domain is in group '%s' until it "
                  "restarts: it maps only group '%s''s copies (%s), never another group's", pending, m->group,
                  m->group, strcmp(m->group, MS_IMAGE_GROUP_HOST) == 0 ? "the store's blobs" : "groups/GROUP/");
        g_free(m->group_noted);
        m->group_noted = g_strdup(pending);
    }
    if (m->group)
        g_key_file_set_string(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_GROUP, m->group);
}

/* The group's image figures (memshare.sharing.group-image-*): the
 * distinct copies the running domains of the group map, their size, and
 * how much of them is in the host's page cache (mincore: what the group's
 * images cost the host now). */
static void
ms_images_group_figures(MsImages *m, GKeyFile *status)
{
    if (m->group == NULL)
        return;
    g_autoptr(GPtrArray) uses = ms_image_store_uses();
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    guint64 bytes = 0, cached = 0, copies = 0;
    for (guint i = 0; i < uses->len; i++) {
        MsImageUse *u = g_ptr_array_index(uses, i);
        if (strcmp(u->group, m->group) != 0 || !g_hash_table_add(seen, g_strdup(u->sha256)))
            continue;
        g_autofree char *path = ms_image_store_group_blob_path(m->store, u->group, u->sha256);
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0)
            continue;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
            copies++;
            bytes += st.st_size;
            gsize n = 0;
            g_autofree guint8 *vec = ms_image_residency(fd, st.st_size, &n);
            for (gsize j = 0; vec && j < n; j++)
                cached += (vec[j] & 1) ? (guint64)sysconf(_SC_PAGESIZE) : 0;
        }
        close(fd);
    }
    g_key_file_set_uint64(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_GROUP_COPIES, copies);
    g_key_file_set_uint64(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_GROUP_BYTES, bytes);
    g_key_file_set_uint64(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_GROUP_CACHED, MIN(cached, bytes));
}

static gboolean
ms_images_tick(gpointer self, const MsAgentEnv *env, GKeyFile *status, GError **error)
{
    MsImages *m = self;
    ms_images_update_group(m, status);
    guint attached = 0, failed = 0;
    guint64 bytes = 0;
    gboolean changed = FALSE;
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; i < m->slots->len; i++) {
        MsImageSlot *s = g_ptr_array_index(m->slots, i);
        const char *mode = s->mode == MS_IMAGE_DAX ? "dax" : "blk";
        g_autofree char *kmode = g_strconcat(s->name, MS_STATUS_IMAGE_MODE, NULL);
        g_autofree char *kstate = g_strconcat(s->name, MS_STATUS_IMAGE_STATE, NULL);
        g_autofree char *kerr = g_strconcat(s->name, MS_STATUS_IMAGE_ERROR, NULL);
        g_autofree char *ksize = g_strconcat(s->name, MS_STATUS_IMAGE_SIZE, NULL);
        g_key_file_set_string(status, MS_STATUS_IMAGES, kmode, mode);
        if (s->mount_warning) {
            g_autofree char *kw = g_strdup_printf("%s.warning", s->name);
            g_key_file_set_string(status, MS_STATUS_IMAGES, kw, s->mount_warning);
        }

        if (!s->attached) {
            g_autoptr(GError) local = NULL;
            gboolean ok = ms_images_resolve(m, s, &local);
            if (ok) {
                if (s->mode == MS_IMAGE_DAX)
                    ok = ms_images_attach_dax(env, m, s, &local);
                else if (env->libvirt_domain)
                    ok = ms_images_attach_blk_libvirt(env, m, s, &local);
                else
                    ok = ms_images_attach_blk_qmp(env, m, s, &local);
            }
            if (ok) {
                s->attached = TRUE;
                changed = TRUE;
                g_clear_pointer(&s->error, g_free);
                g_message("image '%s' attached (%s, %" G_GUINT64_FORMAT " MiB, sha256 %.12s)",
                          s->name, mode, s->size >> 20, s->sha256);
            } else if (g_strcmp0(s->error, local->message) != 0) {
                /* logged once per distinct error: a missing image is
                 * retried every period without flooding the log */
                g_warning("image '%s' (%s) not attached: %s", s->name, mode, local->message);
                g_free(s->error);
                s->error = g_strdup(local->message);
            }
        }
        if (s->attached)
            ms_images_check_attached(m, s, env, status);
        if (s->attached) {
            attached++;
            bytes += s->size;
            g_ptr_array_add(names, g_strdup(s->name));
            g_key_file_set_string(status, MS_STATUS_IMAGES, kstate, "attached");
            g_key_file_set_uint64(status, MS_STATUS_IMAGES, ksize, s->size);
            g_key_file_remove_key(status, MS_STATUS_IMAGES, kerr, NULL);
        } else {
            failed++;
            g_key_file_set_string(status, MS_STATUS_IMAGES, kstate, "failed");
            g_key_file_set_string(status, MS_STATUS_IMAGES, kerr, s->error ? s->error : "unknown");
        }
    }
    g_ptr_array_add(names, NULL);
    g_key_file_set_uint64(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_COUNT, m->slots->len);
    g_key_file_set_uint64(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_ATTACHED, attached);
    g_key_file_set_uint64(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_BYTES, bytes);
    g_autofree char *joined = g_strjoinv(",", (char **)names->pdata);
    g_key_file_set_string(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_NAMES, joined);
    if (changed)
        ms_images_write_runtime(m, env);
    if (changed || m->dax_unpublished)
        ms_images_publish_dax(m, env);
    ms_images_group_figures(m, status);
    if (failed) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%u of %u shared images not attached", failed,
                    m->slots->len);
        return FALSE;
    }
    return TRUE;
}

const MsAgentModule ms_images_module = {
    .name = MS_STATUS_IMAGES,
    .create = ms_images_create,
    .period_ms = ms_images_period,
    .tick = ms_images_tick,
    .stop = NULL,
    .free = ms_images_free,
};
