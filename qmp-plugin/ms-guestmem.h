/* qmp-plugin/ms-guestmem.h: where guest RAM lives. Owns (1) finding each
 * RAM memdev's mapping in the QEMU process from query-memdev plus
 * /proc/PID/maps and /proc/PID/smaps, refusing to guess when several
 * mappings could be the one, and (2) the guest-physical layout of x86 RAM
 * (q35 and pc split RAM below and above 4 GiB), so that an offset in a RAM
 * block maps to a guest-physical address. QMP gives no host addresses, so
 * this is the only link between the guest's view and the host page tables.
 * See docs/usedmap.md for the rules and the layout. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <sys/types.h>

#include "ms-usedmap.h"

G_BEGIN_DECLS

#define MS_GUESTMEM_ERROR (ms_guestmem_error_quark())
GQuark ms_guestmem_error_quark(void);

typedef enum {
    MS_GUESTMEM_ERROR_INVALID,    /* malformed input: QMP reply, maps line */
    MS_GUESTMEM_ERROR_NOT_FOUND,  /* no mapping matches a memdev */
    MS_GUESTMEM_ERROR_AMBIGUOUS,  /* several match and nothing decided */
    MS_GUESTMEM_ERROR_IO,         /* /proc unreadable, process gone */
    MS_GUESTMEM_ERROR_TOO_BIG,
} MsGuestMemErrorCode;

typedef enum {
    MS_GUESTMEM_BACKEND_UNKNOWN,  /* type not known: any kind may match */
    MS_GUESTMEM_BACKEND_RAM,      /* memory-backend-ram: anonymous */
    MS_GUESTMEM_BACKEND_MEMFD,    /* memory-backend-memfd: /memfd:NAME (deleted) */
    MS_GUESTMEM_BACKEND_FILE,     /* memory-backend-file: a path */
} MsGuestMemBackend;

/* One RAM memdev as QMP describes it (query-memdev, plus what the caller
 * knows from qom-list/qom-get: the backend type and mem-path). */
typedef struct {
    char *id;                  /* never NULL: "memdev #N" if QEMU gave none */
    guint64 size;              /* bytes */
    gboolean share;            /* share=on: the mapping is rw-s, not rw-p */
    gboolean merge;            /* QEMU asked for MADV_MERGEABLE */
    MsGuestMemBackend backend;
    char *mem_path;            /* memory-backend-file mem-path, or NULL */
} MsGuestMemdev;

void ms_guestmem_memdev_free(MsGuestMemdev *memdev);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsGuestMemdev, ms_guestmem_memdev_free)

/* Parses the "return" of query-memdev (a JSON array). Unknown members are
 * ignored; a missing or ill-typed size/merge/share is an error naming the
 * entry. Returns a GPtrArray of MsGuestMemdev* in QEMU's order. */
GPtrArray *ms_guestmem_memdevs_from_json(JsonNode *query_memdev_return,
                                         GError **error);

/* Removes memdevs that back memory devices (pc-dimm, nvdimm, virtio-pmem,
 * virtio-mem) listed in the "return" of query-memory-devices: they are not
 * boot RAM and have their own guest-physical addresses. */
gboolean ms_guestmem_memdevs_drop_device_backed(GPtrArray *memdevs,
                                                JsonNode *query_memory_devices_return,
                                                GError **error);

/* ---- guest-physical layout ---- */

typedef enum {
    MS_GUESTMEM_MACHINE_FLAT,   /* RAM at guest-physical 0, contiguous */
    MS_GUESTMEM_MACHINE_Q35,    /* QEMU 7.2 hw/i386/pc_q35.c */
    MS_GUESTMEM_MACHINE_PC,     /* QEMU 7.2 hw/i386/pc_piix.c (i440fx) */
} MsGuestMemMachine;

#define MS_GUESTMEM_4G (G_GUINT64_CONSTANT(1) << 32)

typedef struct {
    MsGuestMemMachine machine;
    guint64 ram_size;       /* all boot RAM memdevs together */
    guint64 below_4g;       /* RAM offsets [0, below_4g) at GPA [0, below_4g) */
    guint64 above_4g;       /* RAM offsets [below_4g, ram_size) at GPA 4 GiB + ... */
} MsGuestMemLayout;

/* Maps a QOM machine type ("pc-q35-7.2-machine", "pc-i440fx-7.2-machine",
 * or the -M name "q35", "pc") to a layout kind; other machines are FLAT. */
MsGuestMemMachine ms_guestmem_machine_from_type(const char *type);

