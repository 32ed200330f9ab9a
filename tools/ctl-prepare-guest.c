/* tools/ctl-prepare-guest.c: `memsharectl image prepare-guest`: makes a
 * Debian (initramfs-tools) guest mount a memshare image as its /usr. It owns
 * what changes inside the guest's root tree and nothing else:
 *   - etc/fstab: one /usr line, `LABEL=LABEL /usr ext4 ro,dax=always 0 0`
 *     (dax) or `... ro 0 0` (blk); initramfs-tools mounts /usr itself
 *     before switching root when the fstab has such a line;
 *   - etc/initramfs-tools/modules: virtio_pci virtio_pmem nd_pmem
 *     virtio_blk ext4 (MODULES=most leaves drivers/nvdimm out, so a stock
 *     Debian initramfs cannot see a pmem device);
 *   - etc/initramfs-tools/scripts/local-block/memshare-usr: waits (up to
 *     --wait seconds, returning as soon as it is there) for the image's
 *     device, because the agent hot-plugs it only after QEMU has started
 *     and initramfs-tools waits at most 30 s for the /usr device before it
 *     panics. initramfs-tools runs local-block scripts, with the device it
 *     looks for as $1, only while that device is missing, so the script
 *     costs nothing when the image is there and nothing for other devices
 *     or a guest booted without the /usr line. Not ROOTDELAY: initramfs-
 *     tools' init sleeps ROOTDELAY seconds on every boot before it even
 *     looks for the root device;
 *   - `update-initramfs -u -k all` in the guest (chroot unless ROOT is /).
 * It checks first and changes nothing when the guest cannot work: a kernel
 * without virtio_pmem/nd_pmem/libnvdimm (or CONFIG_FS_DAX) is refused with
 * the guest and the missing parts named. --dry-run prints the plan. */
#include "ctl.h"
#include "ms-error.h"
#include "ms-image-build.h"
#include "ms-image-store.h"
#include "ms-util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define PG_FILE_MAX (1024 * 1024)
#define PG_MODULES_DEP_MAX (64 * 1024 * 1024)
#define PG_DEFAULT_WAIT 180
#define PG_WAIT_SCRIPT "etc/initramfs-tools/scripts/local-block/memshare-usr"

/* The initramfs modules we add, in load order; the dependencies
 * (libnvdimm, virtio) come along through modules.dep. */
static const char *const pg_initramfs_modules[] = {
    "virtio_pci", "virtio_pmem", "nd_pmem", "virtio_blk", "ext4",
};

typedef struct {
    const char *root;       /* as given, for messages */
    char *label;
    gboolean dax;
    guint wait;
    gboolean dry_run;
    gboolean no_initramfs;
} PgOptions;

static void
pg_options_clear(PgOptions *o)
{
    g_free(o->label);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(PgOptions, pg_options_clear)

/* "virtio-pmem.ko.xz" -> "virtio_pmem" */
static char *
module_name_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strstr(base, ".ko");
    char *name = g_strndup(base, dot ? (gsize)(dot - base) : strlen(base));
    g_strdelimit(name, "-", '_');
    return name;
}

/* Adds the module names listed in FILE (modules.dep: "path: deps";
 * modules.builtin: "path") to SET. A missing file adds nothing. */
