/* qmp-plugin/memshare-agent.c: command line of the per-domain agent
 * (memshare-agent(8)). The hook starts it as
 *   memshare-agent --uuid UUID --name NAME --connect URI [--qemu-pid PID]
 * and systemd as memshare-agent --uuid %i (the URI then comes from
 * [agent] connect= of memshare.conf, the same setting the hook reads);
 * tests drive a bare QEMU with
 *   memshare-agent --uuid UUID --qmp-socket PATH [--domain-xml FILE].
 * With --respawn (what the hook's detached launcher uses where systemd's
 * Restart=on-failure is not there) the process supervises the agent: an
 * agent that dies of a signal or crashes is started again while its domain
 * runs, a clean exit ends both. */
#include "ms-config.h"
#include "ms-agent.h"
#include "ms-log.h"
#include "ms-util.h"

#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* Crash-looping is worse than no agent: at most this many restarts per
 * minute, then the supervisor gives up and says so. */
#define MS_RESPAWN_MAX 5
#define MS_RESPAWN_WINDOW_US (60 * G_USEC_PER_SEC)

/* The same least privilege as the systemd unit's CapabilityBoundingSet and
 * NoNewPrivileges, applied by the agent itself so that the detached launch
 * (no systemd) gets it too: reading QEMU's pagemap with PFNs and
 * /proc/kpageflags needs CAP_SYS_ADMIN, QEMU's /proc entries under another
 * uid CAP_SYS_PTRACE, and directory search CAP_DAC_READ_SEARCH. Everything
 * else (DAC override, kill, chown, net admin...) is dropped for good. */
static const int ms_agent_caps[] = { CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH };

static gboolean
ms_agent_drop_privileges(GError **error)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "PR_SET_NO_NEW_PRIVS: %s",
                    g_strerror(errno));
        return FALSE;
    }
    if (geteuid() != 0)
        return TRUE; /* an unprivileged agent (tests) has nothing to drop */
    guint64 keep = 0;
    for (gsize i = 0; i < G_N_ELEMENTS(ms_agent_caps); i++)
        keep |= G_GUINT64_CONSTANT(1) << ms_agent_caps[i];
    for (int cap = 0; cap <= 63; cap++) {
        if (keep & (G_GUINT64_CONSTANT(1) << cap))
            continue;
        /* EINVAL: beyond the kernel's last capability */
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM) {
            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "PR_CAPBSET_DROP %d: %s", cap,
                        g_strerror(errno));
            return FALSE;
        }
    }
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2] = { { 0 } };
    if (syscall(SYS_capget, &hdr, data) < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "capget: %s", g_strerror(errno));
        return FALSE;
    }
    guint64 have = ((guint64)data[1].permitted << 32) | data[0].permitted;
    guint64 want = have & keep;
    data[0].effective = data[0].permitted = (guint32)want;
    data[1].effective = data[1].permitted = (guint32)(want >> 32);
    data[0].inheritable = data[1].inheritable = 0;
    if (syscall(SYS_capset, &hdr, data) < 0) {
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno), "capset: %s", g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

/* Which libvirt the agent talks to: --connect, else [agent] connect= of
 * memshare.conf (the systemd unit passes only --uuid, so this is how its
 * agents follow the setting the hook's detached agents get on their command
 * line), else qemu:///system. A config that cannot be read is an error, not
 * a silent fall-back to another libvirt. */
static gboolean
ms_agent_resolve_connect(char **uri, char **origin, GError **error)
{
    if (*uri != NULL) {
        *origin = g_strdup("--connect");
        return TRUE;
    }
    g_autoptr(GKeyFile) conf = ms_config_load(error);
    if (conf == NULL)
        return FALSE;
    *uri = ms_config_get_string(conf, "agent", "connect", NULL);
    if (*uri != NULL)
        *origin = g_strdup_printf("[agent] connect= in %s", ms_config_path());
    return TRUE;
}

static volatile sig_atomic_t ms_supervisor_stop;
static volatile pid_t ms_supervised_child;

static void
ms_supervisor_on_term(int sig)
{
    ms_supervisor_stop = 1;
    if (ms_supervised_child > 0)
        kill(ms_supervised_child, sig);
}

/* Returns -1 in the child (which then runs the agent), else the exit
 * status the supervisor should end with. */
static int
ms_supervise(const char *uuid, pid_t qemu_pid)
{
    struct sigaction sa = { .sa_handler = ms_supervisor_on_term };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    gint64 starts[MS_RESPAWN_MAX + 1] = { 0 };
    guint n = 0;
    for (;;) {
        pid_t child = fork();
        if (child < 0) {
            g_critical("supervisor: fork: %s", g_strerror(errno));
            return 1;
        }
        if (child == 0) {
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            return -1;
        }
        ms_supervised_child = child;
        starts[n++ % G_N_ELEMENTS(starts)] = g_get_monotonic_time();
        int status = 0;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
            ;
        ms_supervised_child = 0;
        if (ms_supervisor_stop)
            return 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) <= 1)
            return WEXITSTATUS(status); /* a clean stop, or nothing to attach to */
        if (qemu_pid > 0 && kill(qemu_pid, 0) < 0 && errno == ESRCH)
            return 0;                   /* the domain is gone: nothing to serve */
        if (n > MS_RESPAWN_MAX &&
            g_get_monotonic_time() - starts[n % G_N_ELEMENTS(starts)] < MS_RESPAWN_WINDOW_US) {
            g_critical("supervisor: agent for %s died %d times within a minute; giving up", uuid,
                       MS_RESPAWN_MAX + 1);
            return 1;
        }
        if (WIFSIGNALED(status))
            g_warning("supervisor: agent died of signal %d (%s); starting it again", WTERMSIG(status),
                      strsignal(WTERMSIG(status)));
        else
            g_warning("supervisor: agent exited with status %d; starting it again", WEXITSTATUS(status));
        g_usleep(G_USEC_PER_SEC / 2);
    }
}

