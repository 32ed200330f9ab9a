/* qmp-plugin/ms-images.h: the shared-image module of the agent: attaches the
 * images a policy names (DCSS-style, docs/images.md) to the running domain,
 * read-only: `dax` as a virtio-pmem device whose memory backend maps the
 * store's file with share=on,readonly=on; `blk` as a read-only shareable
 * virtio-blk disk (through libvirt's API when the agent talks to libvirt). */
#pragma once

#include "ms-module.h"

#include <sys/stat.h>

G_BEGIN_DECLS

extern const MsAgentModule ms_images_module;

/* Candidate buses for a hot-plugged PCI device from a query-pci reply:
 * the qdev ids of PCIe root ports (or bridges), those known to be empty
 * first, then those whose bus the guest has not numbered yet (QEMU cannot
 * list their devices). NULL and an error when there is none. Exposed for
 * unit tests. */
GPtrArray *ms_images_hotplug_buses(JsonNode *query_pci, GError **error);

/* What became of the blob a running domain maps (checked every period). */
typedef enum {
    MS_IMAGES_BLOB_OK,
    MS_IMAGES_BLOB_REMOVED,    /* its name in the store is gone */
    MS_IMAGES_BLOB_REPLACED,   /* another file has its name (e.g. renamed over it) */
    MS_IMAGES_BLOB_MODIFIED,   /* the mapped file itself was written: the guest sees it */
} MsImagesBlobState;

typedef struct {
    struct stat at;          /* the mapped inode when it was verified */
    struct stat path_seen;   /* the inode under the blob's name at the last check */
    gboolean path_known;
    MsImagesBlobState state;
    char *message;           /* names the image, the domain and both digests */
} MsImagesBlobWatch;

void ms_images_blob_watch_clear(MsImagesBlobWatch *w);

/* Compares the blob of IMAGE that DOMAIN maps (sha256 SHA256, opened as FD
 * when it was verified; W->at its fstat then) with what is there now: FD's
 * inode (modified in place?) and PATH (removed, or replaced by another
 * file?). Hashes only what changed since the last call. Exposed for unit
 * tests. */
MsImagesBlobState ms_images_blob_check(MsImagesBlobWatch *w, const char *image, const char *domain,
                                       const char *sha256, const char *path, int fd);

G_END_DECLS
