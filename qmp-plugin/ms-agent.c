/* qmp-plugin/ms-agent.c: the agent's lifecycle. See ms-agent.h.
 *
 * Stop conditions, each enough on its own so a missed signal never leaves an
 * agent behind:
 *   - the QEMU process exits (pidfd becomes readable);
 *   - libvirt reports the domain stopped (lifecycle event);
 *   - the QMP monitor closes (direct transport);
 *   - libvirtd stays away longer than reconnect_timeout_s;
 *   - SIGTERM / SIGINT (the hook at `stopped`, systemd).
 * Runtime files live in RUNSTATEDIR/memshare/domains/UUID/ and are removed
 * on every clean exit; the hook removes them at `release` after a crash.
 * The libvirt connection, its events and the reconnect are ms-libvirt.c's;
 * this file says what they mean for the domain. */
#include "ms-config.h"
#include "ms-status-keys.h"
#include "ms-agent.h"
#include "ms-error.h"
#include "ms-log.h"
#include "ms-module.h"
#include "ms-balloon.h"
#include "ms-export.h"
#include "ms-history.h"
#include "ms-images.h"
#include "ms-kcompat.h"
#include "ms-libvirt.h"
#include "ms-ksmtune.h"
#include "ms-qmp.h"
#include "ms-sharing.h"
#include "ms-tracking.h"
#include "ms-util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <unistd.h>

struct _MsAgent {
    MsAgentOptions opt;
    GMainContext *context;
    GMainLoop *loop;
    int exit_status;

    char *runtime_dir;
    char *pidfile;
    int lock_fd;

    MsPolicy *policy;
    /* The policy was removed from the running domain: the modules are
     * stopped and the agent idles until a policy is set again. */
    gboolean policy_removed;
    char *domain_name;

    MsLibvirt *libvirt;    /* NULL for a bare QEMU (--qmp-socket) */

    MsQmpClient *qmp;
    char *qemu_version;

    pid_t qemu_pid;
    int qemu_pidfd;
    guint qemu_watch;

    guint tick_source;
    guint sigterm_source;
    guint sigint_source;
    guint sigusr1_source;

    /* The balloon's actual size (its one owner: ms-balloon-size.c). */
    MsBalloonSize balloon;
    guint64 ticks;

    MsAgentEnv env;
    GKeyFile *status;      /* modules write their groups here */
    GPtrArray *modules;    /* MsAgentModuleSlot* */
    GHashTable *warned;    /* what -> last write error logged */
    MsExportConfig export; /* [stats]: Prometheus textfile, live metadata */
    MsSharingDefault sharing_default; /* [sharing] default-group */
    char *sharing_error;   /* last group resolution error logged */
    gboolean domain_gone;  /* QEMU exited or libvirt reported the domain stopped */
    gboolean own_boot_memory; /* no hook had recorded it: this agent wrote boot-memory */
};

/* The feature modules, in the order they tick. */
static const MsAgentModule *const ms_agent_module_table[] = {
    &ms_tracking_module,
    &ms_balloon_module,
    &ms_images_module,
    &ms_ksmtune_module,
    NULL,
};

typedef struct {
    const MsAgentModule *module;
    gpointer self;
    guint source;
    MsAgent *agent;
} MsAgentModuleSlot;

static void ms_agent_quit(MsAgent *agent, int status, const char *why);

/* The domain while libvirt is connected; NULL for a bare QEMU and while
 * libvirtd is away. */
static virDomainPtr
ms_agent_domain(MsAgent *agent)
{
    return agent->libvirt ? ms_libvirt_get_domain(agent->libvirt) : NULL;
}
static void ms_agent_stop_modules(MsAgent *agent);
static void ms_agent_start_modules(MsAgent *agent);

MsAgent *
ms_agent_new(const MsAgentOptions *options)
{
    MsAgent *agent = g_new0(MsAgent, 1);
    agent->opt.uuid = g_ascii_strdown(options->uuid, -1);
    agent->opt.name = g_strdup(options->name);
    agent->opt.connect_uri = g_strdup(options->connect_uri ? options->connect_uri : "qemu:///system");
    agent->opt.connect_origin = g_strdup(options->connect_uri && options->connect_origin
                                             ? options->connect_origin : "the default");
    agent->opt.qmp_socket = g_strdup(options->qmp_socket);
    agent->opt.domain_xml = g_strdup(options->domain_xml);
    agent->opt.qemu_pid = options->qemu_pid;
    agent->opt.once = options->once;
    agent->opt.reconnect_timeout_s = options->reconnect_timeout_s ? options->reconnect_timeout_s : 60;
    agent->context = g_main_context_ref_thread_default();
    agent->loop = g_main_loop_new(agent->context, FALSE);
    agent->lock_fd = -1;
    agent->qemu_pidfd = -1;
    agent->domain_name = g_strdup(options->name ? options->name : options->uuid);
    agent->status = g_key_file_new();
    agent->modules = g_ptr_array_new();
    agent->warned = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    return agent;
}

/* Removes what the agent wrote. boot-memory and sharing are the hook's
 * records from `prepare` and outlive any one agent: an agent stopped while
 * the domain runs (systemctl restart of its unit, SIGTERM to a detached one)
 * must leave the balloon's base for its successor, and the domain still
 * merges in its sharing group (the KSM-group rule reads that record); the
 * hook's `release` removes the directory with them. A boot-memory this
 * agent wrote itself (bare QEMU, no hook) is its own and goes with it. */
static void
ms_agent_remove_runtime_files(MsAgent *agent)
{
    if (agent->runtime_dir == NULL || agent->lock_fd < 0)
        return;
    g_autoptr(GDir) d = g_dir_open(agent->runtime_dir, 0, NULL);
    const char *entry;
    while (d && (entry = g_dir_read_name(d)) != NULL) {
        /* ...except when the domain is gone and its policy was removed: the
         * hook's `release` then sees a domain without the memshare
         * namespace and returns at once, so nobody else would clean up */
        gboolean hooks_own = (g_str_equal(entry, "boot-memory") && !agent->own_boot_memory) ||
                             g_str_equal(entry, "sharing");
        if (hooks_own && !(agent->domain_gone && agent->policy_removed))
            continue;
        g_autofree char *p = g_build_filename(agent->runtime_dir, entry, NULL);
        g_unlink(p);
    }
    g_rmdir(agent->runtime_dir);
}

