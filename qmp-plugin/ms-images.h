/* qmp-plugin/ms-images.h: the shared-image module of the agent: attaches the
 * images a policy names (DCSS-style, docs/images.md) to the running domain,
 * read-only: `dax` as a virtio-pmem device whose memory backend maps the
 * store's file with share=on,readonly=on; `blk` as a read-only shareable
 * virtio-blk disk (through libvirt's API when the agent talks to libvirt). */
#pragma once

#include "ms-module.h"

G_BEGIN_DECLS

extern const MsAgentModule ms_images_module;

/* Candidate buses for a hot-plugged PCI device from a query-pci reply:
 * the qdev ids of PCIe root ports (or bridges), those known to be empty
 * first, then those whose bus the guest has not numbered yet (QEMU cannot
 * list their devices). NULL and an error when there is none. Exposed for
 * unit tests. */
GPtrArray *ms_images_hotplug_buses(JsonNode *query_pci, GError **error);

G_END_DECLS
