/* tests/tracking/test-tracking-replay.c: the tracking module (qmp-plugin/
 * ms-tracking.c) without a QEMU. Its QMP is what ms_tracking_create asks
 * (query-memdev, query-memory-devices), replayed from data/tracking-create.txt
 * (recorded from a paused q35 QEMU 7.2 with a shared image on virtio-pmem,
 * tests/qmp/record-transcripts.py images); everything else it reads is a
 * process's /proc/PID/maps and pagemap, which no transcript can stand in
 * for. So the "QEMU process" is this test: it maps an anonymous region of
 * pc.ram's recorded size, as memory-backend-ram does, and writes a known
 * number of its pages. The module must take that mapping for guest RAM,
 * leave the pmem image's backend out (it is device memory, not RAM) and
 * count exactly the written pages as used. */
#include "fake-qmp.h"
#include "ms-pagemap.h"
#include "ms-policy.h"
#include "ms-status-keys.h"
#include "ms-tracking.h"

#include <sys/mman.h>
#include <unistd.h>

#define MiB ((gsize)1024 * 1024)
#define RAM_SIZE (256 * MiB)   /* pc.ram in the transcript */
#define TOUCHED 100

static const char domain_xml[] =
    "<domain type='qemu'><name>replay</name><uuid>3c1f7a52-9d0e-4b6a-8f21-6e4d0b7c9a13</uuid>"
    "<memory unit='KiB'>262144</memory><os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>"
    "<metadata><memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'>"
    "<memshare:tracking used-pages='on' period='1s'/></memshare:policy></metadata></domain>";

static void
test_create_and_scan(void)
{
#ifdef __SANITIZE_ADDRESS__
    /* ASan's allocator maps anonymous regions of the guest RAM's size in
     * this process too: the test process can no longer stand in for a QEMU
     * with exactly one candidate mapping (the unit run without ASan and
     * the valgrind run cover this test) */
    g_test_skip("ASan's own mappings make the RAM mapping ambiguous");
    return;
#endif
    if (geteuid() != 0) {
        /* the scanner reads /proc/kpageflags, root only */
        g_test_skip("needs root");
        return;
    }
    gsize page = (gsize)sysconf(_SC_PAGESIZE);
    /* between two inaccessible pages, as QEMU places guest RAM: otherwise
     * the kernel may merge it with a neighbouring anonymous mapping */
    guint8 *area = mmap(NULL, RAM_SIZE + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(area != MAP_FAILED);
    guint8 *ram = area + page;
    g_assert_cmpint(mprotect(ram, RAM_SIZE, PROT_READ | PROT_WRITE), ==, 0);
    /* no huge pages: a write would then populate 512 pages at once */
    g_assert_cmpint(madvise(ram, RAM_SIZE, MADV_NOHUGEPAGE), ==, 0);
    for (gsize i = 0; i < TOUCHED; i++)
        ram[i * 7 * page] = (guint8)(i + 1);

    g_autoptr(GError) error = NULL;
    MsPolicy *policy = NULL;
    gboolean parsed = ms_policy_parse_domain_xml(domain_xml, -1, MS_POLICY_CHECK_NONE, NULL, &policy, NULL,
                                                 &error);
    g_assert_no_error(error);
    g_assert_true(parsed);
    g_autoptr(GPtrArray) script = ms_fake_qmp_load("tracking-create.txt");
    MsFakeQmp *fake = ms_fake_qmp_start(script, FALSE);
    MsQmpClient *client = ms_fake_qmp_connect(fake);
    MsAgentEnv env = {
        .uuid = "3c1f7a52-9d0e-4b6a-8f21-6e4d0b7c9a13",
        .name = "replay",
        .qemu_pid = getpid(),
        .qmp = client,
        .policy = policy,
        .proc_root = "/proc",
        .sys_root = "/sys",
    };
    g_assert_cmpuint(ms_tracking_module.period_ms(&env), ==, 1000);
    gpointer self = ms_tracking_module.create(&env, &error);
    g_assert_no_error(error);
    g_assert_nonnull(self);
    g_assert_cmpuint(ms_fake_qmp_commands_left(fake), ==, 0);

    g_autoptr(GKeyFile) status = g_key_file_new();
    g_assert_true(ms_tracking_module.tick(self, &env, status, &error));
    g_assert_no_error(error);
    const char *g = MS_STATUS_TRACKING;
    g_assert_cmpuint(g_key_file_get_uint64(status, g, MS_STATUS_TRACKING_TOTAL, NULL), ==, RAM_SIZE);
    g_assert_cmpuint(g_key_file_get_uint64(status, g, MS_STATUS_TRACKING_USED, NULL), ==, TOUCHED * page);
    g_assert_cmpuint(g_key_file_get_uint64(status, g, MS_STATUS_TRACKING_PRIVATE, NULL), ==, TOUCHED * page);

    ms_tracking_module.free(self);
    ms_qmp_client_free(client);
    ms_fake_qmp_finish(fake);
    ms_policy_free(policy);
    munmap(area, RAM_SIZE + 2 * page);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_setenv("MEMSHARE_CONFIG", "/nonexistent/memshare.conf", TRUE);
    g_test_add_func("/tracking/replay/create-and-scan", test_create_and_scan);
    return g_test_run();
}
