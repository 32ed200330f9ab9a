/* tests/ksm/test-kcompat.c: MEMSHARE_HIDE (qmp-plugin/ms-kcompat) makes a
 * newer kernel read as Debian 12's 6.1: the 6.18 fixture trees with the
 * knob set read exactly as the 6.1 trees do, a hidden knob cannot be
 * written, PAGEMAP_SCAN is not used, and bad values are errors naming them. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "ms-error.h"
#include "ms-guestmem.h"
#include "ms-kcompat.h"
#include "ms-ksm.h"
#include "ms-pagemap.h"

static char *
fixture(const char *name)
{
    return g_test_build_filename(G_TEST_DIST, name, NULL);
}

static void
test_parse(void)
{
    static const struct {
        const char *spec;
        gboolean ok;
        guint mask;
        const char *msg;
    } cases[] = {
        { NULL, TRUE, 0, NULL },
        { "", TRUE, 0, NULL },
        { "linux-6.1", TRUE, MS_KCOMPAT_ALL, NULL },
        { "pagemap-scan", TRUE, 1u << MS_KCOMPAT_PAGEMAP_SCAN, NULL },
        { " general-profit , ksm-advisor,", TRUE,
          (1u << MS_KCOMPAT_GENERAL_PROFIT) | (1u << MS_KCOMPAT_KSM_ADVISOR), NULL },
        { "ksm-process-profit,linux-6.1", TRUE, MS_KCOMPAT_ALL, NULL },
        { "pagemap_scan", FALSE, 0, "unknown kernel interface 'pagemap_scan' (known: linux-6.1, pagemap-scan," },
        { "6.1", FALSE, 0, "unknown kernel interface '6.1'" },
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        guint mask = 0x5a5a;
        gboolean ok = ms_kcompat_parse(cases[i].spec, &mask, &error);
        g_test_message("'%s' -> %s", cases[i].spec ? cases[i].spec : "(null)",
                       ok ? "ok" : error->message);
        g_assert_cmpint(ok, ==, cases[i].ok);
        if (ok) {
            g_assert_cmpuint(mask, ==, cases[i].mask);
        } else {
            g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
            g_assert_nonnull(strstr(error->message, cases[i].msg));
            g_assert_cmpuint(mask, ==, 0x5a5a);   /* written only on success */
        }
    }
}

/* The environment: MEMSHARE_HIDE and the older MEMSHARE_PAGEMAP_METHOD. */
static void
test_env(void)
{
    static const struct {
        const char *hide, *method;
        gboolean ok;
        guint hidden;
        gboolean require_scan;
        const char *msg;
    } cases[] = {
        { NULL, NULL, TRUE, 0, FALSE, NULL },
        { "linux-6.1", NULL, TRUE, MS_KCOMPAT_ALL, FALSE, NULL },
        { NULL, "read", TRUE, 1u << MS_KCOMPAT_PAGEMAP_SCAN, FALSE, NULL },
        { NULL, "scan", TRUE, 0, TRUE, NULL },
        { NULL, "auto", TRUE, 0, FALSE, NULL },
        { "general-profit", "read", TRUE,
          (1u << MS_KCOMPAT_GENERAL_PROFIT) | (1u << MS_KCOMPAT_PAGEMAP_SCAN), FALSE, NULL },
        { "linux-6.1", "scan", FALSE, 0, FALSE, "MEMSHARE_PAGEMAP_METHOD=scan asks for PAGEMAP_SCAN" },
        { NULL, "pread", FALSE, 0, FALSE, "MEMSHARE_PAGEMAP_METHOD='pread': must be auto, read or scan" },
        { "ksm", NULL, FALSE, 0, FALSE, "MEMSHARE_HIDE: unknown kernel interface 'ksm'" },
    };
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) error = NULL;
        ms_kcompat_set_hidden(0x1);
        if (cases[i].hide)
            g_setenv("MEMSHARE_HIDE", cases[i].hide, TRUE);
        else
            g_unsetenv("MEMSHARE_HIDE");
        if (cases[i].method)
            g_setenv("MEMSHARE_PAGEMAP_METHOD", cases[i].method, TRUE);
        else
            g_unsetenv("MEMSHARE_PAGEMAP_METHOD");
        gboolean ok = ms_kcompat_init(&error);
        g_assert_cmpint(ok, ==, cases[i].ok);
        if (ok) {
            g_assert_cmpuint(ms_kcompat_get_hidden(), ==, cases[i].hidden);
            g_assert_cmpint(ms_kcompat_required(MS_KCOMPAT_PAGEMAP_SCAN), ==, cases[i].require_scan);
        } else {
            g_assert_nonnull(strstr(error->message, cases[i].msg));
            g_assert_cmpuint(ms_kcompat_get_hidden(), ==, 0x1);  /* left as it was */
        }
    }
    g_unsetenv("MEMSHARE_HIDE");
    g_unsetenv("MEMSHARE_PAGEMAP_METHOD");
    ms_kcompat_set_hidden(0);
    g_autofree char *names = ms_kcompat_hidden_names();
    g_assert_cmpstr(names, ==, "");
    ms_kcompat_set_hidden(MS_KCOMPAT_ALL);
    g_free(names);
    names = ms_kcompat_hidden_names();
    g_assert_cmpstr(names, ==, "pagemap-scan,general-profit,ksm-process-profit,ksm-advisor,"
                               "ksm-counters,ksm-stat-fields");
    ms_kcompat_set_hidden(0);
}