static void
ms_agent_stop_modules(MsAgent *agent)
{
    for (guint i = 0; i < agent->modules->len; i++) {
        MsAgentModuleSlot *slot = g_ptr_array_index(agent->modules, i);
        g_clear_handle_id(&slot->source, g_source_remove);
        if (slot->module->stop && agent->qmp)
            slot->module->stop(slot->self, &agent->env);
        slot->module->free(slot->self);
        g_free(slot);
    }
    g_ptr_array_set_size(agent->modules, 0);
}

void
ms_agent_free(MsAgent *agent)
{
    if (agent == NULL)
        return;
    g_clear_handle_id(&agent->tick_source, g_source_remove);
    g_clear_handle_id(&agent->qemu_watch, g_source_remove);
    g_clear_handle_id(&agent->sigterm_source, g_source_remove);
    g_clear_handle_id(&agent->sigint_source, g_source_remove);
    g_clear_handle_id(&agent->sigusr1_source, g_source_remove);
    ms_agent_stop_modules(agent);
    g_ptr_array_unref(agent->modules);
    g_hash_table_unref(agent->warned);
    g_key_file_unref(agent->status);
    g_clear_pointer(&agent->qmp, ms_qmp_client_free);
    g_clear_pointer(&agent->libvirt, ms_libvirt_free);
    if (agent->export.prometheus_dir && agent->lock_fd >= 0)
        ms_export_remove_prometheus_file(agent->export.prometheus_dir, agent->opt.uuid, NULL);
    ms_export_config_clear(&agent->export);
    ms_agent_remove_runtime_files(agent);
    if (agent->lock_fd >= 0)
        close(agent->lock_fd);
    if (agent->qemu_pidfd >= 0)
        close(agent->qemu_pidfd);
    g_clear_pointer(&agent->policy, ms_policy_free);
    g_free(agent->runtime_dir);
    g_free(agent->pidfile);
    g_free(agent->qemu_version);
    g_free(agent->domain_name);
    g_free(agent->opt.uuid);
    g_free(agent->opt.name);
    g_free(agent->opt.connect_uri);
    g_free(agent->opt.connect_origin);
    g_free(agent->opt.qmp_socket);
    g_free(agent->opt.domain_xml);
    g_free(agent->sharing_error);
    g_main_loop_unref(agent->loop);
    g_main_context_unref(agent->context);
    g_free(agent);
}

/* One agent per domain: an exclusive flock on agent.pid. The lock, not the
 * file's existence, is the truth, so a SIGKILLed agent never blocks its
 * successor. */
static gboolean
ms_agent_take_lock(MsAgent *agent, gboolean *already_running, GError **error)
{
    g_autofree char *domains = g_build_filename(ms_runtime_dir(), "domains", NULL);
    if (g_mkdir_with_parents(domains, 0755) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot create runtime directory '%s': %s",
                    domains, g_strerror(errno));
        return FALSE;
    }
    agent->runtime_dir = ms_domain_runtime_dir(agent->opt.uuid);
    {
        /* a bad [stats] section costs the exports, not the agent */
        g_autoptr(GError) cerr = NULL;
        g_autoptr(GKeyFile) conf = ms_config_load(&cerr);
        if (conf == NULL || !ms_export_config_load(conf, &agent->export, &cerr)) {
            g_warning("%s; figures go to the status file and the live metadata only",
                      cerr ? cerr->message : "cannot read the configuration");
            ms_export_config_clear(&agent->export);
            agent->export.metadata = TRUE;
        }
        /* a bad [sharing] default-group means the safe one: the domain
         * alone (the hook refuses the start for the same reason) */
        g_clear_error(&cerr);
        if (!ms_sharing_default_from_config(conf, ms_config_path(), &agent->sharing_default, &cerr)) {
            g_warning("%s; the domain is alone in its sharing group", cerr->message);
            agent->sharing_default = MS_SHARING_DEFAULT_DOMAIN;
        }
    }
    if (g_mkdir(agent->runtime_dir, 0750) < 0 && errno != EEXIST) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot create '%s': %s",
                    agent->runtime_dir, g_strerror(errno));
        return FALSE;
    }
    agent->pidfile = g_build_filename(agent->runtime_dir, "agent.pid", NULL);
    int fd = open(agent->pidfile, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot open '%s': %s", agent->pidfile,
                    g_strerror(errno));
        return FALSE;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        close(fd);
        if (errno == EWOULDBLOCK) {
            *already_running = TRUE;
            return TRUE;
        }
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot lock '%s': %s", agent->pidfile,
                    g_strerror(errno));
        return FALSE;
    }
    g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, strlen(pid), 0) < 0) {
        close(fd);
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot write '%s': %s", agent->pidfile,
                    g_strerror(errno));
        return FALSE;
    }
    agent->lock_fd = fd;
    return TRUE;
}

/* ---- status publication ------------------------------------------------ */

/* The status file is what memsharectl and the tests read: one GKeyFile,
 * replaced atomically each tick so a reader never sees half of it. */
/* A runtime directory that is full or unwritable would otherwise log one
 * line per period for hours: log when the trouble starts, changes or ends. */
static void
ms_agent_warn_once(MsAgent *agent, const char *what, const char *message)
{
    const char *prev = g_hash_table_lookup(agent->warned, what);
    if (g_strcmp0(prev, message) == 0)
        return;
    if (message)
        g_warning("cannot write %s: %s", what, message);
    else
        g_message("%s written again", what);
    if (message)
        g_hash_table_replace(agent->warned, g_strdup(what), g_strdup(message));
    else
        g_hash_table_remove(agent->warned, what);
}

/* [sharing] of the status: the domain's trust group (ms-sharing.h), which
 * the balloon module reads to divide per group, and whether KSM merges it.
 * The group is the one the hook checked at `prepare` (its record in the
 * runtime directory): the KSM-group rule was applied to that group, and KSM
 * goes on merging the domain with it whatever the policy says later, so a
 * live change of <sharing> takes effect at the next start (shown as
 * pending). Without a record (bare QEMU, an older hook) the group is
 * resolved here. Unresolvable (hostile Nova metadata with
 * default-group=nova-project): the error is shown and the balloon treats
 * the domain as alone. */
