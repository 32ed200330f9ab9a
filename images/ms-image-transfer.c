/* images/ms-image-transfer.c: push and fetch of images between hosts'
 * stores over a remote shell's pipe: the protocol's sending and receiving
 * ends and the two ways of running them against another host (the
 * protocol is described in ms-image-transfer.h). memsharectl's push, send,
 * receive and fetch commands and the hook's fetch at an incoming migration
 * all come here; the store itself (locks, temp files, digests) is
 * ms-image-store.c's. */
#include "ms-image-transfer.h"
#include "ms-error.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINE_MAX_BYTES 256
/* what is kept of a remote end's stderr for a message */
#define REMOTE_ERR_MAX 2048

/* One line of at most LINE_MAX_BYTES from FD, a byte at a time: what
 * follows it on FD belongs to someone else (the manifest, the blob). */
static char *
read_line_fd(int fd)
{
    char buf[LINE_MAX_BYTES + 1];
    gsize n = 0;
    while (n < LINE_MAX_BYTES) {
        ssize_t r = read(fd, buf + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return NULL;
        if (buf[n] == '\n') {
            buf[n] = '\0';
            return g_strdup(buf);
        }
        n++;
    }
    return NULL;
}

static gboolean
write_all(int fd, const void *data, gsize len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return FALSE;
        p += w;
        len -= w;
    }
    return TRUE;
}

/* A decimal count of bytes from the other end: digits only, 1 to MAX. */
static gboolean
parse_count(const char *s, guint64 max, guint64 *out)
{
    gsize len = strlen(s);
    if (len == 0 || len > 20)
        return FALSE;
    for (gsize i = 0; i < len; i++)
        if (!g_ascii_isdigit(s[i]))
            return FALSE;
    errno = 0;
    guint64 v = g_ascii_strtoull(s, NULL, 10);
    if (errno || v == 0 || v > max)
        return FALSE;
    *out = v;
    return TRUE;
}

char *
ms_image_transfer_host(const char *dest, GError **error)
{
    g_autofree char *host = NULL;
    if (strstr(dest, "://")) {
        g_autoptr(GError) uerr = NULL;
        g_autoptr(GUri) u = g_uri_parse(dest, G_URI_FLAGS_NONE, &uerr);
        if (u == NULL) {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "destination '%s': %s", dest, uerr->message);
            return NULL;
        }
        const char *h = g_uri_get_host(u);
        if (h == NULL || *h == '\0') {
            g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                        "destination '%s' names no host (a local URI: this host's own store)", dest);
            return NULL;
        }
        const char *user = g_uri_get_user(u);
        host = user && *user ? g_strdup_printf("%s@%s", user, h) : g_strdup(h);
    } else {
        host = g_strdup(dest);
    }
    gboolean ok = *host != '\0' && *host != '-' && strlen(host) <= 255;
    for (const char *p = host; ok && *p; p++)
        ok = g_ascii_isalnum(*p) || strchr(".-_:@[]%", *p) != NULL;
    if (!ok) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "destination '%s': '%s' is not a host name (letters, digits, '.', '-', '_', ':', "
                    "'@'; not starting with '-')", dest, host);
        return NULL;
    }
    return g_steal_pointer(&host);
}

GStrv
ms_image_transfer_rsh(const char *rsh, GError **error)
{
    g_auto(GStrv) words = g_strsplit_set(rsh ? rsh : "ssh", " \t\n", -1);
    g_autoptr(GStrvBuilder) b = g_strv_builder_new();
    for (guint i = 0; words[i]; i++)
        if (*words[i])
            g_strv_builder_add(b, words[i]);
    GStrv v = g_strv_builder_end(b);
    if (v[0] == NULL) {
        g_strfreev(v);
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "the remote shell command is empty");
        return NULL;
    }
    return v;
}

gboolean
ms_image_transfer_remote_is_valid(const char *remote, GError **error)
{
    if (*remote == '\0' || strpbrk(remote, " \t\n;&|`$<>'\"\\()*?[]{}~#") != NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "remote memsharectl '%s': a path without white space or shell characters (the remote "
                    "shell interprets it)", remote);
        return FALSE;
    }
    return TRUE;
}

