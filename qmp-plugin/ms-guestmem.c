/* qmp-plugin/ms-guestmem.c: finds guest RAM in the QEMU process (memdevs
 * from QMP matched against /proc/PID/maps and smaps) and the x86
 * guest-physical RAM layout. Matching never guesses: ambiguity is either
 * settled by the caller's callback (which looks at guest contents) or
 * reported with every candidate named. */
#include "ms-guestmem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ms-error.h"
#include "ms-util.h"

G_DEFINE_QUARK(ms-guestmem-error-quark, ms_guestmem_error)

/* A QEMU process has a few thousand mappings at most; smaps is ~1 KiB per
 * mapping. These bounds are far above that and far below trouble. */
#define MS_GUESTMEM_MAPS_MAX  (16 * 1024 * 1024)
#define MS_GUESTMEM_SMAPS_MAX (64 * 1024 * 1024)
#define MS_GUESTMEM_MAX_MEMDEVS 1024
/* x86-64 with 5-level paging tops out at 4 PiB of physical address space. */
#define MS_GUESTMEM_MAX_SIZE (G_GUINT64_CONSTANT(1) << 52)

/* QEMU 7.2 constants (hw/i386/pc_q35.c, hw/i386/pc_piix.c). */
#define Q35_LOWMEM_SPLIT    G_GUINT64_CONSTANT(0xb0000000)  /* 2.75 GiB */
#define Q35_LOWMEM_BIG      G_GUINT64_CONSTANT(0x80000000)  /* 2 GiB */
#define PC_MAX_RAM_BELOW_4G G_GUINT64_CONSTANT(0xe0000000)  /* 3.5 GiB */
#define PC_GIGABYTE_ALIGN   G_GUINT64_CONSTANT(0xc0000000)  /* 3 GiB */

const char *
ms_guestmem_backend_name(MsGuestMemBackend backend)
{
    switch (backend) {
    case MS_GUESTMEM_BACKEND_RAM: return "memory-backend-ram";
    case MS_GUESTMEM_BACKEND_MEMFD: return "memory-backend-memfd";
    case MS_GUESTMEM_BACKEND_FILE: return "memory-backend-file";
    case MS_GUESTMEM_BACKEND_UNKNOWN: break;
    }
    return "backend of unknown type";
}

void
ms_guestmem_memdev_free(MsGuestMemdev *memdev)
{
    if (!memdev)
        return;
    g_free(memdev->id);
    g_free(memdev->mem_path);
    g_free(memdev);
}

void
ms_guestmem_candidate_free(MsGuestMemCandidate *cand)
{
    if (!cand)
        return;
    g_free(cand->path);
    g_free(cand);
}

void
ms_guestmem_block_free(MsGuestMemBlock *block)
{
    if (!block)
        return;
    g_free(block->memdev_id);
    g_free(block->path);
    g_free(block);
}

/* ---- QMP replies ---- */

static gboolean
json_member_bool(JsonObject *obj, const char *name, const char *what,
                 gboolean *out, GError **error)
{
    JsonNode *node = json_object_get_member(obj, name);
    if (!node || !JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_BOOLEAN) {
        g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                    "query-memdev: %s has no boolean '%s'", what, name);
        return FALSE;
    }
    *out = json_node_get_boolean(node);
    return TRUE;
}

