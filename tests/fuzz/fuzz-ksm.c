/* tests/fuzz/fuzz-ksm.c: libFuzzer target for the host files the agent
 * parses: KSM sysfs counters, /proc/PID/ksm_stat, and the used-page map
 * format that memsharectl reads back (docs/usedmap.md). sysfs is trusted
 * more than QEMU, but a kernel change of format must give an error, never a
 * crash; the usedmap file may come from anywhere. */
#include "ms-ksm.h"
#include "ms-usedmap.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    gint64 v;
    MsKsmStat st;
    g_autoptr(GError) e1 = NULL, e2 = NULL, e3 = NULL, e4 = NULL;

    (void)ms_ksm_parse_counter(buf, size, "fuzz", &v, &e1);
    (void)ms_ksm_parse_advisor_mode(buf, size, "fuzz", &v, &e2);
    (void)ms_ksm_stat_parse(buf, size, "fuzz", &st, &e3);
    g_autoptr(MsUsedmap) map = ms_usedmap_parse(data, size, &e4);
    return 0;
}
