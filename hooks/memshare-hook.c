/* hooks/memshare-hook.c: the libvirt qemu hook. libvirtd runs it as
 *   memshare-hook DOMAIN OPERATION SUB-OPERATION EXTRA
 * with the domain XML on stdin, for every qemu domain, synchronously: a slow
 * hook slows every `virsh start` on the host. So it does as little as it can:
 *   - domains without a memshare policy: read stdin, exit 0 (zero effect);
 *   - prepare: validate the policy; an invalid one aborts the start (exit 1,
 *     libvirt shows our stderr) unless the policy says on-error="ignore";
 *     apply the KSM-group rule (docs/security.md: a domain of another
 *     sharing group than the one already merging must have <nosharepages/>)
 *     and record the domain's group for the next start;
 *   - started, reconnect, attach: launch the domain's agent without waiting
 *     for it (systemd template unit where systemd is PID 1, a detached
 *     process otherwise);
 *   - stopped: ask the agent to stop; release: make sure it is gone and
 *     remove the domain's runtime directory;
 *   - migrate (destination only): check the shared images are here (and,
 *     when the policy allows it, fetch a missing one from the peers
 *     memshare.conf trusts), give the incoming QEMU the dax devices.
 * It never calls back into libvirt (libvirtd is waiting on us and holds the
 * domain's lock: a call back would deadlock). */
#include "ms-config.h"
#include "ms-dax-carry.h"
#include "ms-error.h"
#include "ms-export.h"
#include "ms-status-keys.h"
#include "ms-history.h"
#include "ms-image-store.h"
#include "ms-image-transfer.h"
#include "ms-policy.h"
#include "ms-sharing.h"
#include "ms-units.h"
#include "ms-util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#if MS_HAVE_LIBSYSTEMD
#include <systemd/sd-bus.h>
#endif

/* Domain XML is a few KiB; libvirt caps its own at 10 MiB. */
#define MS_HOOK_MAX_XML (10 * 1024 * 1024)

typedef enum {
    MS_LAUNCH_AUTO,
    MS_LAUNCH_SYSTEMD,
    MS_LAUNCH_DETACHED,
} MsLaunchMode;

typedef struct {
    char *agent_path;
    char *log_dir;
    char *connect_uri;
    char *image_store;
    MsLaunchMode launch;
    /* [migration]: where a missing shared image may be fetched from at an
     * incoming migration (<migration missing-images='fetch'/>) */
    GStrv image_peers;      /* image-peers=: host names, tried in order */
    GStrv image_rsh;        /* image-rsh=: the remote shell, split */
    char *image_remote;     /* remote-memsharectl= */
    guint fetch_timeout_s;  /* fetch-timeout=: per peer */
} MsHookConfig;

static void
ms_hook_config_clear(MsHookConfig *c)
{
    g_free(c->agent_path);
    g_free(c->log_dir);
    g_free(c->connect_uri);
    g_free(c->image_store);
    g_strfreev(c->image_peers);
    g_strfreev(c->image_rsh);
    g_free(c->image_remote);
}


/* [migration] image-peers, image-rsh, remote-memsharectl, fetch-timeout:
 * read only when a fetch is wanted, so a bad line there refuses that
 * migration (naming the line) and never a domain's start. The hook runs
 * without a terminal: ssh in batch mode, so a missing key fails instead
 * of prompting. */
static gboolean
ms_hook_config_load_migration(MsHookConfig *c, GKeyFile *kf, GError **error)
{
    g_autofree char *peers = ms_config_get_string(kf, "migration", "image-peers", "");
    g_autofree char *rsh = ms_config_get_string(kf, "migration", "image-rsh", "ssh -o BatchMode=yes");
    g_autofree char *timeout = ms_config_get_string(kf, "migration", "fetch-timeout", "10m");
    c->image_remote = ms_config_get_string(kf, "migration", "remote-memsharectl", "memsharectl");
    g_auto(GStrv) words = g_strsplit_set(peers, " ,\t", -1);
    g_autoptr(GStrvBuilder) b = g_strv_builder_new();
    for (guint i = 0; words[i]; i++) {
        if (*words[i] == '\0')
            continue;
        g_autoptr(GError) local = NULL;
        g_autofree char *host = ms_image_transfer_host(words[i], &local);
        if (host == NULL) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "config '%s': [migration] image-peers: %s",
                        ms_config_path(), local->message);
            return FALSE;
        }
        g_strv_builder_add(b, host);
    }
    c->image_peers = g_strv_builder_end(b);
    guint64 ms = 0;
    g_autoptr(GError) local = NULL;
    if ((c->image_rsh = ms_image_transfer_rsh(rsh, &local)) == NULL ||
        !ms_image_transfer_remote_is_valid(c->image_remote, &local) ||
        !ms_units_parse_period_ms(timeout, &ms, &local)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "config '%s': [migration]: %s", ms_config_path(),
                    local->message);
        return FALSE;
    }
    c->fetch_timeout_s = (guint)MAX((guint64)1, MIN(ms / 1000, (guint64)G_MAXUINT));
    return TRUE;
}

static gboolean
ms_hook_config_load(MsHookConfig *c, GError **error)
{
    g_autoptr(GKeyFile) kf = ms_config_load(error);
    if (kf == NULL)
        return FALSE;
    g_autofree char *def_agent = g_build_filename(MS_LIBEXECDIR, "memshare-agent", NULL);
    c->agent_path = ms_config_get_string(kf, "agent", "path", def_agent);
    c->log_dir = ms_config_get_string(kf, "agent", "log-dir", "/var/log/memshare");
    c->connect_uri = ms_config_get_string(kf, "agent", "connect", "qemu:///system");
    c->image_store = ms_config_get_string(kf, "images", "store", "/var/lib/memshare/images");
    g_autofree char *launch = ms_config_get_string(kf, "agent", "launcher", "auto");
    if (g_str_equal(launch, "auto"))
        c->launch = MS_LAUNCH_AUTO;
    else if (g_str_equal(launch, "systemd"))
        c->launch = MS_LAUNCH_SYSTEMD;
    else if (g_str_equal(launch, "detached"))
        c->launch = MS_LAUNCH_DETACHED;
    else {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "config '%s': [agent] launcher='%s': expected auto, systemd or detached",
                    ms_config_path(), launch);
        return FALSE;
    }
    if (c->launch == MS_LAUNCH_AUTO)
        c->launch = g_file_test("/run/systemd/system", G_FILE_TEST_IS_DIR)
                        ? MS_LAUNCH_SYSTEMD : MS_LAUNCH_DETACHED;
    return TRUE;
}

