/* common/ms-util.h: small helpers shared by every memshare program: bounded
 * file reads (all /proc, /sys and runtime files are untrusted in size),
 * atomic writes (a crash never leaves half a state file), strict number
 * parsing, UUID validation, the runtime-directory layout and memshare.conf. */
#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Upper bound for any small file we read from /proc, /sys or /run. */
#define MS_SMALL_FILE_MAX (1024 * 1024)

gboolean ms_file_read_bounded(const char *path, gsize max, char **contents,
                              gsize *length, GError **error);
gboolean ms_file_write_atomic(const char *path, const char *data, gssize len,
                              mode_t mode, GError **error);

/* Strict: whole string must be a decimal number (surrounding whitespace
 * allowed), no sign, no overflow. "what" names the value in the error. */
gboolean ms_parse_u64(const char *str, const char *what, guint64 *out,
                      GError **error);

/* A copy of value fit for a message, a status file or a log: at most 64
 * characters, each one not printable ASCII shown as '?', "..." when cut. A
 * value the user wrote cannot then hide in (or break) the text around it. */
char *ms_printable(const char *value);

/* libvirt's canonical form: 36 chars, lowercase or uppercase hex, dashes at
 * 8-4-4-4-12. Anything else is refused before it can become a path. */
gboolean ms_uuid_is_valid(const char *uuid);

/* RUNSTATEDIR/memshare unless MEMSHARE_RUNTIME_DIR overrides it (tests). */
const char *ms_runtime_dir(void);
/* ms_runtime_dir()/domains/UUID; UUID must be valid. */
char *ms_domain_runtime_dir(const char *uuid);

/* SYSCONFDIR/memshare/memshare.conf unless MEMSHARE_CONFIG overrides it. */
const char *ms_config_path(void);
/* Loads the config; a missing file is not an error (returns an empty file). */
GKeyFile *ms_config_load(GError **error);
/* One reading of a setting for every program (hook, agent): the value of
 * [group] key with surrounding blanks stripped and a trailing comment (blanks
 * then '#', as in README's example; GKeyFile itself knows only whole-line
 * comments) removed; a missing or empty value gives a copy of def (which may
 * be NULL). */
char *ms_config_get_string(GKeyFile *kf, const char *group, const char *key, const char *def);

/* Reads a pid file and checks that the process exists. Returns 0 when the
 * file is missing or stale. */
pid_t ms_pidfile_read_live(const char *path);

G_END_DECLS