/* ---- the two ends ---------------------------------------------------- */

gboolean
ms_image_send_stream(const MsImageManifest *m, int blob_fd, int in, int *out, gboolean wait_result,
                     gboolean *had, guint64 *sent, GError **error)
{
    g_autofree char *json = ms_image_manifest_to_json(m);
    g_autofree char *head = g_strdup_printf(MS_IMAGE_TRANSFER_MAGIC " %zu\n", strlen(json));
    *had = FALSE;
    *sent = 0;
    if (!write_all(*out, head, strlen(head)) || !write_all(*out, json, strlen(json))) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "the receiving end stopped reading the manifest");
        return FALSE;
    }
    g_autofree char *answer = read_line_fd(in);
    if (answer == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "the receiving end refused it");
        return FALSE;
    }
    if (strcmp(answer, "have") == 0) {
        *had = TRUE;
        return TRUE;
    }
    if (strcmp(answer, "send") != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "the receiving end answered something else than \"have\" or \"send\"");
        return FALSE;
    }
    g_autofree char *buf = g_malloc(1024 * 1024);
    while (*sent < m->size) {
        ssize_t r = read(blob_fd, buf, MIN((guint64)1024 * 1024, m->size - *sent));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED,
                        "the local blob is shorter than its manifest says (memsharectl image verify)");
            return FALSE;
        }
        if (!write_all(*out, buf, r)) {
            g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "the receiving end stopped reading");
            return FALSE;
        }
        *sent += r;
    }
    /* EOF tells the receiver the stream ends here */
    close(*out);
    *out = -1;
    if (!wait_result)
        return TRUE;
    g_autofree char *result = read_line_fd(in);
    if (result == NULL || !g_str_has_prefix(result, "received ")) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "the receiving end did not keep it");
        return FALSE;
    }
    return TRUE;
}

MsImageManifest *
ms_image_receive_stream(const char *store, const char *name, const char *sha256, guint64 size, guint64 max_size,
                        gboolean force, int in, int out, gboolean *had, GError **error)
{
    *had = FALSE;
    g_autofree char *head = read_line_fd(in);
    g_auto(GStrv) f = head ? g_strsplit(head, " ", -1) : NULL;
    guint64 mlen = 0;
    if (head == NULL) {
        /* a refusing sender says why on its stderr, not here */
        g_set_error(error, MS_ERROR, MS_ERROR_NOT_FOUND, "image '%s': the sending end sent nothing", name);
        return NULL;
    }
    if (g_strv_length(f) != 3 || !g_str_has_prefix(head, MS_IMAGE_TRANSFER_MAGIC " ") ||
        !parse_count(f[2], MS_IMAGE_MANIFEST_MAX, &mlen)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "image '%s': the stream does not start with \"" MS_IMAGE_TRANSFER_MAGIC
                    " MANIFEST-LENGTH\" (at most %d): not memsharectl's sending end, or another version",
                    name, MS_IMAGE_MANIFEST_MAX);
        return NULL;
    }
    g_autofree char *mtext = g_malloc(mlen + 1);
    gsize got = 0;
    while (got < mlen) {
        ssize_t r = read(in, mtext + got, mlen - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += r;
    }
    if (got < mlen) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "image '%s': the manifest ended after %zu of %" G_GUINT64_FORMAT " bytes", name, got, mlen);
        return NULL;
    }
    g_autoptr(MsImageManifest) m = ms_image_manifest_parse(mtext, mlen, "the sent manifest", error);
    if (m == NULL)
        return NULL;
    if (strcmp(m->name, name) != 0 || (sha256 && strcmp(m->sha256, sha256) != 0) || (size && m->size != size)) {
        g_autofree char *asked = g_strdup_printf("image '%s'%s%s", name, sha256 ? " sha256 " : "",
                                                 sha256 ? sha256 : "");
        g_autofree char *bytes = size ? g_strdup_printf(" (%" G_GUINT64_FORMAT " bytes)", size) : g_strdup("");
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s%s: the sent manifest says image '%s' sha256 %s (%" G_GUINT64_FORMAT " bytes)", asked,
                    bytes, m->name, m->sha256, m->size);
        return NULL;
    }
    gboolean have = FALSE;
    if (!ms_image_store_check_receive(store, m, max_size, force, &have, error))
        return NULL;
    if (have) {
        write_all(out, "have\n", 5);
        *had = TRUE;
        return ms_image_store_lookup(store, name, NULL, error);
    }
    if (!write_all(out, "send\n", 5)) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "image '%s': cannot answer the sending end: %s", name,
                    g_strerror(errno));
        return NULL;
    }
    MsImageManifest *taken = ms_image_store_receive(store, m, in, max_size, force, error);
    if (taken == NULL)
        return NULL;
    g_autofree char *done = g_strdup_printf("received %s %s %" G_GUINT64_FORMAT "\n", taken->name, taken->sha256,
                                            taken->size);
    /* the bytes are kept: a sender that left early changes nothing */
    write_all(out, done, strlen(done));
    return taken;
}

