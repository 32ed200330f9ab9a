/* hooks/memshare-hook.c: the libvirt qemu hook. libvirtd runs it as
 *   memshare-hook DOMAIN OPERATION SUB-OPERATION EXTRA
 * with the domain XML on stdin, for every qemu domain, synchronously: a slow
 * hook slows every `virsh start` on the host. So it does as little as it can:
 *   - domains without a memshare policy: read stdin, exit 0 (zero effect);
 *   - prepare: validate the policy; an invalid one aborts the start (exit 1,
 *     libvirt shows our stderr) unless the policy says on-error="ignore";
 *   - started, reconnect, attach: launch the domain's agent without waiting
 *     for it (systemd template unit where systemd is PID 1, a detached
 *     process otherwise);
 *   - stopped: ask the agent to stop; release: make sure it is gone and
 *     remove the domain's runtime directory.
 * It never calls back into libvirt (libvirtd is waiting on us and holds the
 * domain's lock: a call back would deadlock). */
#include "ms-config.h"
#include "ms-error.h"
#include "ms-image-store.h"
#include "ms-policy.h"
#include "ms-util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
} MsHookConfig;

static void
ms_hook_config_clear(MsHookConfig *c)
{
    g_free(c->agent_path);
    g_free(c->log_dir);
    g_free(c->connect_uri);
    g_free(c->image_store);
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
    for (guint i = 0; policy->images && i < policy->images->len; i++) {
        const MsSharedImage *img = g_ptr_array_index(policy->images, i);
        if (!ms_image_store_verify_cached(cfg->image_store, img->name, stamps, error)) {
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
    if (!is_prepare && !is_start && !is_stopped && !is_release)
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