static gboolean
read_module_list(const char *file, GHashTable *set, GError **error)
{
    g_autofree char *buf = NULL;
    g_autoptr(GError) e = NULL;
    if (!ms_file_read_bounded(file, PG_MODULES_DEP_MAX, &buf, NULL, &e)) {
        if (g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
            return TRUE;
        g_propagate_error(error, g_steal_pointer(&e));
        return FALSE;
    }
    g_auto(GStrv) lines = g_strsplit(buf, "\n", -1);
    for (char **l = lines; *l; l++) {
        char *colon = strchr(*l, ':');
        if (colon)
            *colon = '\0';
        g_strstrip(*l);
        if (**l)
            g_hash_table_add(set, module_name_of(*l));
    }
    return TRUE;
}

/* Where the guest's kernel modules are: usr/lib/modules (merged /usr), else
 * lib/modules when lib is a real directory. A lib symlink is never followed
 * out of ROOT: bookworm's is relative (usr/lib), but a tree is untrusted. */
static char *
modules_dir(const char *root)
{
    g_autofree char *usr = g_build_filename(root, "usr", "lib", "modules", NULL);
    if (g_file_test(usr, G_FILE_TEST_IS_DIR))
        return g_steal_pointer(&usr);
    g_autofree char *lib = g_build_filename(root, "lib", NULL);
    struct stat st;
    if (lstat(lib, &st) == 0 && S_ISDIR(st.st_mode)) {
        g_autofree char *m = g_build_filename(lib, "modules", NULL);
        if (g_file_test(m, G_FILE_TEST_IS_DIR))
            return g_steal_pointer(&m);
    }
    return NULL;
}

/* Is CONFIG set to y in boot/config-KVER? TRUE with *known = FALSE when the
 * guest has no config file (we cannot tell; modules decide then). */
static gboolean
kernel_config_has(const char *root, const char *kver, const char *option, gboolean *known)
{
    g_autofree char *path = g_strdup_printf("%s/boot/config-%s", root, kver);
    g_autofree char *buf = NULL;
    *known = FALSE;
    if (!ms_file_read_bounded(path, PG_FILE_MAX, &buf, NULL, NULL))
        return TRUE;
    *known = TRUE;
    g_autofree char *want = g_strdup_printf("\n%s=y\n", option);
    g_autofree char *nl = g_strconcat("\n", buf, NULL);
    return strstr(nl, want) != NULL;
}

/* Checks every kernel of the guest. Fails naming the guest, the kernel and
 * what it lacks; *kernels gets the versions checked. */
static gboolean
check_kernels(const PgOptions *o, GPtrArray *kernels, GError **error)
{
    g_autofree char *mdir = modules_dir(o->root);
    if (mdir == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "guest '%s' has no kernel modules (no usr/lib/modules): install a kernel in the guest "
                    "(linux-image-amd64) first", o->root);
        return FALSE;
    }
    g_autoptr(GError) e = NULL;
    g_autoptr(GDir) d = g_dir_open(mdir, 0, &e);
    if (d == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "guest '%s': %s", o->root, e->message);
        return FALSE;
    }
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *n;
    while ((n = g_dir_read_name(d)) != NULL) {
        g_autofree char *dep = g_build_filename(mdir, n, "modules.dep", NULL);
        if (g_file_test(dep, G_FILE_TEST_IS_REGULAR))
            g_ptr_array_add(names, g_strdup(n));
    }
    if (names->len == 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "guest '%s' has no kernel with a modules.dep under %s (run depmod in the guest, "
                    "or install linux-image-amd64)", o->root, mdir);
        return FALSE;
    }
    g_ptr_array_sort(names, (GCompareFunc)(void (*)(void))g_strcmp0);
    /* what each mode needs; libnvdimm is nd_pmem's and virtio_pmem's dependency */
    const char *dax_need[] = { "virtio_pmem", "nd_pmem", "libnvdimm", "virtio_pci", "ext4" };
    const char *blk_need[] = { "virtio_blk", "virtio_pci", "ext4" };
    for (guint k = 0; k < names->len; k++) {
        const char *kver = names->pdata[k];
        g_autoptr(GHashTable) have = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_autofree char *dep = g_build_filename(mdir, kver, "modules.dep", NULL);
        g_autofree char *builtin = g_build_filename(mdir, kver, "modules.builtin", NULL);
        if (!read_module_list(dep, have, error) || !read_module_list(builtin, have, error))
            return FALSE;
        g_autoptr(GString) missing = g_string_new(NULL);
        const char **need = o->dax ? dax_need : blk_need;
        guint nneed = o->dax ? G_N_ELEMENTS(dax_need) : G_N_ELEMENTS(blk_need);
        for (guint i = 0; i < nneed; i++)
            if (!g_hash_table_contains(have, need[i]))
                g_string_append_printf(missing, "%s%s", missing->len ? ", " : "", need[i]);
        gboolean known = FALSE;
        if (o->dax && !kernel_config_has(o->root, kver, "CONFIG_FS_DAX", &known))
            g_string_append_printf(missing, "%sCONFIG_FS_DAX", missing->len ? ", " : "");
        if (missing->len) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "guest '%s': kernel %s has no %s support: %s missing (looked in %s/%s/modules.dep, "
                        "modules.builtin%s%s); nothing was changed",
                        o->root, kver, o->dax ? "pmem/DAX" : "virtio-blk", missing->str, mdir, kver,
                        o->dax ? " and boot/config-" : "", o->dax ? kver : "");
            return FALSE;
        }
        g_ptr_array_add(kernels, g_strdup(kver));
    }
    return TRUE;
}