static void
read_host(const char *tree, MsKsmHost *h)
{
    g_autofree char *root = fixture(tree);
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_ksm_read_host(root, h, &error));
    g_assert_no_error(error);
}

/* linux-6.1 on the 6.18 tree: the same counters present as in the 6.1
 * tree, no more, no fewer; savings from pages_sharing as on 6.1. */
static void
test_host_as_61(void)
{
    MsKsmHost h61, h618, hid;
    ms_kcompat_set_hidden(0);
    read_host("sysfs-6.1", &h61);
    read_host("sysfs-6.18", &h618);
    g_assert_cmpuint(h618.present, !=, h61.present);
    ms_kcompat_set_hidden(MS_KCOMPAT_ALL);
    read_host("sysfs-6.18", &hid);
    /* the knob does not touch a tree that is 6.1 already */
    MsKsmHost h61b;
    read_host("sysfs-6.1", &h61b);
    ms_kcompat_set_hidden(0);
    for (int c = 0; c < MS_KSM_N_COUNTERS; c++)
        g_test_message("%-36s 6.1 %d  6.18 %d  6.18 hidden %d", ms_ksm_counter_name(c),
                       MS_KSM_HAS(&h61, c), MS_KSM_HAS(&h618, c), MS_KSM_HAS(&hid, c));
    g_assert_cmpuint(hid.present, ==, h61.present);
    g_assert_true(memcmp(&h61, &h61b, sizeof(h61)) == 0);
    /* values of what stays are the 6.18 files', hidden ones read as 0 */
    for (int c = 0; c < MS_KSM_N_COUNTERS; c++)
        g_assert_cmpint(hid.value[c], ==, MS_KSM_HAS(&hid, c) ? h618.value[c] : 0);
    g_assert_cmpint(ms_ksm_host_saved_bytes(&h618, 4096), ==, -4096);    /* general_profit */
    g_assert_cmpint(ms_ksm_host_saved_bytes(&hid, 4096), ==, 2000 * 4096); /* pages_sharing */
}

/* One feature at a time hides only its files. */
static void
test_host_one(void)
{
    MsKsmHost h;
    ms_kcompat_set_hidden(1u << MS_KCOMPAT_GENERAL_PROFIT);
    read_host("sysfs-6.18", &h);
    g_assert_false(MS_KSM_HAS(&h, MS_KSM_GENERAL_PROFIT));
    g_assert_true(MS_KSM_HAS(&h, MS_KSM_ADVISOR_MODE));
    g_assert_true(MS_KSM_HAS(&h, MS_KSM_SMART_SCAN));
    ms_kcompat_set_hidden(1u << MS_KCOMPAT_KSM_ADVISOR);
    read_host("sysfs-6.18", &h);
    g_assert_true(MS_KSM_HAS(&h, MS_KSM_GENERAL_PROFIT));
    for (int c = MS_KSM_ADVISOR_MODE; c <= MS_KSM_ADVISOR_TARGET_SCAN_TIME; c++)
        g_assert_false(MS_KSM_HAS(&h, c));
    /* a process feature hides no sysfs file */
    ms_kcompat_set_hidden(1u << MS_KCOMPAT_KSM_PROCESS_PROFIT);
    read_host("sysfs-6.18", &h);
    for (int c = 0; c < MS_KSM_N_COUNTERS; c++)
        g_assert_true(MS_KSM_HAS(&h, c));
    ms_kcompat_set_hidden(0);
}

static void
read_stat(const char *tree, MsKsmStat *s)
{
    g_autofree char *root = fixture(tree);
    g_autoptr(GError) error = NULL;
    memset(s, 0, sizeof(*s));
    g_assert_true(ms_ksm_read_process(root, 100, s, &error));
    g_assert_no_error(error);
}