GPtrArray *
ms_guestmem_memdevs_from_json(JsonNode *reply, GError **error)
{
    if (!reply || !JSON_NODE_HOLDS_ARRAY(reply)) {
        g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                    "query-memdev: reply is not an array");
        return NULL;
    }
    JsonArray *arr = json_node_get_array(reply);
    guint n = json_array_get_length(arr);
    if (n > MS_GUESTMEM_MAX_MEMDEVS) {
        g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_TOO_BIG,
                    "query-memdev: %u memdevs, more than the %d allowed",
                    n, MS_GUESTMEM_MAX_MEMDEVS);
        return NULL;
    }
    g_autoptr(GPtrArray) out =
        g_ptr_array_new_with_free_func((GDestroyNotify)ms_guestmem_memdev_free);
    for (guint i = 0; i < n; i++) {
        JsonNode *el = json_array_get_element(arr, i);
        g_autofree char *what = g_strdup_printf("entry %u", i);
        if (!JSON_NODE_HOLDS_OBJECT(el)) {
            g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                        "query-memdev: %s is not an object", what);
            return NULL;
        }
        JsonObject *obj = json_node_get_object(el);
        g_autoptr(MsGuestMemdev) md = g_new0(MsGuestMemdev, 1);

        JsonNode *id = json_object_get_member(obj, "id");
        if (id && JSON_NODE_HOLDS_VALUE(id) &&
            json_node_get_value_type(id) == G_TYPE_STRING &&
            json_node_get_string(id)[0] != '\0') {
            const char *s = json_node_get_string(id);
            if (strlen(s) > 256) {
                g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                            "query-memdev: %s has an id longer than 256 bytes", what);
                return NULL;
            }
            md->id = g_strdup(s);
            g_free(what);
            what = g_strdup_printf("memdev '%s'", md->id);
        } else {
            md->id = g_strdup_printf("memdev #%u", i);
        }

        JsonNode *size = json_object_get_member(obj, "size");
        if (!size || !JSON_NODE_HOLDS_VALUE(size) ||
            json_node_get_value_type(size) != G_TYPE_INT64) {
            g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                        "query-memdev: %s has no integer 'size'", what);
            return NULL;
        }
        gint64 sz = json_node_get_int(size);
        if (sz <= 0 || (guint64)sz > MS_GUESTMEM_MAX_SIZE || sz % 4096 != 0) {
            g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                        "query-memdev: %s has size %" G_GINT64_FORMAT
                        ", not a positive multiple of 4096 below 4 PiB", what, sz);
            return NULL;
        }
        md->size = (guint64)sz;
        if (!json_member_bool(obj, "merge", what, &md->merge, error) ||
            !json_member_bool(obj, "share", what, &md->share, error))
            return NULL;
        md->backend = MS_GUESTMEM_BACKEND_UNKNOWN;
        g_ptr_array_add(out, g_steal_pointer(&md));
    }
    return g_steal_pointer(&out);
}

gboolean
ms_guestmem_memdevs_drop_device_backed(GPtrArray *memdevs, JsonNode *reply,
                                       GError **error)
{
    if (!reply || !JSON_NODE_HOLDS_ARRAY(reply)) {
        g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                    "query-memory-devices: reply is not an array");
        return FALSE;
    }
    JsonArray *arr = json_node_get_array(reply);
    g_autoptr(GHashTable) used = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonNode *el = json_array_get_element(arr, i);
        if (!JSON_NODE_HOLDS_OBJECT(el)) {
            g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                        "query-memory-devices: entry %u is not an object", i);
            return FALSE;
        }
        /* Checked by hand: json_object_get_object_member() warns (a GLib
         * critical) on a member that is not an object, and QMP replies are
         * untrusted input. */
        JsonNode *dn = json_object_get_member(json_node_get_object(el), "data");
        if (!dn || !JSON_NODE_HOLDS_OBJECT(dn))
            continue;   /* e.g. sgx-epc has no memdev member in some versions */
        JsonObject *data = json_node_get_object(dn);
        JsonNode *m = json_object_get_member(data, "memdev");
        if (!m || !JSON_NODE_HOLDS_VALUE(m) ||
            json_node_get_value_type(m) != G_TYPE_STRING)
            continue;
        const char *path = json_node_get_string(m);
        /* QEMU reports the QOM path "/objects/ID". */
        if (g_str_has_prefix(path, "/objects/"))
            path += strlen("/objects/");
        g_hash_table_add(used, (gpointer)path);
    }
    for (guint i = memdevs->len; i-- > 0;) {
        MsGuestMemdev *md = g_ptr_array_index(memdevs, i);
        if (g_hash_table_contains(used, md->id))
            g_ptr_array_remove_index(memdevs, i);
    }
    return TRUE;
}

/* ---- layout ---- */

MsGuestMemMachine
ms_guestmem_machine_from_type(const char *type)
{
    if (!type)
        return MS_GUESTMEM_MACHINE_FLAT;
    if (strstr(type, "q35"))
        return MS_GUESTMEM_MACHINE_Q35;
    if (strstr(type, "i440fx") || g_str_equal(type, "pc") ||
        g_str_has_prefix(type, "pc-1.") || g_str_has_prefix(type, "pc-0."))
        return MS_GUESTMEM_MACHINE_PC;
    return MS_GUESTMEM_MACHINE_FLAT;
}

