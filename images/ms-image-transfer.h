/* images/ms-image-transfer.h: moving an image from one host's store to
 * another's through a remote shell's pipe (ssh, or any command taking
 * HOST COMMAND... as rsync's -e does), in both directions:
 *   push   this host sends; the other end runs `memsharectl image receive`
 *   fetch  this host receives; the other end runs `memsharectl image send`
 *          (the hook's <migration missing-images='fetch'/> at an incoming
 *          migration, and `memsharectl image fetch`)
 * One protocol, one sending end and one receiving end, each on a pair of
 * file descriptors (a child's pipes, or stdin and stdout):
 *   sender -> receiver  "memshare-image 1 MLEN\n", then the manifest (MLEN
 *                       bytes of JSON, at most MS_IMAGE_MANIFEST_MAX)
 *   receiver -> sender  "have\n": the name maps to that digest already and
 *                       its blob verifies; nothing is sent.
 *                       "send\n": the sender sends exactly SIZE bytes of the
 *                       blob and closes its end.
 *   receiver -> sender  "received NAME SHA256 SIZE\n" once the bytes hash to
 *                       SHA256 and the name is taken.
 * A refusal is the refusing end's message on stderr and a non-zero exit.
 * The receiving end keeps nothing that does not hash to the manifest's
 * digest (ms_image_store_receive), so a peer can only offer content, never
 * choose what a name means beyond what the receiving end asked for. */
#pragma once

#include <glib.h>
#include "ms-image-store.h"

G_BEGIN_DECLS

#define MS_IMAGE_TRANSFER_MAGIC "memshare-image 1"

/* The host a remote shell is given: DEST itself, or the user@host of a
 * libvirt URI (qemu+ssh://root@b/system). Only a host name's characters
 * pass, and not a leading '-' (ssh would take -oProxyCommand=... as an
 * option). */
char *ms_image_transfer_host(const char *dest, GError **error);

/* RSH split on white space ("ssh" when NULL); an error when it is empty. */
GStrv ms_image_transfer_rsh(const char *rsh, GError **error);

/* REMOTE (the other host's memsharectl) is handed to a remote shell: a
 * path without white space or shell characters. */
gboolean ms_image_transfer_remote_is_valid(const char *remote, GError **error);

/* The sending end: M and its blob BLOB_FD to the receiving end (answers
 * read from IN, manifest and bytes written to *OUT, which is closed and set
 * to -1 once the bytes are out: the receiver reads to EOF to refuse a
 * longer stream). WAIT_RESULT: then wait for the "received" line (push,
 * which reports it). The remote `send` of a fetch does not wait: it must
 * exit for its stdout to reach EOF through whatever holds it on the way
 * (ssh, timeout(1), a wrapper script), and the receiving end is the one
 * that reports. *HAD: the receiver had it, nothing sent. *SENT: bytes
 * sent. The error says what failed, without image or host (the caller
 * names them). */
gboolean ms_image_send_stream(const MsImageManifest *m, int blob_fd, int in, int *out, gboolean wait_result,
                              gboolean *had, guint64 *sent, GError **error);

/* The receiving end: reads the manifest from IN and checks it is image
 * NAME, with digest SHA256 and SIZE bytes when those are given (NULL, 0:
 * whatever the sender has under NAME), then answers on OUT and keeps the
 * bytes (ms_image_store_receive: at most MAX_SIZE, a name mapped to
 * another digest only with FORCE). Returns the manifest as stored; *HAD
 * when nothing had to be sent. */
MsImageManifest *ms_image_receive_stream(const char *store, const char *name, const char *sha256, guint64 size,
                                         guint64 max_size, gboolean force, int in, int out, gboolean *had,
                                         GError **error);

/* push: runs RSH HOST REMOTE image receive [--force] NAME SHA256 SIZE and
 * sends image NAME of STORE. The remote's stderr is passed through. */
gboolean ms_image_push(const char *store, const char *name, const char *host, char **rsh, const char *remote,
                       gboolean force, MsImageManifest **pushed, gboolean *had, guint64 *sent, GError **error);

/* fetch: runs RSH HOST REMOTE image send NAME [SHA256] (under timeout(1)
 * when TIMEOUT_S > 0: a peer that hangs must not hang an incoming
 * migration) and receives the image into STORE. Never replaces a name that
 * maps to another digest. The error names image, digest (when asked for)
 * and host, and quotes what the remote end said on stderr. */
MsImageManifest *ms_image_fetch(const char *store, const char *name, const char *sha256, const char *host,
                                char **rsh, const char *remote, guint timeout_s, gboolean *had, GError **error);

G_END_DECLS
