/* tools/ctl-plot.c: `memsharectl plot`: a PNG or SVG timeline of running
 * domains from the bounded history their agents keep
 * (RUNSTATEDIR/memshare/domains/UUID/history, formats/ms-history.h):
 * balloon targets and actuals, KSM savings and contributions, used pages.
 * Drawn by gnuplot (pngcairo/svg terminals), fed on a pipe, so no data file
 * is left behind and no shell ever sees a domain name. */
#include "ctl.h"
#include "ms-status-keys.h"
#include "ms-error.h"
#include "ms-history.h"
#include "ms-util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    char *name;
    char *uuid;
    GArray *rows;   /* doubles, (1 + ncol) per row */
    guint ncol;
} PlotDomain;

static void
plot_domain_free(PlotDomain *d)
{
    g_free(d->name);
    g_free(d->uuid);
    if (d->rows)
        g_array_unref(d->rows);
    g_free(d);
}

static int
column_of(const char *key)
{
    for (int i = 0; ms_history_columns[i]; i++)
        if (strcmp(ms_history_columns[i], key) == 0)
            return i + 1; /* column 0 is time */
    return -1;
}

/* Every running domain whose agent keeps a history, or those named. */
static GPtrArray *
collect(char **wanted, GError **error)
{
    g_autofree char *root = g_build_filename(ms_runtime_dir(), "domains", NULL);
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func((GDestroyNotify)plot_domain_free);
    g_autoptr(GDir) dir = g_dir_open(root, 0, error);
    if (dir == NULL)
        return NULL;
    const char *uuid;
    while ((uuid = g_dir_read_name(dir))) {
        if (!ms_uuid_is_valid(uuid))
            continue;
        g_autofree char *spath = g_build_filename(root, uuid, "status", NULL);
        g_autofree char *hpath = g_build_filename(root, uuid, "history", NULL);
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autofree char *name = NULL;
        if (g_key_file_load_from_file(kf, spath, 0, NULL))
            name = g_key_file_get_string(kf, MS_STATUS_AGENT, MS_STATUS_AGENT_DOMAIN, NULL);
        if (name == NULL)
            name = g_strdup(uuid);
        if (wanted && *wanted) {
            gboolean hit = FALSE;
            for (char **w = wanted; *w; w++)
                hit |= g_strcmp0(*w, name) == 0 || g_ascii_strcasecmp(*w, uuid) == 0;
            if (!hit)
                continue;
        }
        g_autofree char *text = NULL;
        gsize len = 0;
        g_autoptr(GError) local = NULL;
        if (!ms_file_read_bounded(hpath, 64 * 1024 * 1024, &text, &len, &local)) {
            g_printerr("memsharectl: domain '%s': no history (%s)\n", name, local->message);
            continue;
        }
        PlotDomain *d = g_new0(PlotDomain, 1);
        guint skipped = 0;
        d->rows = ms_history_parse(text, len, &d->ncol, &skipped, &local);
        if (d->rows == NULL) {
            g_printerr("memsharectl: %s: %s\n", hpath, local->message);
            plot_domain_free(d);
            continue;
        }
        if (skipped)
            g_printerr("memsharectl: %s: %u malformed line(s) skipped\n", hpath, skipped);
        d->name = g_steal_pointer(&name);
        d->uuid = g_strdup(uuid);
        g_ptr_array_add(out, d);
    }
    return g_steal_pointer(&out);
}

/* gnuplot strings: single quotes, with ' doubled; names are user text. */
static char *
gp_quote(const char *s)
{
    GString *q = g_string_new("'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            g_string_append(q, "''");
        else if (g_ascii_isprint(*p))
            g_string_append_c(q, *p);
        else
            g_string_append_c(q, '?');
    }
    g_string_append_c(q, '\'');
    return g_string_free(q, FALSE);
}

typedef struct {
    const char *title;
    const char *series[4];  /* history columns */
    const char *labels[4];
    gboolean host_wide[4];  /* the same for every domain: drawn once */
} Panel;

static const Panel panels[] = {
    { "balloon (MiB)", { "balloon.actual", "balloon.target", "balloon.base", NULL },
      { "actual", "target", "base", NULL }, { FALSE } },
    { "KSM (MiB)", { "balloon.contribution", "balloon.host-saved", NULL }, { "contribution", "saved on the host", NULL },
      { FALSE, TRUE } },
    { "guest pages in use (MiB)", { "tracking.used", NULL }, { "used", NULL }, { FALSE } },
};

