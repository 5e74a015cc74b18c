/* TLS on the protocol port: the certificate, its reload, the failure results; see tls.h. */
#include "tls.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* The Python server's context (ssl.SSLContext(PROTOCOL_TLS_SERVER)): its TLS 1.2 cipher list
 * and options, so both servers offer the same. */
#define CIPHERS "@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS" \
                ":!SHA1:!AESCCM"
#define SESSION_ID_CONTEXT "points"

/* ---- describing OpenSSL's errors ------------------------------------------------------ */

/* The library's short name, as Python's ssl module prints it ("[SSL: ...]"). */
static const char *lib_name(unsigned long e)
{
    switch (ERR_GET_LIB(e)) {
    case ERR_LIB_SSL: return "SSL";
    case ERR_LIB_X509: return "X509";
    case ERR_LIB_PEM: return "PEM";
    case ERR_LIB_ASN1: return "ASN1";
    case ERR_LIB_EVP: return "EVP";
    case ERR_LIB_RSA: return "RSA";
    case ERR_LIB_EC: return "EC";
    case ERR_LIB_X509V3: return "X509V3";
    case ERR_LIB_PKCS12: return "PKCS12";
    case ERR_LIB_PROV: return "PROV";
    case ERR_LIB_BIO: return "BIO";
    default: {
        const char *l = ERR_lib_error_string(e);
        return l ? l : "OpenSSL";
    }
    }
}

/* "wrong version number" -> "WRONG_VERSION_NUMBER"; "" when OpenSSL has no reason string. */
static void reason_name(char *buf, size_t cap, unsigned long e)
{
    const char *r = ERR_reason_error_string(e);
    size_t i = 0;
    for (; r && r[i] && i + 1 < cap; i++)
        buf[i] = r[i] == ' ' ? '_' : (char)toupper((unsigned char)r[i]);
    buf[i] = '\0';
}

void tls_describe(char *buf, size_t cap, unsigned long err, long verify_result)
{
    if (err == 0) {
        snprintf(buf, cap, "unknown TLS error");
        return;
    }
    if (ERR_SYSTEM_ERROR(err)) {
        snprintf(buf, cap, "%s", strerror(ERR_GET_REASON(err)));
        return;
    }
    const char *r = ERR_reason_error_string(err);
    char name[128];
    reason_name(name, sizeof name, err);
    if (!r || !name[0]) {
        snprintf(buf, cap, "[%s] error %lu", lib_name(err), (unsigned long)ERR_GET_REASON(err));
        return;
    }
    if (verify_result != 0 && strcmp(name, "CERTIFICATE_VERIFY_FAILED") == 0)
        snprintf(buf, cap, "%s: [%s: %s] %s: %s", name, lib_name(err), name, r,
                 X509_verify_cert_error_string(verify_result));
    else
        snprintf(buf, cap, "%s: [%s: %s] %s", name, lib_name(err), name, r);
}

/* Describe what the error queue holds (a system error first: a file that cannot be opened),
 * and empty it. */
static void describe_queue(char *buf, size_t cap)
{
    unsigned long e, last = 0, sys = 0;
    while ((e = ERR_get_error()) != 0) {
        if (ERR_SYSTEM_ERROR(e) && !sys)
            sys = e;
        last = e;
    }
    tls_describe(buf, cap, sys ? sys : last, 0);
}

enum pts_tls_result tls_failure_result(unsigned long err)
{
    char name[128];
    reason_name(name, sizeof name, err);
    if (!name[0])
        return PTS_TLS_PROTOCOL;
    for (const struct pts_tls_failure *f = pts_tls_failure_results; f->reason; f++) {
        if (strcmp(f->reason, name) != 0)
            continue;
        const char *const *series = pts_metrics[PTS_M_TLS_HANDSHAKES_TOTAL].series;
        for (int i = 0; series[i]; i++)
            if (strcmp(series[i], f->result) == 0)
                return (enum pts_tls_result)i;
        break;
    }
    return PTS_TLS_PROTOCOL;
}

const char *tls_result_name(enum pts_tls_result r)
{
    if ((int)r < 0 || r >= PTS_TLS_RESULTS_COUNT)
        return "protocol";
    return pts_metrics[PTS_M_TLS_HANDSHAKES_TOTAL].series[r];
}

/* ---- the context ---------------------------------------------------------------------- */

static void identity(const char *path, struct tls_identity *id)
{
    struct stat st;
    memset(id, 0, sizeof *id);
    if (!path || !path[0] || stat(path, &st) != 0) /* follows a mounted Secret's links */
        return;
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    id->size = (uint64_t)st.st_size;
    id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

static void identities(const struct tls *t, struct tls_identity ids[TLS_FILES])
{
    identity(t->cert_file, &ids[0]);
    identity(t->key_file, &ids[1]);
    identity(t->client_ca_file, &ids[2]);
}

static int same(const struct tls_identity a[TLS_FILES], const struct tls_identity b[TLS_FILES])
{
    return memcmp(a, b, sizeof(struct tls_identity) * TLS_FILES) == 0;
}

/* A new context from the files; NULL with err set. */
static SSL_CTX *load(const struct tls *t, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        describe_queue(err, errlen);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* An idle TLS connection gives its record buffers back (about 34 KiB each): thousands of
     * connections waiting for a request must not cost a small pod its memory. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(ctx, CIPHERS) != 1
        || SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SESSION_ID_CONTEXT,
                                          sizeof SESSION_ID_CONTEXT - 1) != 1
        || SSL_CTX_use_certificate_chain_file(ctx, t->cert_file) != 1
        || SSL_CTX_use_PrivateKey_file(ctx, t->key_file, SSL_FILETYPE_PEM) != 1
        || SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    if (t->client_ca_file && t->client_ca_file[0]) {
        if (SSL_CTX_load_verify_locations(ctx, t->client_ca_file, NULL) != 1)
            goto fail;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
fail:
    describe_queue(err, errlen);
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_init(struct tls *t, const struct pts_server_config *cfg, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->cert_file = cfg->tls_cert_file;
    t->key_file = cfg->tls_key_file;
    t->client_ca_file = cfg->tls_client_ca_file;
    identities(t, t->seen);
    t->ctx = load(t, err, errlen);
    return t->ctx ? 0 : -1;
}

void tls_destroy(struct tls *t)
{
    if (t->ctx)
        SSL_CTX_free(t->ctx);
    t->ctx = NULL;
}

int tls_check(struct tls *t)
{
    struct tls_identity now[TLS_FILES];
    identities(t, now);
    if (same(now, t->seen) || (t->have_failed && same(now, t->failed)))
        return -1;
    SSL_CTX *ctx = load(t, t->error, sizeof t->error);
    if (!ctx) {
        memcpy(t->failed, now, sizeof now); /* tried again when the files change */
        t->have_failed = 1;
        return 0;
    }
    memcpy(t->seen, now, sizeof now);
    t->have_failed = 0;
    t->error[0] = '\0';
    SSL_CTX_free(t->ctx); /* the connections using it hold their own reference */
    t->ctx = ctx;
    return 1;
}

SSL *tls_new_conn(struct tls *t)
{
    SSL *ssl = SSL_new(t->ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (!ssl || !rbio || !wbio) {
        SSL_free(ssl);
        BIO_free(rbio);
        BIO_free(wbio);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(ssl, rbio, wbio); /* ssl owns them now */
    SSL_set_accept_state(ssl);
    return ssl;
}