static void
ms_agent_update_sharing(MsAgent *agent)
{
    g_key_file_remove_group(agent->status, MS_STATUS_SHARING, NULL);
    if (agent->policy == NULL)
        return;
    const MsPolicy *p = agent->policy;
    MsSharingSource src;
    g_autoptr(GError) error = NULL;
    g_autofree char *group = ms_sharing_resolve(p->sharing.group, agent->opt.uuid, p->domain.nova_project,
                                                agent->sharing_default, &src, &error);
    g_autofree char *rpath = g_build_filename(agent->runtime_dir, "sharing", NULL);
    g_autofree char *buf = NULL, *rname = NULL, *rgroup = NULL;
    gsize len = 0;
    gboolean rmerging = FALSE;
    if (ms_file_read_bounded(rpath, MS_SHARING_RECORD_MAX, &buf, &len, NULL) &&
        ms_sharing_record_parse(buf, len, rpath, &rname, &rgroup, &rmerging, NULL)) {
        if (g_strcmp0(group, rgroup) != 0) {
            const char *now = group ? group : "(unresolvable)";
            g_key_file_set_string(agent->status, MS_STATUS_SHARING, MS_STATUS_SHARING_PENDING, now);
            g_autofree char *msg = g_strdup_printf("the policy's sharing group is now '%s'; the domain stays "
                                                   "in '%s', the group it started in, until it restarts",
                                                   now, rgroup);
            if (g_strcmp0(agent->sharing_error, msg) != 0)
                g_warning("%s", msg);
            g_free(agent->sharing_error);
            agent->sharing_error = g_steal_pointer(&msg);
        } else {
            g_clear_pointer(&agent->sharing_error, g_free);
        }
        g_key_file_set_string(agent->status, MS_STATUS_SHARING, MS_STATUS_SHARING_GROUP, rgroup);
        g_key_file_set_string(agent->status, MS_STATUS_SHARING, MS_STATUS_SHARING_SOURCE,
                              group && g_strcmp0(group, rgroup) == 0 ? ms_sharing_source_name(src) : "start");
        g_key_file_set_boolean(agent->status, MS_STATUS_SHARING, MS_STATUS_SHARING_MERGING, rmerging);
        return;
    }
    if (group == NULL) {
        g_key_file_set_string(agent->status, MS_STATUS_SHARING, MS_STATUS_KEY_ERROR, error->message);
        if (g_strcmp0(agent->sharing_error, error->message) != 0)
            g_warning("sharing group: %s; the balloon treats the domain as alone", error->message);
        g_free(agent->sharing_error);
        agent->sharing_error = g_strdup(error->message);
    } else {
        g_key_file_set_string(agent->status, MS_STATUS_SHARING, MS_STATUS_SHARING_GROUP, group);
        g_key_file_set_string(agent->status, MS_STATUS_SHARING, MS_STATUS_SHARING_SOURCE, ms_sharing_source_name(src));
        g_clear_pointer(&agent->sharing_error, g_free);
    }
    g_key_file_set_boolean(agent->status, MS_STATUS_SHARING, MS_STATUS_SHARING_MERGING, !p->domain.nosharepages);
}

static void
ms_agent_publish_status(MsAgent *agent)
{
    GKeyFile *kf = agent->status;
    g_key_file_set_string(kf, MS_STATUS_AGENT, MS_STATUS_AGENT_DOMAIN, agent->domain_name);
    g_key_file_set_string(kf, MS_STATUS_AGENT, MS_STATUS_AGENT_UUID, agent->opt.uuid);
    g_key_file_set_int64(kf, MS_STATUS_AGENT, MS_STATUS_AGENT_PID, getpid());
    g_key_file_set_string(kf, MS_STATUS_AGENT, MS_STATUS_AGENT_TRANSPORT, agent->opt.qmp_socket ? "socket" : "libvirt");
    g_key_file_set_uint64(kf, MS_STATUS_AGENT, MS_STATUS_AGENT_TICKS, agent->ticks);
    g_key_file_set_int64(kf, MS_STATUS_AGENT, MS_STATUS_AGENT_UPDATED, g_get_real_time() / G_USEC_PER_SEC);
    if (agent->qemu_version)
        g_key_file_set_string(kf, MS_STATUS_QEMU, MS_STATUS_QEMU_VERSION, agent->qemu_version);
    g_key_file_set_int64(kf, MS_STATUS_QEMU, MS_STATUS_QEMU_PID, agent->qemu_pid);
    ms_balloon_size_publish(&agent->balloon, kf);
    g_key_file_set_string(kf, MS_STATUS_POLICY, MS_STATUS_POLICY_STATE, agent->policy_removed ? "removed" : "active");
    ms_agent_update_sharing(agent);
    if (agent->policy) {
        g_key_file_set_uint64(kf, MS_STATUS_DOMAIN, MS_STATUS_DOMAIN_MEMORY, agent->policy->domain.memory_kib * 1024);
        g_key_file_set_uint64(kf, MS_STATUS_DOMAIN, MS_STATUS_DOMAIN_CURRENT_MEMORY,
                              agent->policy->domain.current_memory_kib * 1024);
    }
    gsize len = 0;
    g_autofree char *data = g_key_file_to_data(kf, &len, NULL);
    g_autofree char *path = g_build_filename(agent->runtime_dir, "status", NULL);
    g_autoptr(GError) error = NULL;
    if (!ms_file_write_atomic(path, data, len, 0644, &error))
        ms_agent_warn_once(agent, "status", error->message);
    else
        ms_agent_warn_once(agent, "status", NULL);
}

/* One line per stats period into the bounded timeline that `memsharectl
 * plot` draws. A full disk costs the history, never the domain. */
static void
ms_agent_append_history(MsAgent *agent)
{
    g_autofree char *path = g_build_filename(agent->runtime_dir, "history", NULL);
    g_autofree char *line = ms_history_format_line(agent->status, g_get_real_time() / G_USEC_PER_SEC);
    g_autoptr(GError) error = NULL;
    if (!ms_history_append(path, line, MS_HISTORY_DEFAULT_LIMIT, &error))
        ms_agent_warn_once(agent, "history", error->message);
    else
        ms_agent_warn_once(agent, "history", NULL);
}

/* The same figures for other tools: a node_exporter textfile and a stats
 * element in the domain's live metadata (`virsh metadata DOMAIN
 * https://memshare.dev/xmlns/stats/1.0`). The metadata-change event this
 * causes is for the stats namespace, which the policy watcher ignores. */
