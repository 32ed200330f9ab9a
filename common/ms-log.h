/* common/ms-log.h: logging for memshare programs. Every message carries the
 * domain name (MEMSHARE_DOMAIN field in journald, a "domain 'x': " prefix on
 * plain lines) so a host with many agents stays readable. Where journald runs
 * we send structured fields; elsewhere plain lines go to stderr, which the
 * detached agent has redirected to its log file. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

void ms_log_init(const char *program, const char *domain_name, gboolean verbose);
void ms_log_set_domain(const char *domain_name);

G_END_DECLS