gboolean
ms_guestmem_layout_init(MsGuestMemLayout *layout, MsGuestMemMachine machine,
                        guint64 ram_size, guint64 max_ram_below_4g,
                        GError **error)
{
    if (ram_size == 0 || ram_size > MS_GUESTMEM_MAX_SIZE) {
        g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                    "RAM size %" G_GUINT64_FORMAT " is out of range", ram_size);
        return FALSE;
    }
    if (max_ram_below_4g > MS_GUESTMEM_4G) {
        /* QEMU itself refuses this (pc_machine_set_max_ram_below_4g). */
        g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                    "max-ram-below-4g %" G_GUINT64_FORMAT " exceeds 4 GiB",
                    max_ram_below_4g);
        return FALSE;
    }
    guint64 lowmem;
    switch (machine) {
    case MS_GUESTMEM_MACHINE_Q35:
        /* pc_q35_init(): leave room for the 32-bit PCI hole and MMCFG. */
        lowmem = ram_size >= Q35_LOWMEM_SPLIT ? Q35_LOWMEM_BIG : Q35_LOWMEM_SPLIT;
        if (lowmem > (max_ram_below_4g ? max_ram_below_4g : MS_GUESTMEM_4G))
            lowmem = max_ram_below_4g;
        break;
    case MS_GUESTMEM_MACHINE_PC: {
        /* pc_init1(): 3.5 GiB default; gigabyte_align (every 7.2 machine
         * type) moves the split to 3 GiB once RAM does not fit below it. */
        guint64 max = max_ram_below_4g ? max_ram_below_4g : PC_MAX_RAM_BELOW_4G;
        lowmem = max;
        if (ram_size >= max && lowmem > PC_GIGABYTE_ALIGN)
            lowmem = PC_GIGABYTE_ALIGN;
        break;
    }
    case MS_GUESTMEM_MACHINE_FLAT:
    default:
        lowmem = ram_size;
        break;
    }
    MsGuestMemLayout l = { .machine = machine, .ram_size = ram_size };
    if (machine == MS_GUESTMEM_MACHINE_FLAT || ram_size < lowmem) {
        l.below_4g = ram_size;
        l.above_4g = 0;
    } else {
        l.below_4g = lowmem;
        l.above_4g = ram_size - lowmem;
    }
    *layout = l;
    return TRUE;
}

gboolean
ms_guestmem_layout_ram_to_gpa(const MsGuestMemLayout *layout,
                              guint64 ram_offset, guint64 *gpa)
{
    if (ram_offset >= layout->ram_size)
        return FALSE;
    if (layout->machine == MS_GUESTMEM_MACHINE_FLAT || ram_offset < layout->below_4g)
        *gpa = ram_offset;
    else
        *gpa = MS_GUESTMEM_4G + (ram_offset - layout->below_4g);
    return TRUE;
}

GArray *
ms_guestmem_layout_extents(const MsGuestMemLayout *layout, guint64 ram_offset,
                           guint64 length)
{
    GArray *out = g_array_new(FALSE, FALSE, sizeof(MsGuestMemExtent));
    guint64 end = ram_offset + length;
    if (end > layout->ram_size || end < ram_offset)
        end = layout->ram_size;
    guint64 split = layout->machine == MS_GUESTMEM_MACHINE_FLAT
                    ? layout->ram_size : layout->below_4g;
    if (ram_offset < split && ram_offset < end) {
        MsGuestMemExtent e = { ram_offset, ram_offset, MIN(end, split) - ram_offset };
        g_array_append_val(out, e);
    }
    if (end > split) {
        guint64 s = MAX(ram_offset, split);
        MsGuestMemExtent e = { 0, s, end - s };
        ms_guestmem_layout_ram_to_gpa(layout, s, &e.gpa);
        g_array_append_val(out, e);
    }
    return out;
}

/* ---- maps / smaps ---- */

/* One line of maps (or a smaps header): "start-end perms off dev inode path".
 * Returns FALSE for a line that is not a mapping header. */
static gboolean
parse_map_header(const char *line, guint64 *start, guint64 *end, char perms[5],
                 const char **path)
{
    char *p;
    if (!g_ascii_isxdigit(line[0]) || g_ascii_isupper(line[0]))
        return FALSE;
    errno = 0;
    *start = g_ascii_strtoull(line, &p, 16);
    if (errno || *p != '-')
        return FALSE;
    *end = g_ascii_strtoull(p + 1, &p, 16);
    if (errno || *p != ' ' || *end <= *start)
        return FALSE;
    p++;
    if (strlen(p) < 4 || p[4] != ' ')
        return FALSE;
    memcpy(perms, p, 4);
    perms[4] = '\0';
    p += 5;
    /* offset, dev, inode */
    for (int field = 0; field < 3; field++) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return FALSE;
        while (*p && *p != ' ')
            p++;
    }
    while (*p == ' ')
        p++;
    *path = p;
    return TRUE;
}