/* libvirt writes the whole XML then closes our stdin; reading all of it also
 * spares libvirt an EPIPE on domains we ignore. */
static gboolean
ms_hook_read_stdin(GString *out, GError **error)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot read domain XML from stdin: %s",
                        g_strerror(errno));
            return FALSE;
        }
        if (n == 0)
            return TRUE;
        if (out->len + (gsize)n > MS_HOOK_MAX_XML) {
            g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG,
                        "domain XML on stdin is larger than %d bytes", MS_HOOK_MAX_XML);
            return FALSE;
        }
        g_string_append_len(out, buf, n);
    }
}

static void
ms_hook_msg(const char *domain, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* libvirt copies the hook's stderr into its error message and its log, so
 * one line per fact, prefixed with who we are. */
static void
ms_hook_msg(const char *domain, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, "memshare: %s\n", msg);
    (void)domain;
}

static char *
ms_hook_pidfile(const char *uuid)
{
    g_autofree char *dir = ms_domain_runtime_dir(uuid);
    return g_build_filename(dir, "agent.pid", NULL);
}

/* libvirt writes QEMU's pid to /run/libvirt/qemu/NAME.pid before `started`.
 * The name comes from libvirt, but we still refuse anything that could walk
 * out of that directory. */
static pid_t
ms_hook_qemu_pid(const char *name)
{
    if (name == NULL || strchr(name, '/') != NULL || name[0] == '.')
        return 0;
    g_autofree char *file = g_strdup_printf("%s.pid", name);
    g_autofree char *path = g_build_filename(MS_RUNSTATEDIR, "libvirt", "qemu", file, NULL);
    return ms_pidfile_read_live(path);
}

#if MS_HAVE_LIBSYSTEMD
/* StartUnit over D-Bus returns once the job is queued: it does not wait for
 * the agent to start, which is what libvirt needs from us. */
static gboolean
ms_hook_systemd_unit(const char *method, const char *uuid, GError **error)
{
    sd_bus *bus = NULL;
    sd_bus_error err = SD_BUS_ERROR_NULL;
    g_autofree char *lower = g_ascii_strdown(uuid, -1);
    g_autofree char *unit = g_strdup_printf("memshare-agent@%s.service", lower);
    int r = sd_bus_open_system(&bus);
    if (r < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot connect to systemd: %s",
                    g_strerror(-r));
        return FALSE;
    }
    r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                           "org.freedesktop.systemd1.Manager", method, &err, NULL,
                           "ss", unit, "replace");
    gboolean ok = r >= 0;
    if (!ok)
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "systemd %s %s: %s", method, unit,
                    err.message ? err.message : g_strerror(-r));
    sd_bus_error_free(&err);
    sd_bus_flush_close_unref(bus);
    return ok;
}
#else
static gboolean
ms_hook_systemd_unit(const char *method, const char *uuid, GError **error)
{
    g_autofree char *lower = g_ascii_strdown(uuid, -1);
    g_autofree char *unit = g_strdup_printf("memshare-agent@%s.service", lower);
    const char *verb = g_str_equal(method, "StartUnit") ? "start" : "stop";
    const char *argv[] = { "systemctl", "--no-block", verb, unit, NULL };
    int status = 0;
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                      NULL, NULL, NULL, NULL, &status, error))
        return FALSE;
    return g_spawn_check_wait_status(status, error);
}
#endif

/* Double fork + setsid: the agent must not be our child (libvirt waits for
 * us), must not hold libvirt's pipes (libvirt reads our stdout/stderr until
 * they close: an inherited descriptor hangs `virsh start`), and must not die
 * with libvirtd's session. */
static gboolean
ms_hook_spawn_detached(const MsHookConfig *cfg, const char *name, const char *uuid,
                       pid_t qemu_pid, GError **error)
{
    if (g_mkdir_with_parents(cfg->log_dir, 0750) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot create log directory '%s': %s",
                    cfg->log_dir, g_strerror(errno));
        return FALSE;
    }
    g_autofree char *lower = g_ascii_strdown(uuid, -1);
    g_autofree char *logname = g_strdup_printf("%s.log", lower);
    g_autofree char *logpath = g_build_filename(cfg->log_dir, logname, NULL);
    g_autofree char *pidarg = g_strdup_printf("%d", (int)qemu_pid);

    GPtrArray *argv = g_ptr_array_new();
    g_ptr_array_add(argv, cfg->agent_path);
    g_ptr_array_add(argv, (char *)"--uuid");
    g_ptr_array_add(argv, lower);
    g_ptr_array_add(argv, (char *)"--name");
    g_ptr_array_add(argv, (char *)name);
    g_ptr_array_add(argv, (char *)"--connect");
    g_ptr_array_add(argv, cfg->connect_uri);
    if (qemu_pid > 0) {
        g_ptr_array_add(argv, (char *)"--qemu-pid");
        g_ptr_array_add(argv, pidarg);
    }
    /* no systemd to restart it: the agent supervises itself */
    g_ptr_array_add(argv, (char *)"--respawn");
    g_ptr_array_add(argv, NULL);

    /* Everything the child needs is prepared before fork: after it, only
     * async-signal-safe calls. */
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (logfd < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot open agent log '%s': %s",
                    logpath, g_strerror(errno));
        g_ptr_array_free(argv, TRUE);
        return FALSE;
    }
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    char *envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *)"LANG=C.UTF-8", NULL };

    pid_t child = fork();
    if (child < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "fork: %s", g_strerror(errno));
        close(logfd);
        close(nullfd);
        g_ptr_array_free(argv, TRUE);
        return FALSE;
    }
    if (child == 0) {
        setsid();
        pid_t grandchild = fork();
        if (grandchild != 0)
            _exit(grandchild < 0 ? 1 : 0);
        if (chdir("/") < 0)
            _exit(127);
        umask(027);
        dup2(nullfd, STDIN_FILENO);
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
        /* Drop every other descriptor libvirt may have leaked to us. */
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(cfg->agent_path, (char **)argv->pdata, envp);
        _exit(127);
    }
    close(logfd);
    close(nullfd);
    g_ptr_array_free(argv, TRUE);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot detach the agent process");
        return FALSE;
    }
    return TRUE;
}

