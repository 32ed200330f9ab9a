/* common/ms-util.c: bounded reads, atomic writes, strict parsing, runtime
 * layout. See ms-util.h for the contracts. */
#include "ms-config.h"
#include "ms-util.h"
#include "ms-error.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

gboolean
ms_file_read_bounded(const char *path, gsize max, char **contents,
                     gsize *length, GError **error)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
                    "cannot open '%s': %s", path, g_strerror(e));
        return FALSE;
    }
    /* /proc and /sys files report size 0: read until EOF, up to max+1 so
     * that an oversized file is detected rather than silently truncated. */
    g_autoptr(GByteArray) buf = g_byte_array_new();
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
                        "cannot read '%s': %s", path, g_strerror(e));
            return FALSE;
        }
        if (n == 0)
            break;
        if (buf->len + (gsize)n > max) {
            close(fd);
            g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG,
                        "'%s' is larger than the %" G_GSIZE_FORMAT " bytes allowed",
                        path, max);
            return FALSE;
        }
        g_byte_array_append(buf, (guint8 *)chunk, n);
    }
    close(fd);
    if (length)
        *length = buf->len;
    g_byte_array_append(buf, (const guint8 *)"", 1);
    if (contents)
        *contents = (char *)g_byte_array_steal(buf, NULL);
    return TRUE;
}

gboolean
ms_file_write_atomic(const char *path, const char *data, gssize len,
                     mode_t mode, GError **error)
{
    if (len < 0)
        len = strlen(data);
    g_autofree char *tmp = g_strdup_printf("%s.XXXXXX", path);
    int fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
                    "cannot create temporary file for '%s': %s", path, g_strerror(e));
        return FALSE;
    }
    gssize off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
                        "cannot write '%s': %s", path, g_strerror(e));
            return FALSE;
        }
        off += n;
    }
    /* fchmod: mkstemp's mode is filtered by the umask. */
    if (fchmod(fd, mode) < 0 || fsync(fd) < 0 || close(fd) < 0) {
        int e = errno;
        unlink(tmp);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
                    "cannot finish '%s': %s", path, g_strerror(e));
        return FALSE;
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
                    "cannot rename into '%s': %s", path, g_strerror(e));
        return FALSE;
    }
    return TRUE;
}

gboolean
ms_parse_u64(const char *str, const char *what, guint64 *out, GError **error)
{
    if (str == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "%s: missing value", what);
        return FALSE;
    }
    const char *p = str;
    while (g_ascii_isspace(*p))
        p++;
    if (!g_ascii_isdigit(*p)) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: '%.64s' is not a non-negative integer", what, str);
        return FALSE;
    }
    errno = 0;
    char *end = NULL;
    guint64 v = g_ascii_strtoull(p, &end, 10);
    if (errno == ERANGE) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: '%.64s' is out of range", what, str);
        return FALSE;
    }
    while (end && g_ascii_isspace(*end))
        end++;
    if (end == NULL || *end != '\0') {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "%s: '%.64s' has trailing garbage", what, str);
        return FALSE;
    }
    *out = v;
    return TRUE;
}

gboolean
ms_uuid_is_valid(const char *uuid)
{
    if (uuid == NULL || strlen(uuid) != 36)
        return FALSE;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (uuid[i] != '-')
                return FALSE;
        } else if (!g_ascii_isxdigit(uuid[i])) {
            return FALSE;
        }
    }
    return TRUE;
}

const char *
ms_runtime_dir(void)
{
    static char *dir;
    if (dir == NULL) {
        const char *env = g_getenv("MEMSHARE_RUNTIME_DIR");
        dir = env && *env ? g_strdup(env) : g_build_filename(MS_RUNSTATEDIR, "memshare", NULL);
    }
    return dir;
}

char *
ms_domain_runtime_dir(const char *uuid)
{
    g_return_val_if_fail(ms_uuid_is_valid(uuid), NULL);
    g_autofree char *lower = g_ascii_strdown(uuid, -1);
    return g_build_filename(ms_runtime_dir(), "domains", lower, NULL);
}

const char *
ms_config_path(void)
{
    static char *path;
    if (path == NULL) {
        const char *env = g_getenv("MEMSHARE_CONFIG");
        path = env && *env ? g_strdup(env)
                           : g_build_filename(MS_SYSCONFDIR, "memshare", "memshare.conf", NULL);
    }
    return path;
}

GKeyFile *
ms_config_load(GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) local = NULL;
    if (!g_key_file_load_from_file(kf, ms_config_path(), G_KEY_FILE_NONE, &local)) {
        if (g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
            return g_steal_pointer(&kf);
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "config '%s': %s",
                    ms_config_path(), local->message);
        return NULL;
    }
    return g_steal_pointer(&kf);
}

char *
ms_config_get_string(GKeyFile *kf, const char *group, const char *key, const char *def)
{
    g_autofree char *v = kf ? g_key_file_get_string(kf, group, key, NULL) : NULL;
    for (char *p = v ? strchr(v, '#') : NULL; p; p = strchr(p + 1, '#')) {
        /* a comment starts the value or follows a blank; '#' inside a
         * value (a URI's fragment, a file name) is kept */
        if (p == v || g_ascii_isspace(p[-1])) {
            *p = '\0';
            break;
        }
    }
    if (v != NULL)
        g_strstrip(v);
    if (v != NULL && *v != '\0')
        return g_steal_pointer(&v);
    return g_strdup(def);
}

pid_t
ms_pidfile_read_live(const char *path)
{
    g_autofree char *buf = NULL;
    guint64 pid = 0;
    if (!ms_file_read_bounded(path, 64, &buf, NULL, NULL))
        return 0;
    if (!ms_parse_u64(buf, path, &pid, NULL) || pid < 2 || pid > G_MAXINT32)
        return 0;
    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        return 0;
    return (pid_t)pid;
}

char *
ms_printable(const char *value)
{
    GString *s = g_string_new(NULL);
    for (const char *p = value; *p && s->len < 64; p++)
        g_string_append_c(s, g_ascii_isprint(*p) ? *p : '?');
    if (strlen(value) > 64)
        g_string_append(s, "...");
    return g_string_free(s, FALSE);
}