GPtrArray *
ms_guestmem_parse_maps(const char *maps, gsize maps_len, const char *smaps,
                       gsize smaps_len, GError **error)
{
    g_autoptr(GPtrArray) out =
        g_ptr_array_new_with_free_func((GDestroyNotify)ms_guestmem_candidate_free);
    g_autoptr(GHashTable) by_start = g_hash_table_new(g_int64_hash, g_int64_equal);

    g_autofree char *mcopy = g_strndup(maps, maps_len);
    char *save = NULL;
    guint lineno = 0;
    for (char *line = strtok_r(mcopy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        guint64 start, end;
        char perms[5];
        const char *path;
        if (!parse_map_header(line, &start, &end, perms, &path)) {
            g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                        "maps line %u is not a mapping: '%.80s'", lineno, line);
            return NULL;
        }
        if (perms[0] != 'r' || perms[1] != 'w')
            continue;
        MsGuestMemCandidate *c = g_new0(MsGuestMemCandidate, 1);
        c->start = start;
        c->end = end;
        memcpy(c->perms, perms, sizeof(c->perms));
        c->path = path[0] ? g_strdup(path) : NULL;
        g_ptr_array_add(out, c);
        g_hash_table_insert(by_start, &c->start, c);
    }

    if (smaps) {
        g_autofree char *scopy = g_strndup(smaps, smaps_len);
        MsGuestMemCandidate *cur = NULL;
        save = NULL;
        for (char *line = strtok_r(scopy, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            guint64 start, end;
            char perms[5];
            const char *path;
            if (parse_map_header(line, &start, &end, perms, &path)) {
                cur = g_hash_table_lookup(by_start, &start);
                if (cur && cur->end != end)
                    cur = NULL;  /* mappings changed between the two reads */
                continue;
            }
            if (!cur)
                continue;
            if (g_str_has_prefix(line, "KernelPageSize:")) {
                guint64 kb = g_ascii_strtoull(line + strlen("KernelPageSize:"), NULL, 10);
                if (kb > 0 && kb <= 16 * 1024 * 1024)
                    cur->kernel_page_size = kb * 1024;
            } else if (g_str_has_prefix(line, "VmFlags:")) {
                g_auto(GStrv) flags = g_strsplit(line + strlen("VmFlags:"), " ", -1);
                for (guint i = 0; flags[i]; i++)
                    if (g_str_equal(flags[i], "mg"))
                        cur->mergeable = TRUE;
            }
        }
    }
    return g_steal_pointer(&out);
}

typedef enum {
    KIND_OTHER,
    KIND_ANON,
    KIND_MEMFD,
    KIND_FILE,
} MapKind;

static MapKind
candidate_kind(const MsGuestMemCandidate *c)
{
    if (!c->path || g_str_has_prefix(c->path, "[anon:"))
        return KIND_ANON;
    /* A MAP_SHARED|MAP_ANONYMOUS mapping (memory-backend-ram,share=on) is
     * shmem and shows as "/dev/zero (deleted)". */
    if (g_str_equal(c->path, "/dev/zero (deleted)"))
        return KIND_ANON;
    if (g_str_has_prefix(c->path, "/memfd:"))
        return KIND_MEMFD;
    if (c->path[0] == '/')
        return KIND_FILE;
    return KIND_OTHER;   /* [heap], [stack], [vdso]... */
}

static gboolean
file_path_matches(const char *map_path, const char *mem_path)
{
    g_autofree char *p = g_strdup(map_path);
    if (g_str_has_suffix(p, " (deleted)"))
        p[strlen(p) - strlen(" (deleted)")] = '\0';
    if (g_str_equal(p, mem_path))
        return TRUE;
    /* mem-path may be a directory: QEMU creates and unlinks a file in it. */
    g_autofree char *dir = g_str_has_suffix(mem_path, "/")
                           ? g_strdup(mem_path) : g_strconcat(mem_path, "/", NULL);
    return g_str_has_prefix(p, dir);
}

static gboolean
candidate_matches(const MsGuestMemdev *md, const MsGuestMemCandidate *c)
{
    if (c->end - c->start != md->size)
        return FALSE;
    if (!g_str_equal(c->perms, md->share ? "rw-s" : "rw-p"))
        return FALSE;
    MapKind kind = candidate_kind(c);
    switch (md->backend) {
    case MS_GUESTMEM_BACKEND_RAM:
        return kind == KIND_ANON;
    case MS_GUESTMEM_BACKEND_MEMFD:
        return kind == KIND_MEMFD;
    case MS_GUESTMEM_BACKEND_FILE:
        if (kind != KIND_FILE)
            return FALSE;
        return !md->mem_path || file_path_matches(c->path, md->mem_path);
    case MS_GUESTMEM_BACKEND_UNKNOWN:
    default:
        return kind != KIND_OTHER;
    }
}

static char *
describe_candidates(GPtrArray *cands)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < cands->len; i++) {
        MsGuestMemCandidate *c = g_ptr_array_index(cands, i);
        g_string_append_printf(s, "%s%" G_GINT64_MODIFIER "x-%" G_GINT64_MODIFIER "x %s %s%s",
                               i ? ", " : "", c->start, c->end, c->perms,
                               c->path ? c->path : "anonymous",
                               c->mergeable ? " [mg]" : "");
    }
    return g_string_free(s, FALSE);
}