/* linux-6.1 on the 6.18 ksm_stat: what the 6.1 tree reads, byte for byte
 * (merging pages then come from /proc/PID/ksm_merging_pages, as on 6.1). */
static void
test_stat_as_61(void)
{
    MsKsmStat s61, s618, hid;
    ms_kcompat_set_hidden(0);
    read_stat("proc-6.1", &s61);
    read_stat("proc-6.18", &s618);
    g_assert_true(s618.present & MS_KSM_STAT_PROCESS_PROFIT);
    ms_kcompat_set_hidden(MS_KCOMPAT_ALL);
    read_stat("proc-6.18", &hid);
    ms_kcompat_set_hidden(0);
    g_assert_cmpuint(hid.present, ==, s61.present);
    /* field by field: the reader assigns whole structs, which need not
     * copy padding (valgrind flagged a memcmp over it) */
    g_assert_cmpuint(hid.rmap_items, ==, s61.rmap_items);
    g_assert_cmpuint(hid.zero_pages, ==, s61.zero_pages);
    g_assert_cmpuint(hid.merging_pages, ==, s61.merging_pages);
    g_assert_cmpint(hid.process_profit, ==, s61.process_profit);
    g_assert_cmpint(hid.merge_any, ==, s61.merge_any);
    g_assert_cmpint(hid.mergeable, ==, s61.mergeable);
    g_assert_cmpint(ms_ksm_process_contribution(&s618, 4096), ==, -200);
    g_assert_cmpint(ms_ksm_process_contribution(&hid, 4096), ==, 30 * 4096);

    /* only ksm-process-profit: the rest of the 6.18 ksm_stat stays */
    ms_kcompat_set_hidden(1u << MS_KCOMPAT_KSM_PROCESS_PROFIT);
    read_stat("proc-6.18", &hid);
    ms_kcompat_set_hidden(0);
    g_assert_cmpuint(hid.present, ==, s618.present & ~(guint)MS_KSM_STAT_PROCESS_PROFIT);
    g_assert_true(hid.mergeable);
    g_assert_cmpint(ms_ksm_process_contribution(&hid, 4096), ==, 30 * 4096);
}

/* ms_ksm_set on a hidden knob fails as on a kernel without the file, and
 * leaves the file alone. */
static void
test_set_hidden(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *tmp = g_dir_make_tmp("ms-kcompat-XXXXXX", &error);
    g_assert_no_error(error);
    g_autofree char *dir = g_build_filename(tmp, "kernel", "mm", "ksm", NULL);
    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    g_autofree char *am = g_build_filename(dir, "advisor_mode", NULL);
    g_assert_true(g_file_set_contents(am, "[none] scan-time\n", -1, NULL));
    ms_kcompat_set_hidden(1u << MS_KCOMPAT_KSM_ADVISOR);
    g_assert_false(ms_ksm_set(tmp, "advisor_mode", 1, &error));
    ms_kcompat_set_hidden(0);
    g_assert_nonnull(strstr(error->message, "advisor_mode': No such file or directory"));
    g_clear_error(&error);
    g_autofree char *v = NULL;
    g_assert_true(g_file_get_contents(am, &v, NULL, NULL));
    g_assert_cmpstr(v, ==, "[none] scan-time\n");
    g_assert_true(ms_ksm_set(tmp, "advisor_mode", 1, &error));
    g_assert_no_error(error);
    g_free(v);
    g_assert_true(g_file_get_contents(am, &v, NULL, NULL));
    g_assert_cmpstr(v, ==, "scan-time");
    g_unlink(am);
    g_rmdir(dir);
    g_autofree char *mm = g_path_get_dirname(dir);
    g_autofree char *kernel = g_path_get_dirname(mm);
    g_rmdir(mm);
    g_rmdir(kernel);
    g_rmdir(tmp);
}

/* A scanner over our own memory: AUTO takes PAGEMAP_SCAN where the kernel
 * has it and pread once it is hidden; SCAN then fails, naming the knob. */
