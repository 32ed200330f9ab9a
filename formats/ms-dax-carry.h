/* formats/ms-dax-carry.h: how a DAX image's placement crosses a live
 * migration. The agent hot-plugs a dax image over QMP (memory-backend-file
 * ms-imgN + virtio-pmem-pci ms-pmemN), outside the XML libvirt migrates, so
 * it publishes where it put them in the domain's live metadata (the
 * <migration> element below, which travels with the XML); the destination's
 * hook (op `migrate`) reads it back and gives the incoming QEMU the same
 * backend and device as <qemu:commandline> arguments. Pure: XML text or
 * libxml2 trees in and out, no libvirt, no QMP. docs/migration.md. */
#pragma once

#include <glib.h>
#include <libxml/tree.h>

G_BEGIN_DECLS

#define MS_DAX_CARRY_NS "https://memshare.dev/xmlns/migration/1.0"
/* virDomainSetMetadata key (the element's prefix) */
#define MS_DAX_CARRY_KEY "memshare-migration"
#define MS_DAX_CARRY_QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"

/* One attached dax image as the source QEMU has it. The ids are not
 * carried: they derive from index (ms-imgINDEX, ms-pmemINDEX), the
 * image's position in the policy, as the agent names them. */
typedef struct {
    char *name;        /* <shared-image name=>, checked against the policy */
    char *sha256;      /* the blob the source maps; 64 lowercase hex */
    guint64 size;      /* bytes, a multiple of 2 MiB */
    guint index;       /* position in the policy */
    char *bus;         /* the PCIe root port's id (libvirt alias, e.g. pci.1) */
    guint addr;        /* devfn on that bus */
    guint64 memaddr;   /* guest-physical address of the pmem region */
} MsDaxCarry;

void ms_dax_carry_free(MsDaxCarry *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsDaxCarry, ms_dax_carry_free)

/* The <migration xmlns=MS_DAX_CARRY_NS> element for ENTRIES (MsDaxCarry*),
 * as virDomainSetMetadata takes it. */
char *ms_dax_carry_format(GPtrArray *entries);

/* The entries of a <migration> element; every attribute is checked (it
 * ends up on a QEMU command line): an error names the attribute, its
 * value and why. */
GPtrArray *ms_dax_carry_parse(xmlNode *element, GError **error);

/* The two QEMU options for entry C backed by BLOB (a path in this host's
 * store, never one from the metadata): "-object" OBJECT and "-device"
 * DEVICE values, in QEMU's JSON option syntax. The device sits on the same bus, devfn and guest address as on
 * the source, so its migration state and the guest's view match. */
void ms_dax_carry_qemu_args(const MsDaxCarry *c, const char *blob, char **object, char **device);

/* Replaces in DOC's <qemu:commandline> every -object/-device pair an
 * earlier migration added (the JSON values ms_dax_carry_qemu_args makes:
 * a memory-backend-file ms-imgN, a virtio-pmem-pci ms-pmemN) with ARGS (alternating option, value),
 * keeping anything else; adds the element and the namespace when missing. */
gboolean ms_dax_carry_apply(xmlDoc *doc, GPtrArray *args, GError **error);

G_END_DECLS
