/* tests/fuzz/fuzz-glib.c: linked into every libFuzzer binary. A GLib
 * critical or warning is a broken precondition in our code (e.g. asking
 * json-glib for a member without checking it exists): turn it into abort(),
 * which libFuzzer catches and saves as a crash reproducer (a G_DEBUG fatal
 * log raises SIGTRAP, which libFuzzer does not handle). */
#include <glib.h>

#include <stdio.h>
#include <stdlib.h>

static void
fuzz_log_handler(const char *domain, GLogLevelFlags level, const char *message, gpointer data)
{
    (void)data;
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) {
        fprintf(stderr, "%s-CRITICAL: %s\n", domain ? domain : "", message);
        abort();
    }
}

__attribute__((constructor)) static void
fuzz_glib_init(void)
{
    g_log_set_default_handler(fuzz_log_handler, NULL);
}