static gboolean
ms_hook_agent_running(const char *uuid)
{
    g_autofree char *pidfile = ms_hook_pidfile(uuid);
    return ms_pidfile_read_live(pidfile) > 0;
}

static gboolean
ms_hook_launch(const MsHookConfig *cfg, const MsPolicy *policy, GError **error)
{
    const char *uuid = policy->domain.uuid;
    if (cfg->launch == MS_LAUNCH_SYSTEMD)
        return ms_hook_systemd_unit("StartUnit", uuid, error);
    if (!g_file_test(cfg->agent_path, G_FILE_TEST_IS_EXECUTABLE)) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "agent '%s' is not an executable",
                    cfg->agent_path);
        return FALSE;
    }
    return ms_hook_spawn_detached(cfg, policy->domain.name, uuid,
                                  ms_hook_qemu_pid(policy->domain.name), error);
}

/* The sharing group POLICY's domain belongs to on this host (its policy,
 * else memshare.conf's [sharing] default-group): whose image copies it
 * maps (docs/security.md). */
static char *
ms_hook_domain_group(const MsPolicy *policy, GError **error)
{
    g_autoptr(GKeyFile) kf = ms_config_load(error);
    MsSharingDefault def;
    if (kf == NULL || !ms_sharing_default_from_config(kf, ms_config_path(), &def, error))
        return NULL;
    return ms_sharing_resolve(policy->sharing.group, policy->domain.uuid, policy->domain.nova_project, def,
                              NULL, error);
}

/* Every shared image's blob must match its manifest's digest before the
 * domain may start: the parser only checked that the name exists. Hashing
 * a large /usr image at every start would delay it, so a verified stamp
 * (ms_image_store_verify_cached) turns repeat starts into one fstat. The
 * agent hashes again before attaching, so this is about refusing early
 * (on-error='refuse'), not the last line of defence. */
static gboolean
ms_hook_verify_images(const MsHookConfig *cfg, const MsPolicy *policy, GError **error)
{
    g_autofree char *stamps = g_build_filename(ms_runtime_dir(), "verified", NULL);
    if (policy->images == NULL || policy->images->len == 0)
        return TRUE;
    /* The domain's sharing group gets its own copy of each image (made
     * here, as root, on the group's first use: the agent's unit sees the
     * store read-only). An unresolvable group is refused by the KSM-group
     * check below; here it attaches nothing. */
    g_autofree char *group = ms_hook_domain_group(policy, error);
    if (group == NULL)
        return FALSE;
    for (guint i = 0; policy->images && i < policy->images->len; i++) {
        const MsSharedImage *img = g_ptr_array_index(policy->images, i);
        if (!ms_image_store_verify_group_cached(cfg->image_store, img->name, group, TRUE, stamps, error)) {
            g_prefix_error(error, "<shared-image name='%s'>: ", img->name);
            return FALSE;
        }
        /* An image mounted at /usr that was not built with --usr may be any
         * tree: warn (into libvirt's log) but start, as the agent does */
        g_autoptr(GError) warn = NULL;
        if (!ms_image_store_check_mount(cfg->image_store, img->name, img->mount, &warn))
            ms_hook_msg(policy->domain.name, "domain '%s': warning: %s", policy->domain.name, warn->message);
    }
    return TRUE;
}

/* Running domains with KSM merging on, from the hook's records (all
 * domains but a bad record's: only root writes RUNTIME, and a record that
 * does not parse names no group). */
static GPtrArray *
ms_hook_read_mergers(void)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_autofree char *root = g_build_filename(ms_runtime_dir(), "domains", NULL);
    g_autoptr(GDir) d = g_dir_open(root, 0, NULL);
    const char *e;
    while (d && (e = g_dir_read_name(d)) != NULL) {
        if (!ms_uuid_is_valid(e))
            continue;
        g_autofree char *path = g_build_filename(root, e, "sharing", NULL);
        g_autofree char *buf = NULL, *name = NULL, *group = NULL;
        gsize len = 0;
        gboolean merging = FALSE;
        g_autoptr(GError) error = NULL;
        if (!ms_file_read_bounded(path, MS_SHARING_RECORD_MAX, &buf, &len, &error) ||
            !ms_sharing_record_parse(buf, len, path, &name, &group, &merging, &error)) {
            if (!g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                g_debug("%s", error->message);
            continue;
        }
        if (!merging)
            continue;
        /* uuid, name, group: three strings in one array slot each */
        g_ptr_array_add(out, g_strdup(e));
        g_ptr_array_add(out, g_steal_pointer(&name));
        g_ptr_array_add(out, g_steal_pointer(&group));
    }
    return out;
}

/* The KSM-group rule at `prepare` (docs/security.md): Linux merges across
 * every mergeable region of the host, so only one sharing group may run
 * with merging on; a domain of another group must bring
 * <memoryBacking><nosharepages/></memoryBacking>. The rule is the
 * operator's, not the policy author's: on-error='ignore' does not lift it
 * (starting "without memshare" would still merge, QEMU's default). The
 * check and this domain's record happen under one exclusive lock, so two
 * domains of different groups starting at once cannot both pass. */
