/* qmp-plugin/ms-libvirt.c: the agent's side of libvirt (see ms-libvirt.h). */
#include "ms-libvirt.h"
#include "ms-error.h"

#include <libvirt/virterror.h>

gboolean
ms_libvirt_set_stats_metadata(virDomainPtr dom, const MsExportDomain *domain, gint64 unix_time,
                              GError **error)
{
    g_autofree char *xml = ms_export_stats_xml(domain, unix_time, error);
    if (xml == NULL)
        return FALSE;
    if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, MS_EXPORT_STATS_KEY, MS_EXPORT_STATS_NS,
                             VIR_DOMAIN_AFFECT_LIVE) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot set the stats metadata of domain '%s': %s",
                    domain->name, virGetLastErrorMessage());
        return FALSE;
    }
    return TRUE;
}