int
main(int argc, char **argv)
{
    g_autofree char *uuid = NULL, *name = NULL, *connect = NULL, *qmp_socket = NULL;
    g_autofree char *domain_xml = NULL, *connect_origin = NULL;
    gint64 qemu_pid = 0;
    gint reconnect_timeout = 60;
    gboolean once = FALSE, verbose = FALSE, version = FALSE, respawn = FALSE;
    GOptionEntry entries[] = {
        { "uuid", 'u', 0, G_OPTION_ARG_STRING, &uuid, "UUID of the domain (required)", "UUID" },
        { "name", 'n', 0, G_OPTION_ARG_STRING, &name, "Domain name, for messages", "NAME" },
        { "connect", 'c', 0, G_OPTION_ARG_STRING, &connect,
          "libvirt URI (default: [agent] connect= of memshare.conf, else qemu:///system)", "URI" },
        { "qmp-socket", 0, 0, G_OPTION_ARG_FILENAME, &qmp_socket,
          "Talk to QEMU over this QMP socket instead of libvirt", "PATH" },
        { "domain-xml", 0, 0, G_OPTION_ARG_FILENAME, &domain_xml,
          "With --qmp-socket: domain XML holding the policy", "FILE" },
        { "qemu-pid", 'p', 0, G_OPTION_ARG_INT64, &qemu_pid, "PID of the QEMU process", "PID" },
        { "reconnect-timeout", 0, 0, G_OPTION_ARG_INT, &reconnect_timeout,
          "Seconds to wait for libvirtd to come back (default 60)", "S" },
        { "once", 0, 0, G_OPTION_ARG_NONE, &once, "Attach, report, exit", NULL },
        { "respawn", 0, 0, G_OPTION_ARG_NONE, &respawn,
          "Supervise the agent: start it again if it dies while the domain runs", NULL },
        { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Debug messages", NULL },
        { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version", NULL },
        { NULL }
    };
    g_autoptr(GOptionContext) octx = g_option_context_new("- memshare per-domain agent");
    g_option_context_add_main_entries(octx, entries, NULL);
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(octx, &argc, &argv, &error)) {
        fprintf(stderr, "memshare-agent: %s\n", error->message);
        return 2;
    }
    if (version) {
        printf("memshare-agent %s\n", MS_VERSION);
        return 0;
    }
    if (uuid == NULL) {
        fprintf(stderr, "memshare-agent: --uuid is required\n");
        return 2;
    }
    if (qemu_pid < 0 || qemu_pid > G_MAXINT32 || reconnect_timeout < 1) {
        fprintf(stderr, "memshare-agent: --qemu-pid or --reconnect-timeout out of range\n");
        return 2;
    }
    ms_log_init("memshare-agent", name ? name : uuid, verbose);
    if (!ms_agent_drop_privileges(&error)) {
        g_critical("cannot drop privileges: %s", error->message);
        return 1;
    }
    if (qmp_socket == NULL && !ms_agent_resolve_connect(&connect, &connect_origin, &error)) {
        g_critical("cannot attach: %s", error->message);
        return 1;
    }
    if (respawn && !once) {
        int rc = ms_supervise(uuid, (pid_t)qemu_pid);
        if (rc >= 0)
            return rc;
    }

    MsAgentOptions opt = {
        .uuid = uuid,
        .name = name,
        .connect_uri = connect,
        .connect_origin = connect_origin,
        .qmp_socket = qmp_socket,
        .domain_xml = domain_xml,
        .qemu_pid = (pid_t)qemu_pid,
        .once = once,
        .reconnect_timeout_s = (guint)reconnect_timeout,
    };
    g_autoptr(MsAgent) agent = ms_agent_new(&opt);
    MsAgentStartResult started = MS_AGENT_START_ATTACHED;
    if (!ms_agent_start(agent, &started, &error)) {
        g_critical("cannot attach: %s", error->message);
        return 1;
    }
    if (started == MS_AGENT_START_ALREADY_RUNNING) {
        g_message("another agent already serves this domain; exiting");
        return 0;
    }
    if (started == MS_AGENT_START_NOTHING_TO_SERVE) {
        g_message("agent exiting (status 0): nothing to serve");
        return 0;
    }
    int status = ms_agent_run(agent);
    g_message("agent exiting (status %d)", status);
    return status;
}