static gboolean
ms_hook_check_sharing(const MsPolicy *policy, GError **error)
{
    const char *name = policy->domain.name ? policy->domain.name : "?";
    g_autoptr(GKeyFile) kf = ms_config_load(error);
    if (kf == NULL)
        return FALSE;
    MsSharingDefault def;
    if (!ms_sharing_default_from_config(kf, ms_config_path(), &def, error))
        return FALSE;
    g_autofree char *group = ms_sharing_resolve(policy->sharing.group, policy->domain.uuid,
                                                policy->domain.nova_project, def, NULL, error);
    if (group == NULL) {
        g_prefix_error(error, "domain '%s': ", name);
        return FALSE;
    }
    /* the domain's directory only once it may start: a refused prepare
     * leaves nothing behind */
    g_autofree char *domains = g_build_filename(ms_runtime_dir(), "domains", NULL);
    if (g_mkdir_with_parents(domains, 0755) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot create '%s': %s", domains, g_strerror(errno));
        return FALSE;
    }
    g_autofree char *lock = g_build_filename(ms_runtime_dir(), "sharing.lock", NULL);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot lock '%s': %s", lock, g_strerror(errno));
        if (fd >= 0)
            close(fd);
        return FALSE;
    }
    g_autoptr(GPtrArray) m = ms_hook_read_mergers();
    gsize n = m->len / 3;
    g_autofree MsSharingMerger *running = g_new0(MsSharingMerger, n ? n : 1);
    for (gsize i = 0; i < n; i++) {
        running[i].uuid = g_ptr_array_index(m, 3 * i);
        running[i].name = g_ptr_array_index(m, 3 * i + 1);
        running[i].group = g_ptr_array_index(m, 3 * i + 2);
    }
    gboolean ok = ms_sharing_ksm_check(name, policy->domain.uuid, group, policy->domain.nosharepages,
                                       running, n, error);
    g_autofree char *dir = ms_domain_runtime_dir(policy->domain.uuid);
    if (ok && g_mkdir_with_parents(dir, 0750) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot create '%s': %s", dir, g_strerror(errno));
        ok = FALSE;
    }
    if (ok) {
        g_autofree char *rec = ms_sharing_record_format(name, group, !policy->domain.nosharepages);
        g_autofree char *path = g_build_filename(dir, "sharing", NULL);
        ok = ms_file_write_atomic(path, rec, -1, 0644, error);
    }
    close(fd);
    return ok;
}

/* The sizes the domain starts with. libvirt's live XML reports the
 * balloon's current size as <currentMemory>, and the agent moves the
 * balloon, so an agent that (re)reads the live XML later would take its
 * own doing for the domain's base. Recorded at `prepare`: by `started`
 * libvirt has already refreshed <currentMemory> from query-balloon (the
 * guest has not loaded its driver yet, so it reads <memory>). `release`
 * removes the file with the runtime directory if the start fails. */
static void
ms_hook_record_boot_memory(const MsPolicy *policy)
{
    g_autofree char *dir = ms_domain_runtime_dir(policy->domain.uuid);
    g_autoptr(GError) error = NULL;
    if (g_mkdir_with_parents(dir, 0750) < 0) {
        ms_hook_msg(policy->domain.name, "cannot create '%s': %s", dir, g_strerror(errno));
        return;
    }
    g_autofree char *path = g_build_filename(dir, "boot-memory", NULL);
    /* an incoming migration's `migrate` op recorded the source's base */
    g_autofree char *prev = NULL;
    if (ms_file_read_bounded(path, 4096, &prev, NULL, NULL) && strstr(prev, "\nsource=migration\n"))
        return;
    g_autofree char *text = g_strdup_printf("memory=%" G_GUINT64_FORMAT "\ncurrent-memory=%" G_GUINT64_FORMAT "\n",
                                            policy->domain.memory_kib, policy->domain.current_memory_kib);
    if (!ms_file_write_atomic(path, text, -1, 0644, &error))
        ms_hook_msg(policy->domain.name, "%s", error->message);
}

static void
ms_hook_remove_runtime_dir(const char *uuid)
{
    g_autofree char *dir = ms_domain_runtime_dir(uuid);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    if (d == NULL)
        return;
    const char *entry;
    /* The agent only creates plain files here; anything else is left for a
     * human to look at rather than recursively deleted by root. */
    while ((entry = g_dir_read_name(d)) != NULL) {
        g_autofree char *p = g_build_filename(dir, entry, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_REGULAR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
            g_unlink(p);
    }
    g_rmdir(dir);
}

/* stopped: ask the agent to go (it also sees the domain stop by itself).
 * release: the last call for this domain: make sure it is gone. */
static void
ms_hook_stop_agent(const MsHookConfig *cfg, const char *uuid, gboolean final)
{
    g_autofree char *pidfile = ms_hook_pidfile(uuid);
    if (cfg->launch == MS_LAUNCH_SYSTEMD) {
        g_autoptr(GError) err = NULL;
        if (!ms_hook_systemd_unit("StopUnit", uuid, &err))
            g_debug("%s", err->message);
    } else {
        pid_t pid = ms_pidfile_read_live(pidfile);
        if (pid > 0)
            kill(pid, SIGTERM);
        if (final && pid > 0) {
            /* Bounded: libvirt is waiting. The agent's SIGTERM path is quick
             * (it only removes its files), so this is rarely more than a
             * few ms. */
            for (int i = 0; i < 150 && kill(pid, 0) == 0; i++)
                g_usleep(10 * 1000);
            if (kill(pid, 0) == 0)
                kill(pid, SIGKILL);
        }
    }
    if (final)
        ms_hook_remove_runtime_dir(uuid);
}

/* ---- incoming migration: op `migrate`, on the destination ----------------
 * libvirt runs `migrate` on the destination only, before `prepare`, with
 * the domain XML the source sent (live definition: policy and the agent's
 * <stats> element included). Nothing can be read from the source host
 * here: the XML is all we have (docs/migration.md). */

/* The sha256 of an image-store blob path (".../blobs/sha256-HEX.img", or a
 * sharing group's copy ".../groups/GROUP/sha256-HEX.img"), or NULL for any
 * other path. The store is content-addressed, so the path the source's QEMU
 * has open names the content. */
static char *
ms_hook_blob_digest(const char *path)
{
    g_autofree char *base = g_path_get_basename(path);
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *parent = g_path_get_basename(dir);
    g_autofree char *updir = g_path_get_dirname(dir);
    g_autofree char *grandparent = g_path_get_basename(updir);
    gboolean in_store = g_str_equal(parent, "blobs") || g_str_equal(grandparent, "groups");
    if (!in_store || !g_str_has_prefix(base, "sha256-") ||
        !g_str_has_suffix(base, ".img") || strlen(base) != 7 + 64 + 4)
        return NULL;
    for (const char *p = base + 7; p < base + 7 + 64; p++)
        if (!g_ascii_isxdigit(*p) || g_ascii_isupper(*p))
            return NULL;
    return g_strndup(base + 7, 64);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlXPathContext, xmlXPathFreeContext)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlXPathObject, xmlXPathFreeObject)