/* Reads ROOT/REL if it exists (refusing a symlink: the file is written
 * back, and a link could point out of the guest). *contents is "" when the
 * file is missing. */
static gboolean
read_guest_file(const char *root, const char *rel, char **contents, GError **error)
{
    /* every directory on the way too: a guest whose etc/ links to /etc
     * would otherwise have us rewrite the host's fstab */
    g_auto(GStrv) parts = g_strsplit(rel, "/", -1);
    g_autoptr(GString) dir = g_string_new(root);
    for (guint i = 0; parts[i] && parts[i + 1]; i++) {
        g_string_append_printf(dir, "/%s", parts[i]);
        struct stat ds;
        if (lstat(dir->str, &ds) == 0 && S_ISLNK(ds.st_mode)) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "guest '%s': %s is a symbolic link (refused)", root,
                        dir->str + strlen(root) + 1);
            return FALSE;
        }
    }
    g_autofree char *path = g_build_filename(root, rel, NULL);
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) {
            *contents = g_strdup("");
            return TRUE;
        }
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "guest '%s': %s: %s", root, rel, g_strerror(errno));
        return FALSE;
    }
    if (S_ISLNK(st.st_mode) || !S_ISREG(st.st_mode)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "guest '%s': %s is %s (refused)", root, rel,
                    S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file");
        return FALSE;
    }
    return ms_file_read_bounded(path, PG_FILE_MAX, contents, NULL, error);
}

/* The fstab with our /usr line: an existing /usr entry is kept as a
 * comment (initramfs-tools takes the first /usr line it finds). */