static gboolean
read_proc_file(const char *proc_root, pid_t pid, const char *name, gsize max,
               char **contents, gsize *len, GError **error)
{
    g_autofree char *path = g_strdup_printf("%s/%d/%s", proc_root, (int)pid, name);
    g_autoptr(GError) local = NULL;
    if (!ms_file_read_bounded(path, max, contents, len, &local)) {
        g_set_error(error, MS_GUESTMEM_ERROR,
                    g_error_matches(local, MS_ERROR, MS_ERROR_TOO_BIG)
                    ? MS_GUESTMEM_ERROR_TOO_BIG : MS_GUESTMEM_ERROR_IO,
                    "QEMU process %d: %s", (int)pid, local->message);
        return FALSE;
    }
    return TRUE;
}

GPtrArray *
ms_guestmem_discover(pid_t pid, GPtrArray *memdevs, const char *proc_root,
                     MsGuestMemDisambiguateFunc disambiguate,
                     gpointer user_data, GError **error)
{
    if (!proc_root)
        proc_root = "/proc";
    if (!memdevs || memdevs->len == 0) {
        g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_INVALID,
                    "QEMU process %d: no RAM memdevs to look for", (int)pid);
        return NULL;
    }
    g_autofree char *maps = NULL, *smaps = NULL;
    gsize maps_len = 0, smaps_len = 0;
    if (!read_proc_file(proc_root, pid, "maps", MS_GUESTMEM_MAPS_MAX, &maps,
                        &maps_len, error))
        return NULL;
    /* smaps only adds hints (page size, mg); its absence is not fatal. */
    if (!read_proc_file(proc_root, pid, "smaps", MS_GUESTMEM_SMAPS_MAX, &smaps,
                        &smaps_len, NULL)) {
        g_debug("QEMU process %d: no smaps, page sizes and VmFlags unknown", (int)pid);
        smaps = NULL;
    }
    g_autoptr(GPtrArray) all = ms_guestmem_parse_maps(maps, maps_len, smaps,
                                                      smaps_len, error);
    if (!all)
        return NULL;

    guint n = memdevs->len;
    g_autofree MsGuestMemCandidate **chosen = g_new0(MsGuestMemCandidate *, n);
    g_autoptr(GHashTable) claimed = g_hash_table_new(NULL, NULL);
    guint remaining = n;

    while (remaining > 0) {
        /* Settle every memdev that has exactly one unclaimed candidate
         * first: claiming it may leave others with one. */
        gboolean progress = FALSE;
        gint first_ambiguous = -1;
        g_autoptr(GPtrArray) ambiguous_cands = NULL;
        for (guint i = 0; i < n; i++) {
            if (chosen[i])
                continue;
            MsGuestMemdev *md = g_ptr_array_index(memdevs, i);
            g_autoptr(GPtrArray) cands = g_ptr_array_new();
            for (guint j = 0; j < all->len; j++) {
                MsGuestMemCandidate *c = g_ptr_array_index(all, j);
                if (!g_hash_table_contains(claimed, c) && candidate_matches(md, c))
                    g_ptr_array_add(cands, c);
            }
            if (cands->len == 0) {
                g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_NOT_FOUND,
                            "QEMU process %d: memdev '%s' (%" G_GUINT64_FORMAT
                            " bytes, %s): no %s mapping of that size%s",
                            (int)pid, md->id, md->size,
                            ms_guestmem_backend_name(md->backend),
                            md->share ? "rw-s" : "rw-p",
                            md->mem_path ? " under its mem-path" : "");
                return NULL;
            }
            if (cands->len == 1) {
                chosen[i] = g_ptr_array_index(cands, 0);
                g_hash_table_add(claimed, chosen[i]);
                remaining--;
                progress = TRUE;
            } else if (first_ambiguous < 0) {
                first_ambiguous = (gint)i;
                ambiguous_cands = g_steal_pointer(&cands);
            }
        }
        if (progress || remaining == 0)
            continue;

        MsGuestMemdev *md = g_ptr_array_index(memdevs, first_ambiguous);
        g_autofree char *list = describe_candidates(ambiguous_cands);
        if (!disambiguate) {
            g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_AMBIGUOUS,
                        "QEMU process %d: memdev '%s' (%" G_GUINT64_FORMAT
                        " bytes): %u mappings could back it and nothing tells "
                        "them apart: %s", (int)pid, md->id, md->size,
                        ambiguous_cands->len, list);
            return NULL;
        }
        guint64 ram_offset = 0;
        for (gint k = 0; k < first_ambiguous; k++)
            ram_offset += ((MsGuestMemdev *)g_ptr_array_index(memdevs, k))->size;
        g_autoptr(GError) local = NULL;
        gint idx = disambiguate(md, ram_offset, ambiguous_cands, user_data, &local);
        if (idx < 0 || (guint)idx >= ambiguous_cands->len) {
            g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_AMBIGUOUS,
                        "QEMU process %d: memdev '%s' (%" G_GUINT64_FORMAT
                        " bytes): %u mappings could back it (%s) and the "
                        "contents check did not decide: %s", (int)pid, md->id,
                        md->size, ambiguous_cands->len, list,
                        local ? local->message : "no candidate chosen");
            return NULL;
        }
        chosen[first_ambiguous] = g_ptr_array_index(ambiguous_cands, idx);
        g_hash_table_add(claimed, chosen[first_ambiguous]);
        remaining--;
    }

    g_autoptr(GPtrArray) blocks =
        g_ptr_array_new_with_free_func((GDestroyNotify)ms_guestmem_block_free);
    guint64 ram_offset = 0;
    for (guint i = 0; i < n; i++) {
        MsGuestMemdev *md = g_ptr_array_index(memdevs, i);
        MsGuestMemCandidate *c = chosen[i];
        MsGuestMemBlock *b = g_new0(MsGuestMemBlock, 1);
        b->memdev_id = g_strdup(md->id);
        b->backend = md->backend;
        b->ram_offset = ram_offset;
        b->size = md->size;
        b->host_start = c->start;
        b->path = g_strdup(c->path);
        b->kernel_page_size = c->kernel_page_size ? c->kernel_page_size : 4096;
        b->mergeable = c->mergeable;
        b->shared = c->perms[3] == 's';
        g_ptr_array_add(blocks, b);
        ram_offset += md->size;
    }
    return g_steal_pointer(&blocks);
}

gboolean
ms_guestmem_read_host(pid_t pid, const char *proc_root, guint64 addr, void *buf,
                      gsize len, GError **error)
{
    g_autofree char *path = g_strdup_printf("%s/%d/mem", proc_root ? proc_root : "/proc",
                                            (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_IO,
                    "cannot open '%s': %s", path, g_strerror(e));
        return FALSE;
    }
    gsize done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(addr + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            close(fd);
            g_set_error(error, MS_GUESTMEM_ERROR, MS_GUESTMEM_ERROR_IO,
                        "cannot read %" G_GSIZE_FORMAT " bytes at 0x%" G_GINT64_MODIFIER
                        "x from '%s': %s", len, addr, path,
                        e ? g_strerror(e) : "end of file (process gone?)");
            return FALSE;
        }
        done += (gsize)r;
    }
    close(fd);
    return TRUE;
}
