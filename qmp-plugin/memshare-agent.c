/* qmp-plugin/memshare-agent.c: command line of the per-domain agent
 * (memshare-agent(8)). The hook starts it as
 *   memshare-agent --uuid UUID --name NAME --connect URI [--qemu-pid PID]
 * and systemd as memshare-agent --uuid %i; tests drive a bare QEMU with
 *   memshare-agent --uuid UUID --qmp-socket PATH [--domain-xml FILE]. */
#include "ms-config.h"
#include "ms-agent.h"
#include "ms-log.h"

#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv)
{
    g_autofree char *uuid = NULL, *name = NULL, *connect = NULL, *qmp_socket = NULL;
    g_autofree char *domain_xml = NULL;
    gint64 qemu_pid = 0;
    gint reconnect_timeout = 60;
    gboolean once = FALSE, verbose = FALSE, version = FALSE;
    GOptionEntry entries[] = {
        { "uuid", 'u', 0, G_OPTION_ARG_STRING, &uuid, "UUID of the domain (required)", "UUID" },
        { "name", 'n', 0, G_OPTION_ARG_STRING, &name, "Domain name, for messages", "NAME" },
        { "connect", 'c', 0, G_OPTION_ARG_STRING, &connect, "libvirt URI (default qemu:///system)", "URI" },
        { "qmp-socket", 0, 0, G_OPTION_ARG_FILENAME, &qmp_socket,
          "Talk to QEMU over this QMP socket instead of libvirt", "PATH" },
        { "domain-xml", 0, 0, G_OPTION_ARG_FILENAME, &domain_xml,
          "With --qmp-socket: domain XML holding the policy", "FILE" },
        { "qemu-pid", 'p', 0, G_OPTION_ARG_INT64, &qemu_pid, "PID of the QEMU process", "PID" },
        { "reconnect-timeout", 0, 0, G_OPTION_ARG_INT, &reconnect_timeout,
          "Seconds to wait for libvirtd to come back (default 60)", "S" },
        { "once", 0, 0, G_OPTION_ARG_NONE, &once, "Attach, report, exit", NULL },
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

    MsAgentOptions opt = {
        .uuid = uuid,
        .name = name,
        .connect_uri = connect,
        .qmp_socket = qmp_socket,
        .domain_xml = domain_xml,
        .qemu_pid = (pid_t)qemu_pid,
        .once = once,
        .reconnect_timeout_s = (guint)reconnect_timeout,
    };
    g_autoptr(MsAgent) agent = ms_agent_new(&opt);
    gboolean already = FALSE;
    if (!ms_agent_start(agent, &already, &error)) {
        g_critical("cannot attach: %s", error->message);
        return 1;
    }
    if (already) {
        g_message("another agent already serves this domain; exiting");
        return 0;
    }
    int status = ms_agent_run(agent);
    g_message("agent exiting (status %d)", status);
    return status;
}
