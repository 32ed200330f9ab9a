/* tools/ctl-top.c: `memsharectl top`, a refreshing terminal view of every
 * domain's memshare figures, like virt-top: one line per domain, re-read
 * from the agents' status files every DELAY seconds; q quits. No curses:
 * the view is a handful of ANSI sequences and the terminal goes back to its
 * own mode on every exit path. --batch prints plain frames one after the
 * other (logs, pipes, tests). */
#include "ctl.h"
#include "ctl-status.h"
#include "ms-export.h"
#include "ms-status-keys.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t ms_top_quit;

static void
ms_top_on_signal(int sig)
{
    ms_top_quit = sig;
}

/* Sizes for a human at a glance, 4 significant characters ("832.0M"); the
 * exact bytes are in `memsharectl domstats`. */
static void
ms_top_size(char *buf, gsize len, const char *bytes)
{
    if (bytes == NULL) {
        g_strlcpy(buf, "-", len);
        return;
    }
    gboolean neg = bytes[0] == '-';
    double v = g_ascii_strtod(neg ? bytes + 1 : bytes, NULL);
    static const char units[] = "BKMGTPE";
    int u = 0;
    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        g_snprintf(buf, len, "%s%.0f%c", neg ? "-" : "", v, units[u]);
    else
        g_snprintf(buf, len, "%s%.1f%c", neg ? "-" : "", v, units[u]);
}

static char *
ms_top_value(GKeyFile *status, const char *group, const char *key)
{
    for (gsize i = 0; i < ms_export_n_fields; i++) {
        const MsExportField *f = &ms_export_fields[i];
        if (g_str_equal(f->group, group) && g_str_equal(f->key, key)) {
            char *v = NULL;
            ms_export_field_value(status, f, &v, NULL);
            return v;
        }
    }
    g_assert_not_reached();
}

/* Appends one line, cut at the terminal's width (a wrapped line would
 * scroll the header away). */
static void
ms_top_line(GString *frame, guint width, const char *line)
{
    gsize n = strlen(line);
    if (width > 0 && n > width)
        n = width;
    g_string_append_len(frame, line, n);
    g_string_append_c(frame, '\n');
}

static char *
ms_top_frame(guint width)
{
    g_autoptr(GPtrArray) agents = ms_ctl_list_agents();
    GString *frame = g_string_new(NULL);
    guint running = 0, stale = 0, bad = 0;
    guint64 host_saved = 0;
    gboolean have_saved = FALSE;
    for (guint i = 0; i < agents->len; i++) {
        MsCtlAgent *a = g_ptr_array_index(agents, i);
        if (a->error)
            bad++;
        else if (a->running)
            running++;
        else
            stale++;
        if (a->status && a->running && !have_saved) {
            /* host-wide: every agent reads the same counters */
            g_autofree char *v = ms_top_value(a->status, MS_STATUS_KSM, MS_STATUS_KSM_HOST_SAVED);
            if (v) {
                host_saved = g_ascii_strtoull(v, NULL, 10);
                have_saved = TRUE;
            }
        }
    }
    char now[16];
    time_t t = time(NULL);
    struct tm tm;
    strftime(now, sizeof now, "%H:%M:%S", localtime_r(&t, &tm));
    char saved[32] = "-";
    if (have_saved) {
        g_autofree char *s = g_strdup_printf("%" G_GUINT64_FORMAT, host_saved);
        ms_top_size(saved, sizeof saved, s);
    }
    g_autofree char *head = g_strdup_printf("memsharectl top - %s  domains: %u running, %u stale, %u unreadable"
                                            "  KSM saved: %s",
                                            now, running, stale, bad, saved);
    ms_top_line(frame, width, head);
    ms_top_line(frame, width, "");
    g_autofree char *cols = g_strdup_printf("%-16s %-8s %8s %8s %8s %8s %8s %8s %5s %s", "DOMAIN", "STATE", "USED",
                                            "WSS", "ACTUAL", "TARGET", "BASE", "KSM", "STUCK", "GROUP");
    ms_top_line(frame, width, cols);
    for (guint i = 0; i < agents->len; i++) {
        MsCtlAgent *a = g_ptr_array_index(agents, i);
        g_autofree char *name = g_utf8_make_valid(a->name, -1);
        if (g_utf8_strlen(name, -1) > 16) {
            char *end = g_utf8_offset_to_pointer(name, 15);
            strcpy(end, "~");
        }
        if (a->error) {
            g_autofree char *line = g_strdup_printf("%-16s %-8s %s", name, "error", a->error);
            ms_top_line(frame, width, line);
            continue;
        }
        static const char *const keys[][2] = {
            { MS_STATUS_TRACKING, MS_STATUS_TRACKING_USED },  { MS_STATUS_TRACKING, MS_STATUS_TRACKING_WORKING_SET }, { MS_STATUS_BALLOON, MS_STATUS_BALLOON_ACTUAL },
            { MS_STATUS_BALLOON, MS_STATUS_BALLOON_TARGET }, { MS_STATUS_BALLOON, MS_STATUS_BALLOON_BASE },         { MS_STATUS_KSM, MS_STATUS_KSM_CONTRIBUTION },
        };
        char sz[G_N_ELEMENTS(keys)][16];
        for (gsize k = 0; k < G_N_ELEMENTS(keys); k++) {
            g_autofree char *v = ms_top_value(a->status, keys[k][0], keys[k][1]);
            ms_top_size(sz[k], sizeof sz[k], v);
        }
        g_autofree char *stuck = ms_top_value(a->status, MS_STATUS_BALLOON, MS_STATUS_BALLOON_STUCK);
        /* the sharing group, last: it is the one column of free length
         * (docs/security.md); a domain:UUID group is cut like a name */
        g_autofree char *group = ms_top_value(a->status, MS_STATUS_SHARING, MS_STATUS_SHARING_GROUP);
        if (group && strlen(group) > 24)
            strcpy(group + 23, "~");
        /* %-16s counts bytes: pad by characters so UTF-8 names align */
        glong pad = 16 - g_utf8_strlen(name, -1);
        g_autofree char *line = g_strdup_printf("%s%*s %-8s %8s %8s %8s %8s %8s %8s %5s %s", name, (int)MAX(pad, 0),
                                                "", a->running ? "running" : "stale", sz[0], sz[1], sz[2], sz[3],
                                                sz[4], sz[5], stuck ? stuck : "-", group ? group : "-");
        ms_top_line(frame, width, line);
    }
    if (agents->len == 0)
        ms_top_line(frame, width, "(no memshare agent: no domain with a memshare policy runs)");
    return g_string_free(frame, FALSE);
}

