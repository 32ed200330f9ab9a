/* policies/ms-domain-fph.h: the domain-definition edit behind
 * <memshare:migration free-page-hint='on'/>: virtio-balloon free-page-hint
 * through libvirt's <qemu:override> plus the iothread QEMU requires for it.
 * libvirt 9.0 has no element for the property and the hook may not change
 * the XML at `prepare`, so `memsharectl policy set --config` writes it into
 * the persistent definition (docs/migration.md). Pure: XML in, XML out. */
#pragma once

#include <glib.h>

/* Returns the domain XML with the balloon's free-page-hint switched on
 * (an <iothreads> added if the domain has none; <qemu:override> of the
 * balloon's device with free-page-hint=true and iothread=iothreadN) or
 * off (those two properties removed, and the override elements left
 * empty by it; <iothreads> kept: disks may use it). *changed says whether
 * anything changed. NULL with an error naming the domain and the reason:
 * malformed XML, no virtio <memballoon>. */
char *ms_domain_set_free_page_hint(const char *xml, gssize len, gboolean on,
                                   gboolean *changed, GError **error);