/* Computes the split the way QEMU 7.2 does. max_ram_below_4g is the
 * machine property (0 = QEMU's default). */
gboolean ms_guestmem_layout_init(MsGuestMemLayout *layout,
                                 MsGuestMemMachine machine, guint64 ram_size,
                                 guint64 max_ram_below_4g, GError **error);

/* RAM offset (position in the concatenation of boot RAM memdevs) to
 * guest-physical address. FALSE if ram_offset >= ram_size. */
gboolean ms_guestmem_layout_ram_to_gpa(const MsGuestMemLayout *layout,
                                       guint64 ram_offset, guint64 *gpa);

/* A guest-physically contiguous stretch of RAM: what the used-page bitmap
 * file records per block, so the file's own type (formats/ms-usedmap.h). */
typedef MsUsedmapExtent MsGuestMemExtent;

/* The extents of [ram_offset, ram_offset + length), in guest-physical order
 * (which is RAM-offset order). Returns a GArray of MsGuestMemExtent. */
GArray *ms_guestmem_layout_extents(const MsGuestMemLayout *layout,
                                   guint64 ram_offset, guint64 length);

/* ---- discovery ---- */

/* One mapping of the QEMU process that could back a memdev. */
typedef struct {
    guint64 start;            /* host virtual, inclusive */
    guint64 end;              /* host virtual, exclusive */
    char perms[5];            /* "rw-p" or "rw-s" */
    char *path;               /* NULL for anonymous */
    guint64 kernel_page_size; /* bytes, from smaps; 0 if smaps lacked it */
    gboolean mergeable;       /* smaps VmFlags has "mg": a hint, not proof */
} MsGuestMemCandidate;

void ms_guestmem_candidate_free(MsGuestMemCandidate *cand);

/* Asked when more than one mapping matches a memdev. ram_offset is where
 * the memdev starts in RAM-offset space (turn it into a guest-physical
 * address with ms_guestmem_layout_ram_to_gpa). The agent reads a
 * guest-physical page over QMP and compares it with each candidate's
 * (ms_guestmem_read_host). Returns the index of the mapping that backs
 * the memdev, or -1 with error set when it cannot tell. */
typedef gint (*MsGuestMemDisambiguateFunc)(const MsGuestMemdev *memdev,
                                           guint64 ram_offset,
                                           GPtrArray *candidates,
                                           gpointer user_data,
                                           GError **error);

/* A memdev and the mapping found for it. */
typedef struct {
    char *memdev_id;
    MsGuestMemBackend backend;
    guint64 ram_offset;       /* position in RAM-offset space */
    guint64 size;             /* bytes */
    guint64 host_start;       /* host virtual address in QEMU */
    char *path;               /* mapping path, NULL if anonymous */
    guint64 kernel_page_size; /* 4096, or 2 MiB for hugetlb */
    gboolean mergeable;
    gboolean shared;          /* rw-s */
} MsGuestMemBlock;

void ms_guestmem_block_free(MsGuestMemBlock *block);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MsGuestMemBlock, ms_guestmem_block_free)

/* Finds the mapping of every memdev (boot RAM, in NUMA node order: the
 * order defines RAM offsets) in process pid. proc_root is "/proc" or a
 * fixture tree holding PID/maps and PID/smaps. Candidates are mappings with
 * the memdev's exact size, rw-p (rw-s when shared), of a kind matching the
 * backend; a mapping claimed by one memdev is not offered to another. With
 * two or more candidates and no callback (or a callback that fails) the
 * error names the memdev and every candidate. Returns a GPtrArray of
 * MsGuestMemBlock* in memdev order. */
GPtrArray *ms_guestmem_discover(pid_t pid, GPtrArray *memdevs,
                                const char *proc_root,
                                MsGuestMemDisambiguateFunc disambiguate,
                                gpointer user_data, GError **error);

/* Parsers behind ms_guestmem_discover, exposed for tests: buffers, not
 * paths. Return a GPtrArray of MsGuestMemCandidate* for every rw mapping;
 * smaps may be NULL (no page sizes or VmFlags then). */
GPtrArray *ms_guestmem_parse_maps(const char *maps, gsize maps_len,
                                  const char *smaps, gsize smaps_len,
                                  GError **error);

/* Reads len bytes at host virtual address addr of pid (PROC_ROOT/PID/mem):
 * for disambiguation callbacks. */
gboolean ms_guestmem_read_host(pid_t pid, const char *proc_root, guint64 addr,
                               void *buf, gsize len, GError **error);

const char *ms_guestmem_backend_name(MsGuestMemBackend backend);

G_END_DECLS
