/* TLS on the protocol port (docs/design.md section 9): the server's certificate, reloaded when
 * its files change, and what a failed handshake is counted as. Mirror: points_server/tls.py.
 *
 * A connection keeps its raw non-blocking socket (conn.c); TLS runs in an SSL object between
 * two memory BIOs, so the event loop, the states and the deadlines are the plaintext ones:
 * bytes from the socket go into the object, plaintext comes out, and what the object writes
 * (handshake, reply, close_notify) is sent as any reply would be.
 *
 * Certificates: TLS_CERT_FILE + TLS_KEY_FILE, with TLS_CLIENT_CA_FILE for mutual TLS (a client
 * certificate is then required). TLS 1.2 at least, 1.3 preferred (OpenSSL's order).
 * tls_check runs every CONN_TLS_RELOAD_CHECK_SECONDS: when a file's identity (device, inode,
 * size, modification time) changed, the files are read again into a new context for the next
 * connections; a failed reload keeps the previous one, and is reported once per state of the
 * files. All of it runs on the event loop's thread. */
#ifndef PTS_TLS_H
#define PTS_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "points_protocol.h"

struct ssl_st;
struct ssl_ctx_st;

#define TLS_FILES 3 /* certificate, key, client CA */

struct tls_identity {
    uint64_t dev, ino, size;
    int64_t mtime_ns;
};

struct tls {
    struct ssl_ctx_st *ctx; /* the context new connections get */
    const char *cert_file, *key_file, *client_ca_file; /* the settings' strings */
    struct tls_identity seen[TLS_FILES];   /* the files of ctx */
    struct tls_identity failed[TLS_FILES]; /* the files of the last failed reload */
    int have_failed;
    char error[512]; /* why the last reload failed */
};

/* Load the certificate of cfg (TLS_CERT_FILE must be set). 0, or -1 with err set to why
 * (as the Python server words it). */
int tls_init(struct tls *t, const struct pts_server_config *cfg, char *err, size_t errlen);
void tls_destroy(struct tls *t);

/* Read the files again if they changed: 1 (reloaded), 0 (changed but not loadable: the previous
 * context stays, t->error says why; the same files are not tried again, so one bad change is
 * reported once) or -1 (unchanged). */
int tls_check(struct tls *t);

/* A server-side SSL object over two fresh memory BIOs (read: rbio, write: wbio) with t's
 * current context; NULL when out of memory. */
struct ssl_st *tls_new_conn(struct tls *t);

/* The points_tls_handshakes_total result of a failed handshake whose OpenSSL error is err
 * (ERR_peek_last_error()): its reason in upper case with "_" for spaces, looked up in
 * pts_tls_failure_results; PTS_TLS_PROTOCOL when not listed. */
enum pts_tls_result tls_failure_result(unsigned long err);
/* "ok", "not-tls", ... (the label value). */
const char *tls_result_name(enum pts_tls_result r);
/* Describe OpenSSL error err as the Python server does ("REASON: [LIB: REASON] reason"); a
 * system error is its strerror. verify_result: SSL_get_verify_result for a
 * CERTIFICATE_VERIFY_FAILED (appended), or 0. */
void tls_describe(char *buf, size_t cap, unsigned long err, long verify_result);

#endif