static char *
fstab_update(const char *old, const char *line, gboolean *changed)
{
    g_autoptr(GString) out = g_string_new(NULL);
    g_auto(GStrv) lines = g_strsplit(old, "\n", -1);
    gboolean placed = FALSE;
    guint n = g_strv_length(lines);
    if (n > 0 && lines[n - 1][0] == '\0')
        n--;  /* the split of a final newline */
    *changed = FALSE;
    for (guint i = 0; i < n; i++) {
        const char *l = lines[i];
        g_auto(GStrv) f = g_strsplit_set(l, " \t", -1);
        const char *fields[2] = { NULL, NULL };
        guint nf = 0;
        for (char **p = f; *p && nf < 2; p++)
            if (**p)
                fields[nf++] = *p;
        gboolean is_usr = nf == 2 && fields[0][0] != '#' && strcmp(fields[1], "/usr") == 0;
        if (is_usr && !placed && strcmp(l, line) == 0) {
            placed = TRUE;
            g_string_append_printf(out, "%s\n", l);
        } else if (is_usr) {
            *changed = TRUE;
            g_string_append_printf(out, "# memshare: replaced: %s\n", l);
        } else {
            g_string_append_printf(out, "%s\n", l);
        }
    }
    if (!placed) {
        *changed = TRUE;
        g_string_append_printf(out, "# memshare shared image (memsharectl image prepare-guest)\n%s\n", line);
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

/* etc/initramfs-tools/modules with each of our modules once. */
static char *
modules_update(const char *old, GString *added)
{
    g_autoptr(GHashTable) present = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_auto(GStrv) lines = g_strsplit(old, "\n", -1);
    for (char **l = lines; *l; l++) {
        g_autofree char *t = g_strstrip(g_strdup(*l));
        if (*t && *t != '#') {
            char *sp = strpbrk(t, " \t");
            if (sp)
                *sp = '\0';
            g_hash_table_add(present, module_name_of(t));
        }
    }
    g_autoptr(GString) out = g_string_new(old);
    if (out->len && out->str[out->len - 1] != '\n')
        g_string_append_c(out, '\n');
    for (guint i = 0; i < G_N_ELEMENTS(pg_initramfs_modules); i++) {
        if (g_hash_table_contains(present, pg_initramfs_modules[i]))
            continue;
        if (added->len == 0)
            g_string_append(out, "# memshare: the shared image's devices (memsharectl image prepare-guest)\n");
        g_string_append_printf(out, "%s\n", pg_initramfs_modules[i]);
        g_string_append_printf(added, "%s%s", added->len ? " " : "", pg_initramfs_modules[i]);
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

/* The local-block script: initramfs-tools calls it about once a second
 * while it waits for a device, that device as $1. For our /usr label it
 * waits up to WAIT s, returning as soon as the label resolves; when it
 * gives up, initramfs-tools' own message and emergency shell follow. */
static char *
wait_script(const char *label, guint wait)
{
    return g_strdup_printf(
        "#!/bin/sh\n"
        "# memshare (memsharectl image prepare-guest): the agent hot-plugs the image\n"
        "# labelled %s after QEMU has started; initramfs-tools waits only 30 s for\n"
        "# the /usr device, so wait here up to %u s, returning as soon as it is there.\n"
        "# initramfs-tools runs local-block scripts only while a device it needs is\n"
        "# missing, with that device as $1.\n"
        "PREREQ=\"\"\n"
        "prereqs() { echo \"$PREREQ\"; }\n"
        "case \"$1\" in prereqs) prereqs; exit 0;; esac\n"
        "[ \"$1\" = \"LABEL=%s\" ] || exit 0\n"
        "[ -e /run/memshare-usr-waited ] && exit 0\n"
        ": > /run/memshare-usr-waited\n"
        "modprobe -q virtio_pmem; modprobe -q nd_pmem; modprobe -q virtio_blk\n"
        "i=0\n"
        "while [ $i -lt %u ]; do\n"
        "    [ -n \"$(blkid -l -t LABEL=%s -o device 2>/dev/null)\" ] && exit 0\n"
        "    [ $i = 0 ] && echo \"memshare: waiting up to %u s for the /usr image %s\"\n"
        "    sleep 0.2; i=$((i + 1))\n"
        "done\n"
        "echo \"memshare: the /usr image %s did not appear in %u s (is the domain's policy\"\n"
        "echo \"memshare: naming it, and does this kernel have virtio_pmem and nd_pmem?)\"\n"
        "exit 0\n",
        label, wait, label, wait * 5, label, wait, label, label, wait);
}

static gboolean
write_guest_file(const PgOptions *o, const char *rel, const char *data, mode_t mode, GError **error)
{
    g_autofree char *path = g_build_filename(o->root, rel, NULL);
    g_autofree char *dir = g_path_get_dirname(path);
    if (g_mkdir_with_parents(dir, 0755) != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "guest '%s': cannot create %s: %s", o->root, dir,
                    g_strerror(errno));
        return FALSE;
    }
    g_autoptr(GError) e = NULL;
    if (!ms_file_write_atomic(path, data, -1, mode, &e)) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "guest '%s': %s", o->root, e->message);
        return FALSE;
    }
    return TRUE;
}

static gboolean
run_update_initramfs(const PgOptions *o, GError **error)
{
    g_autofree char *canon = g_canonicalize_filename(o->root, NULL);
    gboolean self = strcmp(canon, "/") == 0;
    const char *in_root[] = { "update-initramfs", "-u", "-k", "all", NULL };
    const char *chrooted[] = { "chroot", canon, "/usr/sbin/update-initramfs", "-u", "-k", "all", NULL };
    /* chroot looks the program up in the guest; the guest's PATH may lack
     * sbin, hence the full path */
    const char **argv = self ? in_root : chrooted;
    g_autoptr(GError) e = NULL;
    int status = 0;
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_CHILD_INHERITS_STDIN, NULL,
                      NULL, NULL, NULL, &status, &e)) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "guest '%s': cannot run update-initramfs: %s", o->root,
                    e->message);
        return FALSE;
    }
    if (!g_spawn_check_wait_status(status, &e)) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED,
                    "guest '%s': update-initramfs failed (%s); fstab and the initramfs-tools "
                    "configuration are already changed, run it again in the guest",
                    o->root, e->message);
        return FALSE;
    }
    return TRUE;
}