static void
ms_agent_export_stats(MsAgent *agent)
{
    MsExportDomain d = { agent->domain_name, agent->opt.uuid, TRUE, agent->status };
    g_autoptr(GError) error = NULL;
    if (agent->export.prometheus_dir) {
        gboolean ok = ms_export_write_prometheus_file(agent->export.prometheus_dir, &d, &error);
        ms_agent_warn_once(agent, "prometheus file", ok ? NULL : error->message);
        g_clear_error(&error);
    }
    if (agent->export.metadata && ms_agent_domain(agent)) {
        gboolean ok = ms_libvirt_set_stats_metadata(ms_agent_domain(agent), &d,
                                                    g_get_real_time() / G_USEC_PER_SEC, &error);
        ms_agent_warn_once(agent, "stats metadata", ok ? NULL : error->message);
    }
}

/* ---- QMP ----------------------------------------------------------------- */

static void
ms_agent_log_memdevs(MsAgent *agent)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) ret = ms_qmp_client_execute(agent->qmp, "query-memdev", NULL, &error);
    if (ret == NULL) {
        g_warning("query-memdev: %s", error->message);
        return;
    }
    if (!JSON_NODE_HOLDS_ARRAY(ret)) {
        g_warning("query-memdev: reply is not an array");
        return;
    }
    JsonArray *arr = json_node_get_array(ret);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonNode *n = json_array_get_element(arr, i);
        if (!JSON_NODE_HOLDS_OBJECT(n))
            continue;
        JsonObject *o = json_node_get_object(n);
        const char *id = json_object_get_string_member_with_default(o, "id", "?");
        gint64 size = json_object_get_int_member_with_default(o, "size", -1);
        gboolean merge = json_object_get_boolean_member_with_default(o, "merge", FALSE);
        gboolean share = json_object_get_boolean_member_with_default(o, "share", FALSE);
        g_message("memdev '%s': %" G_GINT64_FORMAT " MiB, merge=%s share=%s", id,
                  size >= 0 ? size / (1024 * 1024) : -1, merge ? "on" : "off",
                  share ? "on" : "off");
    }
    if (json_array_get_length(arr) == 0)
        g_message("memdev: none reported (guest RAM not backed by a memdev object)");
}

static void
ms_agent_qmp_event(MsQmpClient *client, const char *event, JsonObject *data, gint64 seconds,
                   gint64 micros, gpointer user_data)
{
    MsAgent *agent = user_data;
    if (ms_balloon_size_event(&agent->balloon, event, data)) {
        /* recorded */
    } else if (g_str_equal(event, "SHUTDOWN")) {
        g_debug("guest shutdown event");
    }
}

static void
ms_agent_qmp_closed(MsQmpClient *client, const GError *reason, gpointer user_data)
{
    MsAgent *agent = user_data;
    /* With libvirt's transport the connection close callback handles it. */
    if (agent->opt.qmp_socket)
        ms_agent_quit(agent, 0, reason ? reason->message : "QMP monitor closed");
}

static gboolean
ms_agent_qmp_start(MsAgent *agent, GError **error)
{
    g_clear_pointer(&agent->qmp, ms_qmp_client_free);
    if (agent->opt.qmp_socket)
        agent->qmp = ms_qmp_client_new_socket(agent->opt.qmp_socket);
    else
        agent->qmp = ms_qmp_client_new_libvirt(ms_libvirt_get_connection(agent->libvirt),
                                               ms_libvirt_get_domain(agent->libvirt));
    ms_qmp_client_set_event_handler(agent->qmp, ms_agent_qmp_event, agent);
    ms_qmp_client_set_closed_handler(agent->qmp, ms_agent_qmp_closed, agent);
    if (!ms_qmp_client_connect(agent->qmp, error))
        return FALSE;
    g_free(agent->qemu_version);
    agent->qemu_version = g_strdup(ms_qmp_client_get_qemu_version(agent->qmp));
    return TRUE;
}

/* ---- policy ---------------------------------------------------------------- */

/* The balloon's base comes from <currentMemory> as the domain started, not
 * as libvirt's live XML shows it now (the balloon's current size, which we
 * move). The hook records the boot sizes at `prepare` in boot-memory;
 * without it (bare QEMU, a hook that could not write) the first XML an
 * agent of this domain read is recorded, so a respawned agent or a policy
 * reload keeps the same base. */
static void
ms_agent_boot_memory(MsAgent *agent, MsPolicy *policy)
{
    if (agent->runtime_dir == NULL)
        return;
    g_autofree char *path = g_build_filename(agent->runtime_dir, "boot-memory", NULL);
    g_autofree char *text = NULL;
    guint64 cur = 0;
    if (ms_file_read_bounded(path, 4096, &text, NULL, NULL)) {
        g_auto(GStrv) lines = g_strsplit(text, "\n", 8);
        for (guint i = 0; lines[i]; i++)
            if (g_str_has_prefix(lines[i], "current-memory=") &&
                !ms_parse_u64(lines[i] + strlen("current-memory="), "current-memory", &cur, NULL))
                cur = 0;
        if (cur == 0)
            g_warning("%s: no valid current-memory= line; recording <currentMemory> from the XML", path);
    }
    if (cur == 0) {
        cur = policy->domain.current_memory_kib;
        g_autofree char *rec = g_strdup_printf("memory=%" G_GUINT64_FORMAT "\ncurrent-memory=%" G_GUINT64_FORMAT "\n",
                                               policy->domain.memory_kib, cur);
        g_autoptr(GError) werr = NULL;
        if (!ms_file_write_atomic(path, rec, -1, 0644, &werr))
            g_warning("%s", werr->message);
        else
            agent->own_boot_memory = TRUE;  /* no hook: ours to remove at exit */
    }
    if (cur != policy->domain.current_memory_kib)
        ms_policy_rebase(policy, cur);
}

/* Parses the policy of a domain XML. TRUE with *out NULL when the XML
 * carries none (removed live, or never there); FALSE when it is invalid. */
static gboolean
ms_agent_parse_policy_xml(MsAgent *agent, const char *xml, MsPolicy **out, GError **error)
{
    g_autoptr(MsPolicy) policy = NULL;
    MsOnError on_error = MS_ON_ERROR_REFUSE;
    if (!ms_policy_parse_domain_xml(xml, -1, MS_POLICY_CHECK_NONE, NULL, &policy, &on_error, error))
        return FALSE;
    if (policy != NULL) {
        if (policy->domain.name && g_strcmp0(policy->domain.name, agent->domain_name) != 0) {
            g_free(agent->domain_name);
            agent->domain_name = g_strdup(policy->domain.name);
            ms_log_set_domain(agent->domain_name);
        }
        ms_agent_boot_memory(agent, policy);
    }
    *out = g_steal_pointer(&policy);
    return TRUE;
}