/* ---- against another host -------------------------------------------- */

/* A sending end that exits early is a message, not a death: SIGPIPE is
 * ignored while the pipes are used. An ignored signal survives exec, so
 * the remote shell gets the default back. */
static void
child_setup(gpointer data)
{
    (void)data;
    signal(SIGPIPE, SIG_DFL);
}

/* Waits for the remote shell; FALSE with its status in ERROR. */
static gboolean
reap(GPid pid, GError **error)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    g_spawn_close_pid(pid);
    return g_spawn_check_wait_status(status, error);
}

/* The first REMOTE_ERR_MAX bytes the remote end wrote to its stderr (a
 * memfd, read from its start once the remote shell exited). */
static char *
read_bounded(int fd)
{
    GString *s = g_string_new(NULL);
    char buf[512];
    while (s->len < REMOTE_ERR_MAX) {
        ssize_t r = pread(fd, buf, MIN(sizeof buf, REMOTE_ERR_MAX - s->len), (off_t)s->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        g_string_append_len(s, buf, r);
    }
    while (s->len && g_ascii_isspace(s->str[s->len - 1]))
        g_string_truncate(s, s->len - 1);
    /* one line in a message: newlines and control bytes from the remote
     * end are shown as spaces */
    for (gsize i = 0; i < s->len; i++)
        if ((guchar)s->str[i] < 0x20 || s->str[i] == 0x7f)
            s->str[i] = ' ';
    return g_string_free(s, FALSE);
}

gboolean
ms_image_push(const char *store, const char *name, const char *host, char **rsh, const char *remote,
              gboolean force, MsImageManifest **pushed, gboolean *had, guint64 *sent, GError **error)
{
    int fd = -1;
    g_autoptr(MsImageManifest) m = ms_image_store_open_for_push(store, name, &fd, error);
    *had = FALSE;
    *sent = 0;
    if (m == NULL)
        return FALSE;
    g_autofree char *size = g_strdup_printf("%" G_GUINT64_FORMAT, m->size);
    g_autoptr(GStrvBuilder) ab = g_strv_builder_new();
    g_strv_builder_addv(ab, (const char **)rsh);
    g_strv_builder_add_many(ab, host, remote, "image", "receive", NULL);
    if (force)
        g_strv_builder_add(ab, "--force");
    /* name and digest passed ms_image_name_is_valid and the manifest
     * parser: nothing a remote shell would interpret */
    g_strv_builder_add_many(ab, m->name, m->sha256, size, NULL);
    g_auto(GStrv) av = g_strv_builder_end(ab);

    GPid pid = 0;
    int in = -1, out = -1;
    g_autoptr(GError) local = NULL;
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    if (!g_spawn_async_with_pipes(NULL, av, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, child_setup,
                                  NULL, &pid, &in, &out, NULL, &local)) {
        signal(SIGPIPE, old);
        close(fd);
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "image '%s' sha256 %s to %s: cannot run %s: %s", m->name,
                    m->sha256, host, av[0], local->message);
        return FALSE;
    }
    gboolean ok = ms_image_send_stream(m, fd, out, &in, TRUE, had, sent, &local);
    close(fd);
    if (in >= 0)
        close(in);
    close(out);
    g_autoptr(GError) serr = NULL;
    gboolean exited = reap(pid, &serr);
    signal(SIGPIPE, old);
    if (!ok || !exited) {
        /* what went wrong on the pipe first, then how the remote ended */
        g_set_error(error, MS_ERROR, local ? local->code : MS_ERROR_FAILED, "image '%s' sha256 %s to %s: %s%s%s",
                    m->name, m->sha256, host, local ? local->message : "the receiving end failed",
                    serr ? ": " : "", serr ? serr->message : "");
        return FALSE;
    }
    if (pushed)
        *pushed = g_steal_pointer(&m);
    return TRUE;
}

