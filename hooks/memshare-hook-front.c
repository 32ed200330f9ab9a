/* hooks/memshare-hook-front.c: the program libvirt runs for EVERY qemu
 * domain event on the host (installed as qemu.d/memshare). It owns the fast
 * path only: read the domain XML from stdin, and if the memshare policy
 * namespace does not occur in it, exit 0 at once. It links nothing but libc,
 * because the dynamic loading of glib, libxml2 (and its ICU) and libsystemd
 * costs several milliseconds that every other domain on the host would pay
 * (bench/RESULTS.md). Domains that do carry the namespace are handed to
 * memshare-hook-full (the same directory), with the XML replayed on its
 * stdin from a memfd and the same arguments. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ms-config.h"

/* Same bound as the full hook: libvirt's own limit for domain XML. */
#define MS_HOOK_FRONT_MAX_XML (10 * 1024 * 1024)

static int
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s DOMAIN OPERATION [SUB-OPERATION [EXTRA]]\n"
                        "This is a libvirt qemu hook; see memshare-hook(8).\n", argv[0]);
        return 2;
    }
    int is_prepare = strcmp(argv[2], "prepare") == 0;

    size_t cap = 256 * 1024, len = 0;
    char *buf = malloc(cap + 1);
    if (buf == NULL)
        return 0;
    for (;;) {
        if (len == cap) {
            if (cap >= MS_HOOK_FRONT_MAX_XML) {
                /* Never block a domain because of our own limits. */
                fprintf(stderr, "memshare: domain '%s': domain XML larger than %d MiB: ignored\n",
                        argv[1], MS_HOOK_FRONT_MAX_XML >> 20);
                free(buf);
                return 0;
            }
            cap *= 2;
            char *n = realloc(buf, cap + 1);
            if (n == NULL) {
                free(buf);
                return 0;
            }
            buf = n;
        }
        ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "memshare: domain '%s': cannot read the domain XML: %s\n", argv[1],
                    strerror(errno));
            free(buf);
            return 0;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (memmem(buf, len, MS_POLICY_NS, strlen(MS_POLICY_NS)) == NULL) {
        free(buf);
        return 0;
    }

    /* A policy is there: from here on a failure at prepare must stop the
     * start (the policy may say on-error='refuse'), later ones must not. */
    int fd = memfd_create("memshare-hook-xml", MFD_CLOEXEC);
    if (fd < 0 || write_all(fd, buf, len) < 0 || lseek(fd, 0, SEEK_SET) != 0 ||
        dup2(fd, STDIN_FILENO) < 0) {
        fprintf(stderr, "memshare: domain '%s': cannot hand the domain XML on: %s\n", argv[1],
                strerror(errno));
        free(buf);
        return is_prepare ? 1 : 0;
    }
    close(fd);
    free(buf);

    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        fprintf(stderr, "memshare: domain '%s': /proc/self/exe: %s\n", argv[1], strerror(errno));
        return is_prepare ? 1 : 0;
    }
    self[n] = '\0';
    char full[PATH_MAX];
    if (snprintf(full, sizeof(full), "%s/memshare-hook-full", dirname(self)) >= (int)sizeof(full))
        return is_prepare ? 1 : 0;
    execv(full, argv);
    fprintf(stderr, "memshare: domain '%s': cannot run %s: %s\n", argv[1], full, strerror(errno));
    return is_prepare ? 1 : 0;
}