static gboolean
prepare_guest(const PgOptions *o, GError **error)
{
    struct stat st;
    if (stat(o->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "guest '%s': not a directory (give the guest's "
                    "root tree, e.g. its disk mounted with guestmount or mount -o loop)", o->root);
        return FALSE;
    }
    g_autofree char *etc = g_build_filename(o->root, "etc", NULL);
    if (!g_file_test(etc, G_FILE_TEST_IS_DIR)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "guest '%s' has no etc/: not a root file system",
                    o->root);
        return FALSE;
    }
    g_autofree char *upd = g_build_filename(o->root, "usr", "sbin", "update-initramfs", NULL);
    if (!o->no_initramfs && !g_file_test(upd, G_FILE_TEST_EXISTS)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "guest '%s' has no initramfs-tools (usr/sbin/update-initramfs): install it in the guest, "
                    "or use --no-initramfs with an initrd that mounts /usr (docs/images.md); nothing was changed",
                    o->root);
        return FALSE;
    }
    g_autoptr(GPtrArray) kernels = g_ptr_array_new_with_free_func(g_free);
    if (!check_kernels(o, kernels, error))
        return FALSE;

    /* /lib, /bin, /sbin outside /usr would not come from the image */
    const char *merged[] = { "bin", "sbin", "lib" };
    for (guint i = 0; i < G_N_ELEMENTS(merged); i++) {
        g_autofree char *p = g_build_filename(o->root, merged[i], NULL);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            g_printerr("memsharectl image prepare-guest: warning: guest '%s' is not merged-/usr (%s/ is a "
                       "directory): the image replaces /usr only\n", o->root, merged[i]);
    }

    g_autofree char *fstab_old = NULL, *mods_old = NULL, *wait_old = NULL;
    if (!read_guest_file(o->root, "etc/fstab", &fstab_old, error) ||
        !read_guest_file(o->root, "etc/initramfs-tools/modules", &mods_old, error) ||
        !read_guest_file(o->root, PG_WAIT_SCRIPT, &wait_old, error))
        return FALSE;
    g_autofree char *line = g_strdup_printf("LABEL=%s /usr ext4 %s 0 0", o->label, o->dax ? "ro,dax=always" : "ro");
    gboolean fstab_changed = FALSE;
    g_autofree char *fstab_new = fstab_update(fstab_old, line, &fstab_changed);
    g_autoptr(GString) added = g_string_new(NULL);
    g_autofree char *mods_new = o->no_initramfs ? g_strdup(mods_old) : modules_update(mods_old, added);
    g_autofree char *wait_new = wait_script(o->label, o->wait);
    gboolean wait_changed = !o->no_initramfs && strcmp(wait_old, wait_new) != 0;

    g_ptr_array_add(kernels, NULL);
    g_autofree char *kl = g_strjoinv(" ", (char **)kernels->pdata);
    g_print("guest %s: image '%s' on /usr (%s), kernels %s\n", o->root, o->label, o->dax ? "dax" : "blk", kl);
    g_print("  etc/fstab: %s%s\n", fstab_changed ? "set " : "already has ", line);
    if (!o->no_initramfs) {
        g_print("  etc/initramfs-tools/modules: %s%s\n", added->len ? "add " : "already has the modules",
                added->str);
        g_print("  %s: %swait up to %u s for LABEL=%s\n", PG_WAIT_SCRIPT, wait_changed ? "set " : "already has ",
                o->wait, o->label);
        g_print("  update-initramfs -u -k all%s\n", o->dry_run ? "" : " (running)");
    }
    if (o->dry_run) {
        g_print("dry run: nothing changed\n");
        return TRUE;
    }
    if (fstab_changed && !write_guest_file(o, "etc/fstab", fstab_new, 0644, error))
        return FALSE;
    if (added->len && !write_guest_file(o, "etc/initramfs-tools/modules", mods_new, 0644, error))
        return FALSE;
    if (wait_changed && !write_guest_file(o, PG_WAIT_SCRIPT, wait_new, 0755, error))
        return FALSE;
    if (!o->no_initramfs && !run_update_initramfs(o, error))
        return FALSE;
    g_print("guest %s prepared\n", o->root);
    return TRUE;
}