static void
test_pagemap(void)
{
    const guint64 size = 4 << 20;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(p != MAP_FAILED);
    memset(p, 1, size / 2);
    g_autoptr(GPtrArray) blocks = g_ptr_array_new_with_free_func((GDestroyNotify)ms_guestmem_block_free);
    MsGuestMemBlock *b = g_new0(MsGuestMemBlock, 1);
    b->memdev_id = g_strdup("self");
    b->backend = MS_GUESTMEM_BACKEND_RAM;
    b->size = size;
    b->host_start = (guint64)(guintptr)p;
    b->kernel_page_size = 4096;
    g_ptr_array_add(blocks, b);

    gboolean kernel_has_scan = ms_pagemap_scan_supported();
    g_test_message("this kernel has PAGEMAP_SCAN: %s", kernel_has_scan ? "yes" : "no");
    MsPagemapMethod want[2] = { kernel_has_scan ? MS_PAGEMAP_METHOD_SCAN : MS_PAGEMAP_METHOD_READ,
                                MS_PAGEMAP_METHOD_READ };
    for (int hide = 0; hide < 2; hide++) {
        ms_kcompat_set_hidden(hide ? 1u << MS_KCOMPAT_PAGEMAP_SCAN : 0);
        g_assert_cmpint(ms_pagemap_scan_supported(), ==, hide ? FALSE : kernel_has_scan);
        g_autoptr(GError) error = NULL;
        MsPagemapOptions opts = { .method = MS_PAGEMAP_METHOD_AUTO };
        g_autoptr(MsPagemapScanner) s = ms_pagemap_scanner_new(getpid(), blocks, NULL, &opts, &error);
        g_assert_no_error(error);
        g_assert_cmpint(ms_pagemap_scanner_get_method(s), ==, want[hide]);
        MsPageCounts c;
        g_assert_true(ms_pagemap_scanner_scan(s, &c, &error));
        g_assert_no_error(error);
        g_assert_cmpint(c.method, ==, want[hide]);
        g_assert_cmpuint(c.total_pages, ==, size / 4096);
    }
    if (kernel_has_scan) {
        g_autoptr(GError) error = NULL;
        MsPagemapOptions opts = { .method = MS_PAGEMAP_METHOD_SCAN };
        g_autoptr(MsPagemapScanner) s = ms_pagemap_scanner_new(getpid(), blocks, NULL, &opts, &error);
        g_assert_null(s);
        g_assert_error(error, MS_PAGEMAP_ERROR, MS_PAGEMAP_ERROR_NOT_SUPPORTED);
        g_assert_nonnull(strstr(error->message, "hidden by MEMSHARE_HIDE"));
    }
    ms_kcompat_set_hidden(0);
    munmap(p, size);
}

/* The report: [kernel] names the paths taken (fixture trees for KSM). */
static void
test_report(void)
{
    g_autofree char *sys618 = fixture("sysfs-6.18");
    g_autofree char *proc618 = fixture("proc-6.18");
    for (int hide = 0; hide < 2; hide++) {
        ms_kcompat_set_hidden(hide ? MS_KCOMPAT_ALL : 0);
        g_autoptr(GKeyFile) kf = g_key_file_new();
        ms_kcompat_report(sys618, proc618, 100, kf);
        g_autofree char *hidden = g_key_file_get_string(kf, "kernel", "hidden", NULL);
        g_autofree char *pm = g_key_file_get_string(kf, "kernel", "pagemap", NULL);
        g_autofree char *saved = g_key_file_get_string(kf, "kernel", "ksm-saved", NULL);
        g_autofree char *contrib = g_key_file_get_string(kf, "kernel", "ksm-contribution", NULL);
        gboolean advisor = g_key_file_get_boolean(kf, "kernel", "ksm-advisor", NULL);
        if (hide) {
            g_assert_cmpstr(hidden, ==, "pagemap-scan,general-profit,ksm-process-profit,ksm-advisor,"
                                        "ksm-counters,ksm-stat-fields");
            g_assert_cmpstr(pm, ==, "read");
            g_assert_cmpstr(saved, ==, "pages_sharing");
            g_assert_cmpstr(contrib, ==, "ksm_merging_pages");
            g_assert_false(advisor);
        } else {
            g_assert_cmpstr(hidden, ==, "");
            g_assert_cmpstr(pm, ==, ms_pagemap_scan_supported() ? "scan" : "read");
            g_assert_cmpstr(saved, ==, "general_profit");
            g_assert_cmpstr(contrib, ==, "ksm_process_profit");
            g_assert_true(advisor);
        }
    }
    ms_kcompat_set_hidden(0);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/kcompat/parse", test_parse);
    g_test_add_func("/kcompat/env", test_env);
    g_test_add_func("/kcompat/host-as-6.1", test_host_as_61);
    g_test_add_func("/kcompat/host-one-feature", test_host_one);
    g_test_add_func("/kcompat/stat-as-6.1", test_stat_as_61);
    g_test_add_func("/kcompat/set-hidden", test_set_hidden);
    g_test_add_func("/kcompat/pagemap", test_pagemap);
    g_test_add_func("/kcompat/report", test_report);
    return g_test_run();
}