MsImageManifest *
ms_image_fetch(const char *store, const char *name, const char *sha256, const char *host, char **rsh,
               const char *remote, guint timeout_s, gboolean *had, GError **error)
{
    g_autofree char *what = g_strdup_printf("fetch from %s", host);
    *had = FALSE;
    if (!ms_image_name_is_valid(name) || (sha256 && strlen(sha256) != 64)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: image '%.80s': not a valid image name and digest",
                    what, name);
        return NULL;
    }
    g_autofree char *tmo = g_strdup_printf("%u", timeout_s);
    g_autoptr(GStrvBuilder) ab = g_strv_builder_new();
    /* timeout(1) ends the remote shell, whose pipes then close: the
     * receiving end sees a short stream and keeps nothing */
    if (timeout_s > 0)
        g_strv_builder_add_many(ab, "timeout", "--kill-after=10", tmo, NULL);
    g_strv_builder_addv(ab, (const char **)rsh);
    g_strv_builder_add_many(ab, host, remote, "image", "send", name, NULL);
    if (sha256)
        g_strv_builder_add(ab, sha256);
    g_auto(GStrv) av = g_strv_builder_end(ab);

    GPid pid = 0;
    int in = -1, out = -1;
    g_autoptr(GError) local = NULL;
    /* stderr to a memfd, not a pipe: a remote end (or ssh -v) that writes
     * more than a pipe holds while we wait on its stdout would block both
     * ends until the timeout */
    int err = memfd_create("memshare-fetch-stderr", MFD_CLOEXEC);
    if (err < 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: image '%s': memfd_create: %s", what, name,
                    g_strerror(errno));
        return NULL;
    }
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    if (!g_spawn_async_with_pipes_and_fds(NULL, (const char *const *)av, NULL,
                                          G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, child_setup, NULL, -1,
                                          -1, err, NULL, NULL, 0, &pid, &in, &out, NULL, &local)) {
        close(err);
        signal(SIGPIPE, old);
        g_set_error(error, MS_ERROR, MS_ERROR_FAILED, "%s: image '%s': cannot run %s: %s", what, name, av[0],
                    local->message);
        return NULL;
    }
    /* Never replace (force=FALSE): a name this host maps to another
     * digest stays as it is, whatever a peer offers. */
    g_autoptr(MsImageManifest) m =
        ms_image_receive_stream(store, name, sha256, 0, MS_IMAGE_RECEIVE_MAX, FALSE, out, in, had, &local);
    close(in);
    close(out);
    g_autoptr(GError) serr = NULL;
    (void)reap(pid, &serr);
    /* the remote end's own words (no such image, ...): the start of it */
    g_autofree char *said = read_bounded(err);
    close(err);
    signal(SIGPIPE, old);
    if (m == NULL) {
        /* a receiving-end refusal (another digest here, a bad manifest)
         * says more than the remote shell's exit status */
        if (timeout_s > 0 && serr && g_error_matches(serr, G_SPAWN_EXIT_ERROR, 124))
            g_set_error(error, MS_ERROR, MS_ERROR_TIMEOUT, "%s: %s; no answer within %u s", what,
                        local->message, timeout_s);
        else if (*said)
            g_set_error(error, MS_ERROR, local->code, "%s: %s (%s said: %s)", what, local->message, host, said);
        else
            g_set_error(error, MS_ERROR, local->code, "%s: %s%s%s", what, local->message, serr ? "; " : "",
                        serr ? serr->message : "");
        return NULL;
    }
    /* kept: it hashed to its digest; how the remote shell ended after
     * that changes nothing */
    return g_steal_pointer(&m);
}
