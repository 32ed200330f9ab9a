/* bench/balloon/randread.c: the workload of the balloon benchmark, run
 * inside the test guest (scenario randread). Owns nothing but itself: it is
 * built static by bench/balloon/run-bench.sh and copied onto the guest's data
 * disk, so it depends on libc only (no GLib in the guest).
 *
 * usage: randread FILE SECONDS INTERVAL
 * Reads 4 KiB at uniformly random 4 KiB-aligned offsets of FILE with plain
 * buffered pread() (no O_DIRECT: the guest's page cache is what is measured),
 * and every INTERVAL seconds prints one line:
 *   MS-RR i=N up=GUEST_UPTIME dt=SECONDS ops=N ops_s=X p50_us=N p99_us=N
 *         cached_kib=N memtotal_kib=N h=IDX:COUNT,...
 * h= is the interval's latency histogram (log buckets, 8 per power of two),
 * so the host can compute exact-to-the-bucket percentiles over any window of
 * intervals, not an average of percentiles. Exit 0 after SECONDS, 1 on a bad
 * argument or an I/O error (reported as MS-ERROR). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLK 4096u
/* buckets: 0..15 one per microsecond, then 8 per power of two up to 2^40 us */
#define NBUCKETS (16 + 8 * 37)

static unsigned bucket_of(uint64_t us)
{
    if (us < 16)
        return (unsigned)us;
    unsigned e = 63 - (unsigned)__builtin_clzll(us); /* e >= 4 */
    unsigned sub = (unsigned)(us >> (e - 3)) & 7u;
    unsigned idx = 16 + (e - 4) * 8 + sub;
    return idx < NBUCKETS ? idx : NBUCKETS - 1;
}

/* the middle of a bucket, in microseconds: what a percentile reports */
static uint64_t bucket_mid(unsigned idx)
{
    if (idx < 16)
        return idx;
    unsigned e = 4 + (idx - 16) / 8, sub = (idx - 16) % 8;
    uint64_t lo = (uint64_t)(8 + sub) << (e - 3);
    uint64_t width = (uint64_t)1 << (e - 3);
    return lo + width / 2;
}

static uint64_t percentile(const uint64_t *h, uint64_t total, double p)
{
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)total);
    if (rank >= total)
        rank = total - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        seen += h[i];
        if (seen > rank)
            return bucket_mid(i);
    }
    return bucket_mid(NBUCKETS - 1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: the offsets only need to be uniform, not secret */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

/* one field of /proc/meminfo in KiB, 0 if absent (the line is then still
 * printed: a missing figure must not stop the measurement) */
static unsigned long meminfo_kib(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long v = 0;
    size_t klen = strlen(key);
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtoul(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static double uptime_s(void)
{
    FILE *f = fopen("/proc/uptime", "r");
    double up = 0;
    if (f) {
        if (fscanf(f, "%lf", &up) != 1)
            up = 0;
        fclose(f);
    }
    return up;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned secs, ival;
    static uint64_t hist[NBUCKETS];
    static char buf[BLK] __attribute__((aligned(BLK)));

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 4 || parse_uint(argv[2], 86400, &secs) || parse_uint(argv[3], 3600, &ival)) {
        printf("MS-ERROR randread: usage: randread FILE SECONDS(1..86400) INTERVAL(1..3600)\n");
        return 1;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        printf("MS-ERROR randread: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)BLK) {
        printf("MS-ERROR randread: %s: smaller than one %u-byte block\n", argv[1], BLK);
        return 1;
    }
    uint64_t nblocks = (uint64_t)st.st_size / BLK;
    /* no readahead: a random reader that drags in neighbours would measure
     * the readahead policy, and fill the cache with pages nobody asked for */
    posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    rng_state = now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
    if (rng_state == 0)
        rng_state = 1;
    printf("MS-RR-START blocks=%" PRIu64 " size_kib=%" PRIu64 " secs=%u interval=%u\n",
           nblocks, nblocks * (BLK / 1024), secs, ival);

    const uint64_t t_start = now_ns(), t_end = t_start + (uint64_t)secs * 1000000000u;
    uint64_t t_ival = t_start, ops = 0;
    unsigned n = 0;
    for (;;) {
        uint64_t off = (rng_next() % nblocks) * BLK;
        uint64_t t0 = now_ns();
        ssize_t r = pread(fd, buf, BLK, (off_t)off);
        uint64_t t1 = now_ns();
        if (r != (ssize_t)BLK) {
            printf("MS-ERROR randread: pread at %" PRIu64 ": %s\n", off,
                   r < 0 ? strerror(errno) : "short read");
            return 1;
        }
        hist[bucket_of((t1 - t0) / 1000)]++;
        ops++;
        if (t1 - t_ival >= (uint64_t)ival * 1000000000u || t1 >= t_end) {
            double dt = (double)(t1 - t_ival) / 1e9;
            char hs[NBUCKETS * 24];
            size_t len = 0;
            hs[0] = '\0';
            for (unsigned i = 0; i < NBUCKETS; i++) {
                if (hist[i] == 0)
                    continue;
                int w = snprintf(hs + len, sizeof hs - len, "%s%u:%" PRIu64, len ? "," : "", i, hist[i]);
                if (w < 0 || (size_t)w >= sizeof hs - len)
                    break;
                len += (size_t)w;
            }
            printf("MS-RR i=%u up=%.1f dt=%.3f ops=%" PRIu64 " ops_s=%.0f p50_us=%" PRIu64 " p99_us=%" PRIu64
                   " cached_kib=%lu shmem_kib=%lu memtotal_kib=%lu h=%s\n",
                   n, uptime_s(), dt, ops, (double)ops / dt, percentile(hist, ops, 0.50),
                   percentile(hist, ops, 0.99), meminfo_kib("Cached"), meminfo_kib("Shmem"),
                   meminfo_kib("MemTotal"), hs);
            memset(hist, 0, sizeof hist);
            ops = 0;
            n++;
            t_ival = t1;
            if (t1 >= t_end)
                break;
        }
    }
    close(fd);
    return 0;
}