static xmlDoc *
ms_hook_migrate_parse(const char *xml, gsize len)
{
    /* no network, no entities: the XML is libvirt's own, but still input */
    return xmlReadMemory(xml, (int)MIN(len, (gsize)G_MAXINT), "domain.xml", NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

/* Digests of the image-store blobs the migrating domain has as <disk>s (the
 * blk images the source agent attached through libvirt). */
static GPtrArray *
ms_hook_migrate_disk_digests(xmlDoc *doc)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(xmlXPathContext) ctx = xmlXPathNewContext(doc);
    if (ctx == NULL)
        return out;
    g_autoptr(xmlXPathObject) obj =
        xmlXPathEvalExpression(BAD_CAST "/domain/devices/disk/source/@file", ctx);
    if (obj == NULL || obj->nodesetval == NULL)
        return out;
    for (int i = 0; i < obj->nodesetval->nodeNr; i++) {
        xmlChar *v = xmlNodeGetContent(obj->nodesetval->nodeTab[i]);
        char *d = v ? ms_hook_blob_digest((const char *)v) : NULL;
        if (d)
            g_ptr_array_add(out, d);
        xmlFree(v);
    }
    return out;
}

static gboolean
ms_hook_str_in(GPtrArray *a, const char *s)
{
    for (guint i = 0; i < a->len; i++)
        if (g_str_equal(g_ptr_array_index(a, i), s))
            return TRUE;
    return FALSE;
}

/* Every shared image the policy names must be in this host's store, and
 * the one the domain has attached must be the same content. */
static gboolean
ms_hook_migrate_check_images(const MsHookConfig *cfg, const MsPolicy *policy, xmlDoc *doc,
                             GError **error)
{
    const char *host = g_get_host_name();
    g_autoptr(GPtrArray) attached = doc ? ms_hook_migrate_disk_digests(doc) : g_ptr_array_new();
    g_autoptr(GPtrArray) here = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; policy->images && i < policy->images->len; i++) {
        const MsSharedImage *img = g_ptr_array_index(policy->images, i);
        g_autoptr(GError) local = NULL;
        g_autoptr(MsImageManifest) m = ms_image_store_lookup(cfg->image_store, img->name, NULL, &local);
        if (m == NULL) {
            g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND,
                        "<shared-image name='%s'>: not in the image store '%s' of host '%s': %s",
                        img->name, cfg->image_store, host, local->message);
            return FALSE;
        }
        g_ptr_array_add(here, g_strdup(m->sha256));
    }
    /* An attached blob that none of this host's images is: the source has
     * another content under the name (a rebuilt image). Which name it was
     * attached under is not in the XML (the disk's serial is a prefix), so
     * with one blk image the message names it; with several, all. */
    for (guint i = 0; i < attached->len; i++) {
        const char *d = g_ptr_array_index(attached, i);
        if (ms_hook_str_in(here, d))
            continue;
        g_autoptr(GString) names = g_string_new(NULL);
        for (guint j = 0; policy->images && j < policy->images->len; j++) {
            const MsSharedImage *img = g_ptr_array_index(policy->images, j);
            g_string_append_printf(names, "%s'%s' (sha256 %s)", names->len ? ", " : "", img->name,
                                   (const char *)g_ptr_array_index(here, j));
        }
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "shared image digest mismatch: the domain has sha256 %s attached, host '%s' has %s",
                    d, host, names->len ? names->str : "no such image");
        return FALSE;
    }
    return TRUE;
}

static xmlNode *ms_hook_metadata_element(xmlDoc *doc, const char *ns, const char *element);

/* The digest the domain maps as policy image INDEX, when the incoming XML
 * says it: a dax image's carried placement, or the one attached blob of a
 * domain with one blk image. NULL: not known (any build of the name will
 * do for the fetch; the checks after it compare what they can). */
static char *
ms_hook_migrate_wanted_digest(const MsPolicy *policy, guint index, xmlDoc *doc)
{
    const MsSharedImage *img = g_ptr_array_index(policy->images, index);
    if (img->mode == MS_IMAGE_DAX) {
        xmlNode *el = ms_hook_metadata_element(doc, MS_DAX_CARRY_NS, "migration");
        g_autoptr(GPtrArray) carried = el ? ms_dax_carry_parse(el, NULL) : NULL;
        for (guint j = 0; carried && j < carried->len; j++) {
            const MsDaxCarry *c = g_ptr_array_index(carried, j);
            if (c->index == index && g_str_equal(c->name, img->name))
                return g_strdup(c->sha256);
        }
        return NULL;
    }
    guint blk = 0;
    for (guint i = 0; i < policy->images->len; i++)
        blk += ((const MsSharedImage *)g_ptr_array_index(policy->images, i))->mode == MS_IMAGE_BLK;
    g_autoptr(GPtrArray) attached = ms_hook_migrate_disk_digests(doc);
    return blk == 1 && attached->len == 1 ? g_strdup(g_ptr_array_index(attached, 0)) : NULL;
}

/* <migration missing-images='fetch'/>: each image the policy names that
 * this host's store lacks is fetched from the peers memshare.conf trusts
 * ([migration] image-peers), in order, before the checks, which then pass
 * or refuse as they would have. Which hosts may be asked is the host's
 * word: the metadata only allows asking, and a name this host maps to
 * another digest is never replaced (ms_image_fetch), so a peer can add an
 * image here but never change one. libvirt does not tell the destination
 * which host the domain comes from, hence a list. What failed is kept in
 * NOTES for the refusal. */