/* Reads the current policy (live XML, or the --domain-xml file) without
 * installing it: the modules still run on the old one until the caller has
 * stopped them. *present says whether the XML carries one; a bare QEMU
 * without a policy file has none and gives defaults. */
static gboolean
ms_agent_read_policy(MsAgent *agent, MsPolicy **out, gboolean *present, GError **error)
{
    g_autofree char *xml = NULL;
    *out = NULL;
    *present = FALSE;
    if (ms_agent_domain(agent)) {
        xml = virDomainGetXMLDesc(ms_agent_domain(agent), 0);
        if (xml == NULL) {
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "cannot read the domain XML: %s",
                        virGetLastErrorMessage());
            return FALSE;
        }
    } else if (agent->opt.domain_xml) {
        if (!ms_file_read_bounded(agent->opt.domain_xml, 10 * 1024 * 1024, &xml, NULL, error))
            return FALSE;
    } else {
        *present = TRUE; /* bare QEMU without a policy file: defaults only */
        return TRUE;
    }
    if (!ms_agent_parse_policy_xml(agent, xml, out, error))
        return FALSE;
    *present = *out != NULL;
    return TRUE;
}

/* At start a domain must carry a policy: the hook starts agents only for
 * those, and an agent started by hand for another domain has nothing to do. */
static gboolean
ms_agent_load_policy(MsAgent *agent, GError **error)
{
    g_autoptr(MsPolicy) policy = NULL;
    gboolean present = FALSE;
    if (!ms_agent_read_policy(agent, &policy, &present, error))
        return FALSE;
    if (!present) {
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND,
                    "the domain XML carries no memshare policy (namespace %s)", MS_POLICY_NAMESPACE);
        return FALSE;
    }
    g_clear_pointer(&agent->policy, ms_policy_free);
    agent->policy = g_steal_pointer(&policy);
    return TRUE;
}

/* ---- feature modules ---------------------------------------------------------- */

static void
ms_agent_refresh_env(MsAgent *agent)
{
    agent->env.uuid = agent->opt.uuid;
    agent->env.name = agent->domain_name;
    agent->env.qemu_pid = agent->qemu_pid;
    agent->env.qmp = agent->qmp;
    agent->env.libvirt_domain = ms_agent_domain(agent);
    agent->env.policy = agent->policy;
    agent->env.runtime_dir = agent->runtime_dir;
    agent->env.proc_root = "/proc";
    agent->env.sys_root = "/sys";
    agent->env.balloon = &agent->balloon;
}

static void ms_agent_publish_status(MsAgent *agent);

static gboolean
ms_agent_module_tick(gpointer data)
{
    MsAgentModuleSlot *slot = data;
    MsAgent *agent = slot->agent;
    if (agent->qmp == NULL)
        return G_SOURCE_CONTINUE; /* libvirtd is away; try again next period */
    g_autoptr(GError) error = NULL;
    ms_agent_refresh_env(agent);
    ms_agent_update_sharing(agent);
    if (!slot->module->tick(slot->self, &agent->env, agent->status, &error)) {
        /* A module's trouble is reported in the status and the log; the
         * domain and the other modules carry on. */
        g_warning("%s: %s", slot->module->name, error->message);
        g_key_file_set_string(agent->status, slot->module->name, "error", error->message);
    } else {
        g_key_file_remove_key(agent->status, slot->module->name, "error", NULL);
    }
    ms_agent_publish_status(agent);
    return G_SOURCE_CONTINUE;
}

static void
ms_agent_start_modules(MsAgent *agent)
{
    ms_agent_refresh_env(agent);
    for (gsize i = 0; ms_agent_module_table[i] != NULL; i++) {
        const MsAgentModule *m = ms_agent_module_table[i];
        guint64 period = m->period_ms(&agent->env);
        if (period == 0)
            continue;
        g_autoptr(GError) error = NULL;
        gpointer self = m->create(&agent->env, &error);
        if (self == NULL) {
            g_warning("%s: disabled: %s", m->name, error->message);
            g_key_file_set_string(agent->status, m->name, "error", error->message);
            continue;
        }
        MsAgentModuleSlot *slot = g_new0(MsAgentModuleSlot, 1);
        slot->module = m;
        slot->self = self;
        slot->agent = agent;
        slot->source = g_timeout_add_full(G_PRIORITY_DEFAULT, (guint)MIN(period, G_MAXUINT),
                                          ms_agent_module_tick, slot, NULL);
        g_ptr_array_add(agent->modules, slot);
        g_message("%s: every %" G_GUINT64_FORMAT " ms", m->name, period);
        ms_agent_module_tick(slot);
    }
}

/* ---- periodic work ----------------------------------------------------------- */

static gboolean
ms_agent_tick(gpointer user_data)
{
    MsAgent *agent = user_data;
    g_autoptr(GError) error = NULL;
    if (agent->qmp == NULL)
        return G_SOURCE_CONTINUE;
    agent->ticks++;
    if (!ms_balloon_size_query(&agent->balloon, agent->qmp, &error))
        g_debug("query-balloon: %s", error->message);
    ms_agent_publish_status(agent);
    if (agent->policy_removed)
        return G_SOURCE_CONTINUE; /* memshare's figures are not the domain's any more */
    ms_agent_append_history(agent);
    ms_agent_export_stats(agent);
    return G_SOURCE_CONTINUE;
}

static void
ms_agent_schedule_tick(MsAgent *agent)
{
    g_clear_handle_id(&agent->tick_source, g_source_remove);
    guint64 period = agent->policy && agent->policy->stats.period_ms ? agent->policy->stats.period_ms
                                                                     : 5000;
    agent->tick_source = g_timeout_add_full(G_PRIORITY_DEFAULT, (guint)period, ms_agent_tick,
                                            agent, NULL);
}

/* ---- stop conditions ------------------------------------------------------------ */