int
ms_ctl_image_prepare_guest(int argc, char **argv)
{
    g_autofree char *name = NULL, *mode = NULL;
    gint wait = PG_DEFAULT_WAIT;
    gboolean dry_run = FALSE, no_initramfs = FALSE;
    GOptionEntry entries[] = {
        { "name", 0, 0, G_OPTION_ARG_STRING, &name, "the image the guest mounts on /usr (its label)", "NAME" },
        { "mode", 0, 0, G_OPTION_ARG_STRING, &mode,
          "dax (default: ro,dax=always) or blk (ro: DAX where the device has it)", "MODE" },
        { "wait", 0, 0, G_OPTION_ARG_INT, &wait,
          "at most this long the initramfs waits for the hot-plugged image (default 180)", "SECONDS" },
        { "dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry_run, "print what would change, change nothing", NULL },
        { "no-initramfs", 0, 0, G_OPTION_ARG_NONE, &no_initramfs,
          "only the fstab line (the initrd is not initramfs-tools')", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("--name NAME GUEST-ROOT - memsharectl image prepare-guest");
    g_option_context_set_summary(ctx,
        "Makes a Debian guest (initramfs-tools) mount the shared image NAME as /usr:\n"
        "an fstab line, the pmem modules in its initramfs, a longer wait for the\n"
        "hot-plugged device, update-initramfs. GUEST-ROOT is the guest's root tree\n"
        "(a debootstrap tree, or its disk mounted: guestmount -a DISK -i DIR).");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("memsharectl image prepare-guest: %s\n", error->message);
        return MS_CTL_EXIT_USAGE;
    }
    if (argc != 2 || name == NULL) {
        g_printerr("memsharectl image prepare-guest: usage: --name NAME GUEST-ROOT (--help for more)\n");
        return MS_CTL_EXIT_USAGE;
    }
    if (!ms_image_name_is_valid(name)) {
        g_printerr("memsharectl image prepare-guest: '%s' is not a valid image name (letters, digits, '.', "
                   "'_', '-'; first a letter or digit; at most 64)\n", name);
        return MS_CTL_EXIT_USAGE;
    }
    if (mode && strcmp(mode, "dax") != 0 && strcmp(mode, "blk") != 0) {
        g_printerr("memsharectl image prepare-guest: --mode '%s' is not dax or blk\n", mode);
        return MS_CTL_EXIT_USAGE;
    }
    if (wait < 1 || wait > 3600) {
        g_printerr("memsharectl image prepare-guest: --wait %d is not between 1 and 3600 seconds\n", wait);
        return MS_CTL_EXIT_USAGE;
    }
    g_auto(PgOptions) o = {
        .root = argv[1],
        .label = g_strndup(name, MS_IMAGE_LABEL_MAX),
        .dax = mode == NULL || strcmp(mode, "dax") == 0,
        .wait = wait,
        .dry_run = dry_run,
        .no_initramfs = no_initramfs,
    };
    if (!prepare_guest(&o, &error)) {
        g_printerr("memsharectl image prepare-guest: %s\n", error->message);
        return error->domain == MS_ERROR && error->code == MS_ERROR_INVALID ? MS_CTL_EXIT_INVALID
               : error->domain == MS_ERROR && error->code == MS_ERROR_NOT_FOUND ? MS_CTL_EXIT_NOT_FOUND
               : MS_CTL_EXIT_FAILURE;
    }
    return MS_CTL_EXIT_OK;
}
