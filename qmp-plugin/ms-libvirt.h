/* qmp-plugin/ms-libvirt.h: the agent's side of libvirt, the one place it
 * talks to libvirtd outside the QMP pass-through (ms-qmp-libvirt.c): the
 * live-metadata stats element, and (ms-libvirt.c) the connection, its
 * events and the reconnect when libvirtd restarts. */
#pragma once

#include <glib.h>
#include <libvirt/libvirt.h>

#include "ms-export.h"

G_BEGIN_DECLS

/* Sets the stats element (formats/ms-export.h, ms_export_stats_xml) as the
 * domain's live metadata (key MS_EXPORT_STATS_KEY, namespace
 * MS_EXPORT_STATS_NS, VIR_DOMAIN_AFFECT_LIVE: never the persistent
 * config). `virsh metadata DOMAIN MS_EXPORT_STATS_NS` shows it. The
 * METADATA_CHANGE event this raises carries the stats namespace, which the
 * agent's policy reload ignores. */
gboolean ms_libvirt_set_stats_metadata(virDomainPtr dom, const MsExportDomain *domain,
                                       gint64 unix_time, GError **error);

G_END_DECLS