static void
ms_hook_migrate_fetch(MsHookConfig *cfg, const MsPolicy *policy, xmlDoc *doc, GString *notes)
{
    const char *dom = policy->domain.name;
    g_autoptr(GError) cerr = NULL;
    g_autoptr(GKeyFile) kf = ms_config_load(&cerr);
    if (kf == NULL || !ms_hook_config_load_migration(cfg, kf, &cerr)) {
        g_string_append_printf(notes, "<migration missing-images='fetch'>: %s", cerr->message);
        return;
    }
    for (guint i = 0; policy->images && i < policy->images->len; i++) {
        const MsSharedImage *img = g_ptr_array_index(policy->images, i);
        g_autoptr(GError) local = NULL;
        g_autoptr(MsImageManifest) here = ms_image_store_lookup(cfg->image_store, img->name, NULL, &local);
        if (here != NULL || !g_error_matches(local, MS_ERROR, MS_ERROR_NOT_FOUND))
            continue;
        if (cfg->image_peers[0] == NULL) {
            g_string_append_printf(notes, "%s<migration missing-images='fetch'>: no [migration] image-peers in "
                                   "'%s' to fetch '%s' from", notes->len ? "; " : "", ms_config_path(), img->name);
            continue;
        }
        g_autofree char *sha = doc ? ms_hook_migrate_wanted_digest(policy, i, doc) : NULL;
        for (guint p = 0; cfg->image_peers[p]; p++) {
            g_autoptr(GError) ferr = NULL;
            gboolean had = FALSE;
            gint64 t0 = g_get_monotonic_time();
            g_autoptr(MsImageManifest) m = ms_image_fetch(cfg->image_store, img->name, sha, cfg->image_peers[p],
                                                          cfg->image_rsh, cfg->image_remote, cfg->fetch_timeout_s,
                                                          &had, &ferr);
            if (m != NULL) {
                ms_hook_msg(dom, "domain '%s': image '%s' sha256 %s fetched from %s for the incoming migration "
                            "(%" G_GUINT64_FORMAT " bytes in %.1f s, verified)", dom, m->name, m->sha256,
                            cfg->image_peers[p], m->size, (g_get_monotonic_time() - t0) / 1e6);
                break;
            }
            g_string_append_printf(notes, "%s%s", notes->len ? "; " : "", ferr->message);
        }
    }
}

/* The one <metadata> child ELEMENT in namespace NS of the incoming XML, or
 * NULL (none, or several: libvirt keeps one per namespace). */
static xmlNode *
ms_hook_metadata_element(xmlDoc *doc, const char *ns, const char *element)
{
    if (doc == NULL)
        return NULL;
    g_autoptr(xmlXPathContext) ctx = xmlXPathNewContext(doc);
    if (ctx == NULL || xmlXPathRegisterNs(ctx, BAD_CAST "m", BAD_CAST ns) != 0)
        return NULL;
    g_autofree char *path = g_strdup_printf("/domain/metadata/m:%s", element);
    g_autoptr(xmlXPathObject) obj = xmlXPathEvalExpression(BAD_CAST path, ctx);
    if (obj == NULL || obj->nodesetval == NULL || obj->nodesetval->nodeNr != 1)
        return NULL;
    return obj->nodesetval->nodeTab[0];
}

/* The incoming XML's <currentMemory> is the balloon's size on the source,
 * not the size the domain booted with, so `prepare` must not record it as
 * the base: the source agent's carried <balloon base=> (bytes) is the boot
 * size. Written here, at `migrate`, with a source= line that `prepare`
 * honours instead of overwriting. Bounded by <memory>: the value comes from
 * metadata a guest-side user cannot write, but a wrong one must not make a
 * base above the balloon's ceiling. */
static void
ms_hook_migrate_boot_memory(const MsPolicy *policy, GKeyFile *stats, const char *dir)
{
    g_autofree char *v = g_key_file_get_string(stats, MS_STATUS_BALLOON, MS_STATUS_BALLOON_BASE, NULL);
    guint64 base = 0;
    if (v == NULL || !ms_parse_u64(v, "base", &base, NULL) || base == 0 ||
        base / 1024 > policy->domain.memory_kib) {
        if (v != NULL)
            ms_hook_msg(policy->domain.name, "domain '%s': carried balloon base '%s' is not a size within <memory>; "
                        "the destination takes <currentMemory> as the base", policy->domain.name, v);
        return;
    }
    g_autofree char *path = g_build_filename(dir, "boot-memory", NULL);
    g_autofree char *text = g_strdup_printf("memory=%" G_GUINT64_FORMAT "\ncurrent-memory=%" G_GUINT64_FORMAT
                                            "\nsource=migration\n",
                                            policy->domain.memory_kib, base / 1024);
    g_autoptr(GError) error = NULL;
    if (!ms_file_write_atomic(path, text, -1, 0644, &error))
        ms_hook_msg(policy->domain.name, "%s", error->message);
}

/* The source agent's last <stats> element (live metadata, so it travels
 * with the XML) seeds this host's history file: `memsharectl plot` and
 * whoever reads the history see the figures go on across the migration
 * instead of starting from nothing. The destination agent appends to it.
 * Attribute groups are the domstats groups: the field table maps them back
 * to the status keys the history and the boot-memory seed read. */