static void
ms_top_usage(FILE *f)
{
    fprintf(f, "Usage: memsharectl top [-d|--delay SECONDS] [-n|--iterations N] [-b|--batch]\n"
               "Live view of every domain's memshare figures, like virt-top; reads the\n"
               "agents' status files, needs no libvirt.\n"
               "  -d, --delay SECONDS    re-read the figures every SECONDS (default 1)\n"
               "  -n, --iterations N     stop after N frames (default: until q)\n"
               "  -b, --batch            plain frames one after the other, no terminal control\n"
               "  q quits the live view.\n");
}

static gboolean
ms_top_parse_uint(const char *opt, const char *v, guint max, guint *out)
{
    guint64 n;
    if (v == NULL || !g_ascii_string_to_unsigned(v, 10, 1, max, &n, NULL)) {
        fprintf(stderr, "memsharectl: top: %s needs a number from 1 to %u\n", opt, max);
        return FALSE;
    }
    *out = (guint)n;
    return TRUE;
}

int
ms_ctl_top(int argc, char **argv)
{
    guint delay = 1, iterations = 0;
    gboolean batch = FALSE;
    if (ms_ctl_wants_help(argc, argv)) {
        ms_top_usage(stdout);
        return MS_CTL_EXIT_OK;
    }
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (g_str_equal(o, "-d") || g_str_equal(o, "--delay")) {
            if (!ms_top_parse_uint(o, i + 1 < argc ? argv[++i] : NULL, 3600, &delay))
                return MS_CTL_EXIT_USAGE;
        } else if (g_str_equal(o, "-n") || g_str_equal(o, "--iterations")) {
            if (!ms_top_parse_uint(o, i + 1 < argc ? argv[++i] : NULL, G_MAXINT, &iterations))
                return MS_CTL_EXIT_USAGE;
        } else if (g_str_equal(o, "-b") || g_str_equal(o, "--batch")) {
            batch = TRUE;
        } else {
            fprintf(stderr, "memsharectl: top: unknown argument '%s'\n", o);
            ms_top_usage(stderr);
            return MS_CTL_EXIT_USAGE;
        }
    }
    gboolean interactive = !batch && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    struct termios saved;
    gboolean raw_mode = FALSE, keys = interactive;
    if (interactive) {
        if (tcgetattr(STDIN_FILENO, &saved) < 0) {
            interactive = keys = FALSE;
        } else {
            /* single keys without Enter, no echo of the q */
            struct termios raw = saved;
            raw.c_lflag &= ~(ICANON | ECHO);
            raw.c_cc[VMIN] = 0;
            raw.c_cc[VTIME] = 0;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
            raw_mode = TRUE;
            fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, hide cursor */
        }
    }
    struct sigaction sa = { .sa_handler = ms_top_on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    int rc = MS_CTL_EXIT_OK;
    for (guint n = 0; !ms_top_quit && (iterations == 0 || n < iterations); n++) {
        guint width = 0;
        struct winsize ws;
        if (interactive && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0)
            width = ws.ws_col;
        g_autofree char *frame = ms_top_frame(width);
        if (interactive)
            fputs("\033[H\033[2J", stdout);
        else if (n > 0)
            fputc('\n', stdout);
        fputs(frame, stdout);
        if (fflush(stdout) != 0) {
            rc = MS_CTL_EXIT_FAILURE;
            break;
        }
        if (iterations && n + 1 >= iterations)
            break;
        /* wait DELAY seconds, or less if a key comes */
        gint64 until = g_get_monotonic_time() + (gint64)delay * G_USEC_PER_SEC;
        while (!ms_top_quit) {
            gint64 left = until - g_get_monotonic_time();
            if (left <= 0)
                break;
            struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
            int r = poll(&p, keys ? 1 : 0, (int)((left + 999) / 1000));
            if (r < 0 && errno != EINTR)
                break;
            if (r > 0) {
                char c;
                ssize_t got = read(STDIN_FILENO, &c, 1);
                if (got == 1 && (c == 'q' || c == 'Q'))
                    ms_top_quit = SIGTERM;
                else if (got == 1 && c == ' ')
                    break; /* refresh now */
                else if (got == 0)
                    keys = FALSE; /* stdin closed: keep refreshing */
            }
        }
    }
    if (raw_mode) {
        fputs("\033[?25h\033[?1049l", stdout);
        fflush(stdout);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    }
    return rc;
}