static gboolean
render(GPtrArray *doms, const char *output, const char *format, GError **error)
{
    int in[2];
    if (pipe(in) < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "pipe: %s", g_strerror(errno));
        return FALSE;
    }
    pid_t pid = fork();
    if (pid < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "fork: %s", g_strerror(errno));
        return FALSE;
    }
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        close(in[0]);
        close(in[1]);
        execlp("gnuplot", "gnuplot", (char *)NULL);
        fprintf(stderr, "memsharectl: cannot run gnuplot: %s (apt-get install gnuplot-nox)\n", strerror(errno));
        _exit(127);
    }
    close(in[0]);
    FILE *gp = fdopen(in[1], "w");

    double t0 = INFINITY;
    for (guint i = 0; i < doms->len; i++) {
        PlotDomain *d = g_ptr_array_index(doms, i);
        if (d->rows->len)
            t0 = MIN(t0, g_array_index(d->rows, double, 0));
    }
    g_autofree char *out_q = gp_quote(output);
    if (g_strcmp0(format, "svg") == 0)
        fprintf(gp, "set terminal svg size 1000,900 dynamic background rgb 'white'\n");
    else
        fprintf(gp, "set terminal pngcairo size 1000,900\n");
    fprintf(gp, "set output %s\nset multiplot layout %d,1 title 'memshare timeline'\n"
                "set grid\nset key outside right\nset xlabel 'seconds'\n",
            out_q, (int)G_N_ELEMENTS(panels));
    for (gsize p = 0; p < G_N_ELEMENTS(panels); p++) {
        const Panel *pn = &panels[p];
        g_autofree char *t = gp_quote(pn->title);
        fprintf(gp, "set title %s\nplot ", t);
        gboolean first = TRUE;
        for (guint i = 0; i < doms->len; i++) {
            PlotDomain *d = g_ptr_array_index(doms, i);
            for (int s = 0; pn->series[s]; s++) {
                if (pn->host_wide[s] && i > 0)
                    continue;
                g_autofree char *label = pn->host_wide[s] ? g_strdup(pn->labels[s])
                                                          : g_strdup_printf("%s %s", d->name, pn->labels[s]);
                g_autofree char *lq = gp_quote(label);
                fprintf(gp, "%s'-' using 1:2 with lines lw 2 title %s", first ? "" : ", ", lq);
                first = FALSE;
            }
        }
        fprintf(gp, "\n");
        for (guint i = 0; i < doms->len; i++) {
            PlotDomain *d = g_ptr_array_index(doms, i);
            guint stride = d->ncol + 1;
            for (int s = 0; pn->series[s]; s++) {
                if (pn->host_wide[s] && i > 0)
                    continue;
                int c = column_of(pn->series[s]);
                for (guint r = 0; c > 0 && r < d->rows->len / stride; r++) {
                    double *row = &g_array_index(d->rows, double, r * stride);
                    if (isnan(row[c]))
                        fprintf(gp, "%.0f NaN\n", row[0] - t0);
                    else
                        fprintf(gp, "%.0f %.3f\n", row[0] - t0, row[c] / 1048576.0);
                }
                fprintf(gp, "e\n");
            }
        }
    }
    fprintf(gp, "unset multiplot\n");
    fclose(gp);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "gnuplot failed (status %d)", status);
        return FALSE;
    }
    return TRUE;
}

int
ms_ctl_plot(int argc, char **argv)
{
    g_autofree char *output = NULL;
    g_autofree char *format = NULL;
    g_auto(GStrv) rest = NULL;
    GOptionEntry entries[] = {
        { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "write the plot to FILE (.png or .svg)", "FILE" },
        { "format", 0, 0, G_OPTION_ARG_STRING, &format, "png (default) or svg", "FORMAT" },
        { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &rest, NULL, "[DOMAIN...]" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- memsharectl plot: draw a timeline of memshare figures");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) error = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
        g_printerr("memsharectl plot: %s\n", error->message);
        return MS_CTL_EXIT_USAGE;
    }
    if (output == NULL) {
        g_printerr("memsharectl plot: --output FILE is required\n");
        return MS_CTL_EXIT_USAGE;
    }
    if (format == NULL)
        format = g_strdup(g_str_has_suffix(output, ".svg") ? "svg" : "png");
    if (strcmp(format, "png") != 0 && strcmp(format, "svg") != 0) {
        g_printerr("memsharectl plot: --format %s: must be png or svg\n", format);
        return MS_CTL_EXIT_USAGE;
    }
    g_autoptr(GPtrArray) doms = collect(rest, &error);
    if (doms == NULL) {
        g_printerr("memsharectl plot: %s\n", error->message);
        return MS_CTL_EXIT_FAILURE;
    }
    if (doms->len == 0) {
        g_printerr("memsharectl plot: no running domain with a history%s\n",
                   rest && *rest ? " among those named" : "");
        return MS_CTL_EXIT_NOT_FOUND;
    }
    if (!render(doms, output, format, &error)) {
        g_printerr("memsharectl plot: %s\n", error->message);
        return MS_CTL_EXIT_FAILURE;
    }
    g_print("%s: %u domain(s), %s\n", output, doms->len, format);
    return MS_CTL_EXIT_OK;
}