static void
ms_hook_migrate_handover(const MsPolicy *policy, xmlDoc *doc)
{
    xmlNode *stats = ms_hook_metadata_element(doc, MS_EXPORT_STATS_NS, "stats");
    if (stats == NULL)
        return;   /* no agent ran long enough on the source: nothing to carry */
    g_autoptr(GKeyFile) kf = g_key_file_new();
    for (xmlNode *g = stats->children; g; g = g->next) {
        if (g->type != XML_ELEMENT_NODE)
            continue;
        for (xmlAttr *a = g->properties; a; a = a->next) {
            xmlChar *v = xmlNodeGetContent((xmlNode *)a);
            ms_export_unexport_value(kf, (const char *)g->name, (const char *)a->name,
                                     v ? (const char *)v : "");
            xmlFree(v);
        }
    }
    xmlChar *t = xmlGetProp(stats, BAD_CAST "time");
    gint64 when = t ? g_ascii_strtoll((const char *)t, NULL, 10) : 0;
    xmlFree(t);
    if (when <= 0)
        return;

    g_autofree char *dir = ms_domain_runtime_dir(policy->domain.uuid);
    g_autoptr(GError) error = NULL;
    if (g_mkdir_with_parents(dir, 0750) < 0) {
        ms_hook_msg(policy->domain.name, "cannot create '%s': %s", dir, g_strerror(errno));
        return;
    }
    ms_hook_migrate_boot_memory(policy, kf, dir);
    g_autofree char *path = g_build_filename(dir, "history", NULL);
    g_autofree char *sample = ms_history_format_line(kf, when);
    g_autofree char *line = g_strdup_printf("# migrated in to host '%s': the source's last sample\n%s",
                                            g_get_host_name(), sample);
    if (!ms_history_append(path, line, MS_HISTORY_DEFAULT_LIMIT, &error))
        ms_hook_msg(policy->domain.name, "domain '%s': cannot carry its history over: %s",
                    policy->domain.name, error->message);
}

/* A dax image the source agent attached lives in the source QEMU only
 * (QMP hot-plug, outside libvirt's XML), so the agent publishes where it
 * put it (the <migration> metadata element, formats/ms-dax-carry.h). For
 * each, the incoming QEMU gets the same backend and device on its command
 * line (ARGS: option, value, ...): same ids, root port, devfn and guest
 * address, so the device's migration state loads and the guest keeps its
 * mount. The file is this host's own store blob of the carried digest:
 * nothing from the metadata becomes a path. Without a placement the
 * destination would silently lack the memory the guest maps (observed:
 * QEMU completes such a migration), so that is refused. */
static gboolean
ms_hook_migrate_dax(const MsHookConfig *cfg, const MsPolicy *policy, xmlDoc *doc, GPtrArray *args,
                    GError **error)
{
    const char *host = g_get_host_name();
    g_autoptr(GPtrArray) carried = NULL;
    g_autofree char *group = NULL;
    for (guint i = 0; policy->images && i < policy->images->len; i++) {
        const MsSharedImage *img = g_ptr_array_index(policy->images, i);
        if (img->mode != MS_IMAGE_DAX)
            continue;
        if (carried == NULL) {
            xmlNode *el = ms_hook_metadata_element(doc, MS_DAX_CARRY_NS, "migration");
            carried = el ? ms_dax_carry_parse(el, error) : g_ptr_array_new();
            if (carried == NULL)
                return FALSE;
        }
        const MsDaxCarry *c = NULL;
        for (guint j = 0; j < carried->len && c == NULL; j++)
            if (((const MsDaxCarry *)g_ptr_array_index(carried, j))->index == i)
                c = g_ptr_array_index(carried, j);
        if (c == NULL || !g_str_equal(c->name, img->name)) {
            g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND,
                        "<shared-image name='%s' mode='dax'>: the source published no placement for it (its agent "
                        "has not attached it yet, or could not); host '%s' cannot give the incoming QEMU the "
                        "device the guest maps", img->name, host);
            return FALSE;
        }
        /* The domain's group's own copy on this host (made now if it is the
         * group's first use here: `prepare`, which makes copies too, runs
         * after this op), as at a start: the group rule holds across hosts */
        if (group == NULL && (group = ms_hook_domain_group(policy, error)) == NULL)
            return FALSE;
        g_autofree char *blob = NULL;
        g_autoptr(GError) local = NULL;
        g_autoptr(MsImageManifest) m =
            ms_image_store_lookup_group(cfg->image_store, img->name, group, TRUE, &blob, NULL, &local);
        if (m == NULL) {
            g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND,
                        "<shared-image name='%s'>: not in the image store '%s' of host '%s' (sharing group '%s'): %s",
                        img->name, cfg->image_store, host, group, local->message);
            return FALSE;
        }
        if (!g_str_equal(m->sha256, c->sha256) || m->size != c->size) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "shared image digest mismatch: the domain maps sha256 %s (%" G_GUINT64_FORMAT " bytes) as "
                        "'%s', host '%s' has sha256 %s (%" G_GUINT64_FORMAT " bytes)",
                        c->sha256, c->size, img->name, host, m->sha256, m->size);
            return FALSE;
        }
        char *object = NULL, *device = NULL;
        ms_dax_carry_qemu_args(c, blob, &object, &device);
        g_ptr_array_add(args, g_strdup("-object"));
        g_ptr_array_add(args, object);
        g_ptr_array_add(args, g_strdup("-device"));
        g_ptr_array_add(args, device);
    }
    return TRUE;
}

/* libvirt takes a non-empty stdout of the `migrate` op as the domain XML
 * for the incoming QEMU (it checks ABI stability against the original). */
static gboolean
ms_hook_migrate_print_xml(xmlDoc *doc, GPtrArray *args, GError **error)
{
    if (!ms_dax_carry_apply(doc, args, error))
        return FALSE;
    xmlChar *buf = NULL;
    int len = 0;
    xmlDocDumpMemory(doc, &buf, &len);
    gboolean ok = buf != NULL && fwrite(buf, 1, (size_t)len, stdout) == (size_t)len && fflush(stdout) == 0;
    xmlFree(buf);
    if (!ok)
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot write the domain XML to libvirt: %s",
                    g_strerror(errno));
    return ok;
}

/* op `migrate`: refuse (exit 1, libvirt aborts the migration and the
 * domain keeps running on the source) when the images are not here; give
 * the incoming QEMU the dax images' backends and devices (stdout). */