static void
ms_agent_quit(MsAgent *agent, int status, const char *why)
{
    if (g_main_loop_is_running(agent->loop)) {
        g_message("stopping: %s", why);
        agent->exit_status = status;
        g_main_loop_quit(agent->loop);
    }
}

static gboolean
ms_agent_on_signal(gpointer user_data)
{
    ms_agent_quit(user_data, 0, "signal received");
    return G_SOURCE_CONTINUE;
}

/* SIGUSR1: `memsharectl usedmap` asks for a fresh used-page bitmap. The
 * request carries no path: the agent writes only inside its own runtime
 * directory, and memsharectl copies the file where the user wants it. */
static gboolean
ms_agent_on_usedmap_request(gpointer user_data)
{
    MsAgent *agent = user_data;
    g_autofree char *path = g_build_filename(agent->runtime_dir, "usedmap", NULL);
    for (guint i = 0; i < agent->modules->len; i++) {
        MsAgentModuleSlot *slot = g_ptr_array_index(agent->modules, i);
        if (slot->module != &ms_tracking_module)
            continue;
        g_autoptr(GError) error = NULL;
        if (!ms_tracking_write_usedmap(slot->self, path, &error))
            g_warning("usedmap: %s", error->message);
        else
            g_message("usedmap written to %s", path);
        return G_SOURCE_CONTINUE;
    }
    const char *why = agent->policy_removed ? "the domain's memshare policy was removed"
                                            : "used-page tracking is off in the domain's policy";
    g_warning("usedmap requested but %s", why);
    g_autofree char *err = g_build_filename(agent->runtime_dir, "usedmap.error", NULL);
    g_autofree char *text = g_strdup_printf("%s\n", why);
    ms_file_write_atomic(err, text, -1, 0644, NULL);
    return G_SOURCE_CONTINUE;
}

static gboolean
ms_agent_on_qemu_exit(int fd, GIOCondition cond, gpointer user_data)
{
    MsAgent *agent = user_data;
    agent->qemu_watch = 0;
    agent->domain_gone = TRUE;
    ms_agent_quit(agent, 0, "the QEMU process exited");
    return G_SOURCE_REMOVE;
}

/* A pidfd tells us the moment QEMU exits, whoever killed it and whether or
 * not libvirtd is around to say so. */
static void
ms_agent_watch_qemu(MsAgent *agent)
{
    if (agent->qemu_pid <= 0)
        return;
    int fd = (int)syscall(SYS_pidfd_open, agent->qemu_pid, 0);
    if (fd < 0) {
        g_warning("cannot watch QEMU pid %d: %s", (int)agent->qemu_pid, g_strerror(errno));
        return;
    }
    agent->qemu_pidfd = fd;
    agent->qemu_watch = g_unix_fd_add(fd, G_IO_IN, ms_agent_on_qemu_exit, agent);
}

/* The figures memshare put on the domain for other tools, taken away when
 * the domain is no longer memshare's: a stale stats element or textfile
 * would look like a live agent's. */
static void
ms_agent_withdraw_exports(MsAgent *agent)
{
    g_autoptr(GError) error = NULL;
    if (agent->export.prometheus_dir &&
        !ms_export_remove_prometheus_file(agent->export.prometheus_dir, agent->opt.uuid, &error))
        g_warning("%s", error->message);
    if (agent->export.metadata && ms_agent_domain(agent) &&
        virDomainSetMetadata(ms_agent_domain(agent), VIR_DOMAIN_METADATA_ELEMENT, NULL, NULL, MS_EXPORT_STATS_NS,
                             VIR_DOMAIN_AFFECT_LIVE) < 0)
        g_warning("cannot remove the stats metadata: %s", virGetLastErrorMessage());
}

/* The policy was removed from the running domain (`memsharectl policy
 * remove`, `virsh metadata --remove`): memshare's work on it stops. The
 * modules stop on the policy they ran with, so the balloon goes back to its
 * base (the boot <currentMemory> the hook recorded) and this domain's inputs
 * leave the peers' snapshot; tracking and KSM tuning stop. Shared images stay
 * attached (the guest may have them mounted; they go when the domain stops),
 * and the images file stays so `image gc` still sees them in use. The agent
 * does not exit: it idles, keeps its pid lock and its status file
 * ([policy] state=removed), and a policy set again live takes effect as it
 * would on a running agent, which is what a libvirt user expects of live
 * metadata. */
static void
ms_agent_policy_removed(MsAgent *agent)
{
    guint64 base = agent->policy ? agent->policy->balloon.base_kib * 1024 : 0;
    gboolean ballooned = FALSE;
    for (guint i = 0; i < agent->modules->len; i++)
        ballooned |= ((MsAgentModuleSlot *)g_ptr_array_index(agent->modules, i))->module == &ms_balloon_module;
    ms_agent_refresh_env(agent);
    ms_agent_stop_modules(agent);
    ms_agent_withdraw_exports(agent);
    g_clear_pointer(&agent->policy, ms_policy_free);
    agent->policy_removed = TRUE;
    ms_agent_refresh_env(agent);

    /* a fresh status: the modules' figures were theirs, not the domain's now;
     * the images group stays true (they are still attached) */
    g_autoptr(GKeyFile) fresh = g_key_file_new();
    g_auto(GStrv) keys = g_key_file_get_keys(agent->status, MS_STATUS_IMAGES, NULL, NULL);
    for (gsize k = 0; keys && keys[k]; k++) {
        g_autofree char *v = g_key_file_get_value(agent->status, MS_STATUS_IMAGES, keys[k], NULL);
        g_key_file_set_value(fresh, MS_STATUS_IMAGES, keys[k], v);
    }
    g_key_file_set_int64(fresh, MS_STATUS_POLICY, MS_STATUS_POLICY_REMOVED, g_get_real_time() / G_USEC_PER_SEC);
    g_key_file_unref(agent->status);
    agent->status = g_steal_pointer(&fresh);

    g_autofree char *balloon = ballooned ? g_strdup_printf("the balloon back to its base, %" G_GUINT64_FORMAT
                                                           " MiB", base >> 20)
                                         : g_strdup("the balloon left alone (the policy did not move it)");
    g_message("policy removed from the domain: memshare stops its work here (%s; tracking off; shared "
              "images stay attached until the domain stops); waiting for a new policy", balloon);
    ms_agent_schedule_tick(agent);
    ms_agent_publish_status(agent);
}

/* A metadata change in our namespace: a new policy, an invalid one, or none. */
static void
ms_agent_policy_changed(MsAgent *agent)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MsPolicy) policy = NULL;
    gboolean present = FALSE;
    if (!ms_agent_read_policy(agent, &policy, &present, &error)) {
        /* Keep running with the policy we had: a bad edit must not undo a
         * working configuration. */
        if (agent->policy_removed)
            g_warning("policy set but invalid, staying idle: %s", error->message);
        else
            g_warning("policy changed but the new one is invalid, keeping the old one: %s",
                      error->message);
        return;
    }
    if (!present) {
        if (!agent->policy_removed)
            ms_agent_policy_removed(agent);
        return;
    }
    if (policy == NULL)
        return; /* bare QEMU without a policy file: nothing can have changed */
    gboolean resumed = agent->policy_removed;
    /* the modules stop on the policy they ran with, then start on the new */
    ms_agent_refresh_env(agent);
    ms_agent_stop_modules(agent);
    g_clear_pointer(&agent->policy, ms_policy_free);
    agent->policy = g_steal_pointer(&policy);
    agent->policy_removed = FALSE;
    g_key_file_remove_group(agent->status, MS_STATUS_POLICY, NULL);
    g_message("%s (balloon %s, tracking %s, stats every %" G_GUINT64_FORMAT " ms)",
              resumed ? "policy set again: memshare resumes its work" : "policy changed: reloaded",
              agent->policy->balloon.mode == MS_BALLOON_KSM_SHARE ? "ksm-share" : "off",
              agent->policy->tracking.used_pages ? "on" : "off", agent->policy->stats.period_ms);
    ms_agent_schedule_tick(agent);
    ms_agent_start_modules(agent);
    ms_agent_publish_status(agent);
}

/* ---- libvirt (ms-libvirt.c): what its events mean for the agent ---------- */

static void
ms_agent_on_domain_stopped(gpointer user_data)
{
    MsAgent *agent = user_data;
    agent->domain_gone = TRUE;
    ms_agent_quit(agent, 0, "libvirt reports the domain stopped");
}

static void
ms_agent_on_policy_changed(gpointer user_data)
{
    ms_agent_policy_changed(user_data);
}

/* The QMP client over libvirt dies with the connection. */
static void
ms_agent_on_disconnected(gpointer user_data)
{
    MsAgent *agent = user_data;
    g_clear_pointer(&agent->qmp, ms_qmp_client_free);
}

/* libvirt's name for the domain wins over --name: a renamed domain keeps
 * its UUID, and the log lines should say what `virsh list` says. */
static void
ms_agent_adopt_domain_name(MsAgent *agent)
{
    const char *name = virDomainGetName(ms_libvirt_get_domain(agent->libvirt));
    if (name && g_strcmp0(name, agent->domain_name) != 0) {
        g_free(agent->domain_name);
        agent->domain_name = g_strdup(name);
        ms_log_set_domain(name);
    }
}

static gboolean
ms_agent_on_reconnected(gpointer user_data, GError **error)
{
    MsAgent *agent = user_data;
    ms_agent_adopt_domain_name(agent);
    return ms_agent_qmp_start(agent, error);
}

static void
ms_agent_on_give_up(gpointer user_data, int status, const char *why)
{
    ms_agent_quit(user_data, status, why);
}

static const MsLibvirtCallbacks ms_agent_libvirt_callbacks = {
    .stopped = ms_agent_on_domain_stopped,
    .policy_changed = ms_agent_on_policy_changed,
    .disconnected = ms_agent_on_disconnected,
    .reconnected = ms_agent_on_reconnected,
    .give_up = ms_agent_on_give_up,
};

/* libvirt writes QEMU's pid next to its status XML. */
static pid_t
ms_agent_find_qemu_pid(MsAgent *agent)
{
    if (agent->opt.qemu_pid > 0)
        return agent->opt.qemu_pid;
    if (strchr(agent->domain_name, '/') != NULL)
        return 0;
    g_autofree char *file = g_strdup_printf("%s.pid", agent->domain_name);
    g_autofree char *path = g_build_filename(MS_RUNSTATEDIR, "libvirt", "qemu", file, NULL);
    return ms_pidfile_read_live(path);
}

/* How long the agent waits for an incoming migration to finish before it
 * tries to attach anyway. Generous on purpose: a migration over a slow or
 * throttled link takes as long as it takes (tests/migrate run one at 1 MiB/s),
 * and waiting costs nothing, since a failed migration removes the domain and
 * ends the wait at once; the limit only keeps an agent from waiting forever
 * on a domain libvirt never resumes (e.g. a restore left paused). */
#define MS_AGENT_INCOMING_WAIT_S (6 * 3600)
#define MS_AGENT_INCOMING_POLL_MS 250

/* SIGTERM/SIGINT while waiting (the `stopped` hook of a cancelled
 * incoming migration, or of the source after an outgoing one): exit 0 at
 * once, from the handler. Not a GLib signal source: libvirtd runs the
 * hooks with the domain object locked, so the agent's virDomainGetState can
 * be blocked in libvirtd at exactly that moment, and a main-loop handler
 * would only run after the hook's `release` gave up waiting and sent
 * SIGKILL (seen in test-migrate-faults). Nothing to clean up yet: the
 * agent has only its pid lock, which `release` removes. */
static void
ms_agent_on_signal_while_waiting(int sig)
{
    static const char msg[] =
        "memshare-agent: signal received while waiting for the migration; not attaching\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)n;
    _exit(0);
}

/* Before the first monitor command, wait while a live migration of the
 * domain runs, in either direction:
 * - incoming: on the destination libvirt 9.0 runs the `started` hook
 *   (which launches this agent) right after the incoming QEMU is set up,
 *   long before a slow migration ends, and holds the domain's job until its
 *   Finish phase: every monitor command would wait 30 s and fail, and the
 *   domain would end up without an agent. The domain is PAUSED/MIGRATION
 *   meanwhile (ms_libvirt_incoming_state, no job needed).
 * - outgoing: an agent that starts while its domain migrates out (the
 *   supervisor restarting one that died mid-migration) has nothing to do
 *   there that would outlive the migration: its monitor calls and metadata
 *   writes would wait for the migration job and fail. It waits for the job
 *   to end: the domain then left (nothing to serve) or stayed (the
 *   migration failed: attach). (It was first suspected in a guest oops
 *   after such a migration; the oops came with the wait too:
 *   docs/migration.md.)
 * An ordinary start returns at once: its state at `started` is
 * RUNNING/BOOTED or PAUSED/USER and its job is no migration. Lifecycle
 * events stay queued in the agent's context for ms_agent_run. */