static int
ms_hook_migrate_incoming(MsHookConfig *cfg, const MsPolicy *policy, MsOnError on_error,
                         const char *xml, gsize len)
{
    g_autoptr(xmlDoc) doc = ms_hook_migrate_parse(xml, len);
    g_autoptr(GError) error = NULL;
    g_autoptr(GString) fetched = g_string_new(NULL);
    if (policy->migration.fetch_missing_images)
        ms_hook_migrate_fetch(cfg, policy, doc, fetched);
    if (!ms_hook_migrate_check_images(cfg, policy, doc, &error)) {
        if (fetched->len) {
            /* what is missing first, then why fetching it did not help */
            GError *both = g_error_new(error->domain, error->code, "%s; %s", error->message, fetched->str);
            g_clear_error(&error);
            error = both;
        }
        if (on_error == MS_ON_ERROR_REFUSE) {
            ms_hook_msg(policy->domain.name, "domain '%s': migration refused: %s", policy->domain.name,
                        error->message);
            return 1;
        }
        ms_hook_msg(policy->domain.name, "domain '%s': %s; migrating anyway (on-error='ignore')",
                    policy->domain.name, error->message);
    }
    /* a dax image cannot be "ignored": the guest has it mounted, and a
     * destination QEMU without it gives the guest unassigned memory */
    g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func(g_free);
    if (!ms_hook_migrate_dax(cfg, policy, doc, args, &error)) {
        ms_hook_msg(policy->domain.name, "domain '%s': migration refused: %s", policy->domain.name,
                    error->message);
        return 1;
    }
    ms_hook_migrate_handover(policy, doc);
    if (args->len > 0 && !ms_hook_migrate_print_xml(doc, args, &error)) {
        ms_hook_msg(policy->domain.name, "domain '%s': migration refused: %s", policy->domain.name,
                    error->message);
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DOMAIN OPERATION [SUB-OPERATION [EXTRA]]\n"
                        "This is a libvirt qemu hook; see memshare-hook(8).\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    const char *op = argv[2];

    g_autoptr(GString) xml = g_string_new(NULL);
    g_autoptr(GError) error = NULL;
    if (!ms_hook_read_stdin(xml, &error)) {
        ms_hook_msg(name, "domain '%s': %s", name, error->message);
        /* Never block an unrelated domain because of our own trouble. */
        return 0;
    }

    /* Fast path: the namespace URI is the only way in; a plain substring test
     * keeps libxml2 out of every other domain's start. */
    if (strstr(xml->str, MS_POLICY_NAMESPACE) == NULL)
        return 0;

    gboolean is_prepare = g_str_equal(op, "prepare");
    gboolean is_start = g_str_equal(op, "started") || g_str_equal(op, "reconnect") ||
                        g_str_equal(op, "attach");
    gboolean is_stopped = g_str_equal(op, "stopped");
    gboolean is_release = g_str_equal(op, "release");
    gboolean is_migrate = g_str_equal(op, "migrate");
    if (!is_prepare && !is_start && !is_stopped && !is_release && !is_migrate)
        return 0;

    MsHookConfig cfg = { 0 };
    if (!ms_hook_config_load(&cfg, &error)) {
        ms_hook_msg(name, "%s", error->message);
        ms_hook_config_clear(&cfg);
        return is_prepare ? 1 : 0;
    }

    g_autoptr(MsPolicy) policy = NULL;
    MsOnError on_error = MS_ON_ERROR_REFUSE;
    MsPolicyCheckFlags flags = is_prepare ? MS_POLICY_CHECK_IMAGES : MS_POLICY_CHECK_NONE;
    int ret = 0;
    if (!ms_policy_parse_domain_xml(xml->str, xml->len, flags, cfg.image_store, &policy,
                                    &on_error, &error)) {
        if (is_prepare && on_error == MS_ON_ERROR_REFUSE) {
            ms_hook_msg(name, "%s (set on-error='ignore' in the policy to start without memshare)",
                        error->message);
            ret = 1;
        } else if (is_prepare) {
            ms_hook_msg(name, "%s; starting without memshare (on-error='ignore')", error->message);
        }
        ms_hook_config_clear(&cfg);
        return ret;
    }
    if (policy == NULL) {
        ms_hook_config_clear(&cfg);
        return 0;
    }
    if (!ms_uuid_is_valid(policy->domain.uuid)) {
        ms_hook_msg(name, "domain '%s': <uuid> '%s' is not a valid UUID", name,
                    policy->domain.uuid ? policy->domain.uuid : "");
        ms_hook_config_clear(&cfg);
        return is_prepare ? 1 : 0;
    }

    if (is_migrate) {
        ret = ms_hook_migrate_incoming(&cfg, policy, on_error, xml->str, xml->len);
        ms_hook_config_clear(&cfg);
        return ret;
    }
    if (is_prepare && !ms_hook_verify_images(&cfg, policy, &error)) {
        if (on_error == MS_ON_ERROR_REFUSE) {
            ms_hook_msg(name, "domain '%s': %s (set on-error='ignore' in the policy to start without memshare)",
                        name, error->message);
            ms_hook_config_clear(&cfg);
            return 1;
        }
        ms_hook_msg(name, "domain '%s': %s; starting anyway (on-error='ignore'), the image is not attached",
                    name, error->message);
        g_clear_error(&error);
    }
    if (is_prepare && !ms_hook_check_sharing(policy, &error)) {
        ms_hook_msg(name, "%s", error->message);
        ms_hook_config_clear(&cfg);
        return 1;
    }
    if (is_prepare)
        ms_hook_record_boot_memory(policy);
    if (is_start) {
        gboolean reconnect = !g_str_equal(op, "started");
        if (reconnect && ms_hook_agent_running(policy->domain.uuid)) {
            /* libvirtd restarted; the agent rides it out on its own. */
        } else if (!ms_hook_launch(&cfg, policy, &error)) {
            /* The domain is already running: refusing now would only kill
             * a healthy guest. Report and let the domain run. */
            ms_hook_msg(name, "domain '%s': cannot start its agent: %s", name, error->message);
        }
    } else if (is_stopped || is_release) {
        ms_hook_stop_agent(&cfg, policy->domain.uuid, is_release);
    }
    ms_hook_config_clear(&cfg);
    return ret;
}