static gboolean
ms_agent_wait_migration(MsAgent *agent, MsAgentStartResult *result, GError **error)
{
    enum { MIG_NONE, MIG_INCOMING, MIG_OUTGOING };
    static const char *const dir[] = { [MIG_INCOMING] = "incoming", [MIG_OUTGOING] = "outgoing" };
    gint64 t0 = g_get_monotonic_time();
    int waiting = MIG_NONE;   /* which migration, once the agent waits */
    struct sigaction sa = { .sa_handler = ms_agent_on_signal_while_waiting }, old_term, old_int;
    gboolean ok = TRUE;

    for (;;) {
        double waited = (g_get_monotonic_time() - t0) / 1e6;
        MsLibvirtIncoming state = ms_libvirt_incoming_state(agent->libvirt, error);
        if (state == MS_LIBVIRT_INCOMING_ERROR) {
            ok = FALSE;
            break;
        }
        if (state == MS_LIBVIRT_INCOMING_GONE) {
            if (waiting == MIG_OUTGOING)
                g_message("the outgoing migration completed: the domain left this host after %.1f s; "
                          "nothing to serve", waited);
            else
                g_message("the incoming migration did not complete: the domain is gone from this host after "
                          "%.1f s; nothing to serve", waited);
            *result = MS_AGENT_START_NOTHING_TO_SERVE;
            break;
        }
        int now = state == MS_LIBVIRT_INCOMING_RUNNING ? MIG_INCOMING
                   : ms_libvirt_migrating_out(agent->libvirt) ? MIG_OUTGOING : MIG_NONE;
        if (now == MIG_NONE) {
            if (waiting != MIG_NONE)
                g_message("the %s migration finished after %.1f s; attaching", dir[waiting], waited);
            break;
        }
        if (waiting == MIG_NONE) {
            if (now == MIG_INCOMING)
                g_message("the domain is still arriving by an incoming migration (libvirt holds its job until "
                          "the migration ends); waiting for it, up to %u s, before attaching",
                          (guint)MS_AGENT_INCOMING_WAIT_S);
            else
                g_message("the domain is migrating out of this host; waiting for the migration to end, up to "
                          "%u s, before attaching (docs/migration.md)", (guint)MS_AGENT_INCOMING_WAIT_S);
            sigemptyset(&sa.sa_mask);
            sigaction(SIGTERM, &sa, &old_term);
            sigaction(SIGINT, &sa, &old_int);
        }
        waiting = now;
        if (waited >= MS_AGENT_INCOMING_WAIT_S) {
            g_warning("the %s migration still runs after %u s; attaching anyway", dir[waiting],
                      (guint)MS_AGENT_INCOMING_WAIT_S);
            break;
        }
        g_usleep(MS_AGENT_INCOMING_POLL_MS * 1000);
    }
    if (waiting != MIG_NONE) {
        sigaction(SIGTERM, &old_term, NULL);
        sigaction(SIGINT, &old_int, NULL);
    }
    return ok;
}

gboolean
ms_agent_start(MsAgent *agent, MsAgentStartResult *result, GError **error)
{
    *result = MS_AGENT_START_ATTACHED;
    if (!ms_uuid_is_valid(agent->opt.uuid)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "'%s' is not a valid domain UUID",
                    agent->opt.uuid);
        return FALSE;
    }
    gboolean already_running = FALSE;
    if (!ms_agent_take_lock(agent, &already_running, error))
        return FALSE;
    if (already_running) {
        *result = MS_AGENT_START_ALREADY_RUNNING;
        return TRUE;
    }
    if (!ms_kcompat_init(error))   /* MEMSHARE_HIDE: a typo must not go unnoticed */
        return FALSE;

    if (agent->opt.qmp_socket == NULL) {
        if (!ms_qmp_libvirt_event_loop_start(agent->context, error))
            return FALSE;
        g_message("connecting to libvirt at '%s' (%s)", agent->opt.connect_uri, agent->opt.connect_origin);
        agent->libvirt = ms_libvirt_new(agent->context, agent->opt.connect_uri, agent->opt.connect_origin,
                                        agent->opt.uuid, agent->opt.reconnect_timeout_s,
                                        &ms_agent_libvirt_callbacks, agent);
        if (!ms_libvirt_connect(agent->libvirt, error))
            return FALSE;
        if (!ms_agent_wait_migration(agent, result, error))
            return FALSE;
        if (*result == MS_AGENT_START_NOTHING_TO_SERVE)
            return TRUE;
        ms_agent_adopt_domain_name(agent);
    }
    if (!ms_agent_load_policy(agent, error))
        return FALSE;
    if (!ms_agent_qmp_start(agent, error))
        return FALSE;

    agent->qemu_pid = ms_agent_find_qemu_pid(agent);
    g_autoptr(GError) local = NULL;
    if (!ms_balloon_size_query(&agent->balloon, agent->qmp, &local)) {
        g_warning("no balloon: %s", local->message);
        g_clear_error(&local);
    }
    g_message("attached: QEMU %s (pid %d), transport %s, balloon actual %" G_GUINT64_FORMAT " MiB",
              agent->qemu_version ? agent->qemu_version : "?", (int)agent->qemu_pid,
              agent->opt.qmp_socket ? "qmp-socket" : "libvirt",
              agent->balloon.actual / (1024 * 1024));
    ms_agent_log_memdevs(agent);
    ms_kcompat_report("/sys", "/proc", agent->qemu_pid, agent->status);
    ms_agent_publish_status(agent);
    return TRUE;
}

int
ms_agent_run(MsAgent *agent)
{
    if (agent->opt.once)
        return 0;
    agent->sigterm_source = g_unix_signal_add(SIGTERM, ms_agent_on_signal, agent);
    agent->sigint_source = g_unix_signal_add(SIGINT, ms_agent_on_signal, agent);
    agent->sigusr1_source = g_unix_signal_add(SIGUSR1, ms_agent_on_usedmap_request, agent);
    ms_agent_watch_qemu(agent);
    ms_agent_schedule_tick(agent);
    ms_agent_start_modules(agent);
    g_main_loop_run(agent->loop);
    return agent->exit_status;
}
