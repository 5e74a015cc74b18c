/*
 * c-client: ask a points server for its latest points and print the reply line.
 *
 * Behaviour (docs/design.md, section 8; the Python client does the same):
 *   - target from TARGET_HOST / TARGET_PORT, overridden by --target-host / --target-port;
 *   - every attempt resolves the name (IPv4 and IPv6), opens a fresh non-blocking socket per
 *     address, connects within CLIENT_TIMEOUT, sends "REQUEST_LATEST_POINTS\n" and reads until
 *     the server closes (at most 4 KiB) within CLIENT_TIMEOUT;
 *   - a reply line goes to stdout, exit 0;
 *   - refused / unreachable / timed out / name not resolved / closed without a reply / a
 *     retryable ERROR: retry after CLIENT_RETRY_DELAY, doubling up to CLIENT_RETRY_MAX_DELAY, at
 *     most CLIENT_RETRIES attempts in all, one progress line per failed attempt on stderr;
 *   - a non-retryable ERROR or an unexpected reply: message on stderr, exit 1 at once;
 *   - retries exhausted: message naming the target and the last reason, exit 1;
 *   - a bad setting or flag: message on stderr, exit 2.
 *
 * TLS (design.md section 9) when TLS_CA_FILE is set, with OpenSSL, as the Python client does
 * with its ssl module (same context settings, same outcomes, same messages): the server's
 * certificate must chain to those CAs and carry TLS_SERVER_NAME (default TARGET_HOST; an IP
 * address is checked against the certificate's IP addresses and sent without SNI);
 * TLS_CLIENT_CERT_FILE/KEY_FILE are presented when the server asks; TLS 1.2 at least. The
 * context is built once (a file that cannot be loaded: exit 2). A certificate that does not
 * verify, or a server that does not speak TLS, ends the client at once (exit 1), never falling
 * back to plaintext; a handshake cut short (EOF, reset, timeout) is retried like a failed
 * connect. An EOF without close_notify counts as the end of the reply (ragged EOF allowed).
 *
 * Names, the request, the error codes and the settings come from protocol/points_protocol.h
 * (rendered from protocol/protocol.toml). No global state: everything lives in main's frame.
 */

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "points_protocol.h"
#include "pts_reply.h"
#include "pts_settings.h"

#ifndef PTS_VERSION
#define PTS_VERSION "unknown"
#endif

#define PROG "c-client"
#define REPLY_CAP 4096         /* bytes read at most from one connection */
#define REASON_MAX 512         /* longest failure reason kept */

#define EXIT_REPLY 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2


enum attempt_outcome {
    ATTEMPT_REPLY, /* reply line received */
    ATTEMPT_RETRY, /* transient failure: try again */
    ATTEMPT_FATAL  /* error reply or unexpected answer: give up now */
};

struct attempt {
    enum attempt_outcome outcome;
    char reason[REASON_MAX];    /* why the attempt failed */
    char reply[REPLY_CAP + 1];  /* bytes received, NUL-terminated */
    size_t reply_len;
    size_t line_len;            /* length of the first line, '\n' included */
};

/* ---------------------------------------------------------------------------------------- */
/* Time                                                                                       */

static int64_t now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        return 0; /* cannot happen with CLOCK_MONOTONIC; a zero clock only shortens waits */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (0 when passed), as poll() wants them. */
static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static int64_t seconds_to_ms(double s)
{
    int64_t ms = (int64_t)(s * 1000.0 + 0.5);
    return ms < 1 ? 1 : ms;
}

static void sleep_seconds(double s)
{
    struct timespec req, rem;
    req.tv_sec = (time_t)s;
    req.tv_nsec = (long)((s - (double)req.tv_sec) * 1e9);
    if (req.tv_nsec >= 1000000000L)
        req.tv_nsec = 999999999L;
    while (nanosleep(&req, &rem) == -1 && errno == EINTR)
        req = rem;
}

/* ---------------------------------------------------------------------------------------- */
/* Settings: protocol/c/pts_settings.c reads pts_client_settings (environment, then flags)     */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " [--setting VALUE | --setting=VALUE]... [--check-config] [--help]\n"
            "                [--version]\n"
            "\n"
            "Ask a points server for its latest points and print the reply line.\n"
            "Every setting is an environment variable; its flag overrides it.\n"
            "\n");
    pts_settings_help(out, pts_client_settings, PTS_CSET_COUNT);
    fprintf(out,
            "\n"
            "exit status: 0 reply printed, 1 error reply, unexpected answer or retries\n"
            "exhausted, 2 bad setting\n");
}

/* ---------------------------------------------------------------------------------------- */
/* One attempt                                                                                */

static void fail(struct attempt *at, enum attempt_outcome outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct attempt *at, enum attempt_outcome outcome, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(at->reason, sizeof at->reason, fmt, ap);
    va_end(ap);
    at->outcome = outcome;
}

/* "host:port" or "[v6]:port" of a resolved address, for messages. */
static void format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
    char host[64], serv[8]; /* numeric: an IPv6 address with a scope fits */
    int rc = getnameinfo(sa, len, host, sizeof host, serv, sizeof serv,
                         NI_NUMERICHOST | NI_NUMERICSERV);
    if (rc != 0) {
        snprintf(out, outlen, "?");
        return;
    }
    if (sa->sa_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%s", host, serv);
    else
        snprintf(out, outlen, "%s:%s", host, serv);
}

/* Connect a fresh non-blocking socket to ai within timeout_ms. Returns the descriptor, or -1
 * with the reason in err (the socket is closed on every failure path). */
static int connect_addr(const struct addrinfo *ai, int64_t timeout_ms, char *err, size_t errlen)
{
    char addr[80];
    format_addr(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr);

    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (fd == -1) {
        snprintf(err, errlen, "%s: socket: %s", addr, strerror(errno));
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS && errno != EINTR) {
        snprintf(err, errlen, "%s: connect: %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int wait = remaining_ms(deadline);
        if (wait == 0) {
            snprintf(err, errlen, "%s: connect timed out after %.3g s", addr,
                     (double)timeout_ms / 1000.0);
            close(fd);
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
        int rc = poll(&p, 1, wait);
        if (rc == -1) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "%s: poll: %s", addr, strerror(errno));
            close(fd);
            return -1;
        }
        if (rc == 0)
            continue; /* the deadline check above ends the wait */
        int soerr = 0;
        socklen_t optlen = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &optlen) == -1) {
            snprintf(err, errlen, "%s: getsockopt: %s", addr, strerror(errno));
            close(fd);
            return -1;
        }
        if (soerr != 0) {
            snprintf(err, errlen, "%s: connect: %s", addr, strerror(soerr));
            close(fd);
            return -1;
        }
        return fd;
    }
}

/* Resolve cfg's target and connect to the first address that accepts. -1: at says why. */
static int open_connection(const struct pts_client_config *cfg, struct attempt *at)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV; /* no AI_ADDRCONFIG: it hides loopback-only hosts */

    char port[24];
    snprintf(port, sizeof port, "%ld", cfg->target_port);
    int rc = getaddrinfo(cfg->target_host, port, &hints, &res);
    if (rc != 0) {
        fail(at, ATTEMPT_RETRY, "cannot resolve \"%s\": %s", cfg->target_host,
             rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    char err[REASON_MAX] = "no address";
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
        fd = connect_addr(ai, seconds_to_ms(cfg->client_timeout), err, sizeof err);
    freeaddrinfo(res);
    if (fd == -1)
        fail(at, ATTEMPT_RETRY, "%s", err);
    return fd;
}

/* ---------------------------------------------------------------------------------------- */
/* TLS                                                                                        */

/* The cipher list of Python's ssl module (its default for every context), so that both clients
 * offer a TLS 1.2 server the same suites (TLS 1.3 suites are OpenSSL's defaults in both). */
#define TLS_CIPHERS                                                                          \
    "@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM"

/* OpenSSL's reason for error code e in lower case with spaces ("wrong version number"): what
 * the Python client shows (the ssl module's reason name, lower-cased, "_" as " "). */
static void tls_reason(unsigned long e, char *out, size_t outlen)
{
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (r != NULL)
        snprintf(out, outlen, "%s", r);
    else if (e != 0)
        snprintf(out, outlen, "error:%08lX", e);
    else
        snprintf(out, outlen, "unknown error");
    for (char *c = out; *c != '\0'; c++) {
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
        else if (*c == '_')
            *c = ' ';
    }
}

/* Why loading a file into the context failed: the system error when there was one (a missing
 * or unreadable file), else OpenSSL's reason; the ssl module decides the same way. */
static void load_reason(int saved_errno, char *out, size_t outlen)
{
    if (saved_errno != 0)
        snprintf(out, outlen, "%s", strerror(saved_errno));
    else
        tls_reason(ERR_peek_last_error(), out, outlen);
    ERR_clear_error();
}

/* The TLS context TLS_CA_FILE asks for, built once before the attempts: 0 with *out NULL
 * (plaintext) or the context, or -1 with err set ("TLS_CA_FILE (--tls-ca-file): cannot load
 * '<path>': <reason>") when a file cannot be used. Mirrors the Python client's
 * ssl.create_default_context(cafile=...) + minimum TLS 1.2 + load_cert_chain(). */
static int tls_context(const struct pts_client_config *cfg, SSL_CTX **out, char *err,
                       size_t errlen)
{
    char reason[REASON_MAX];
    *out = NULL;
    if (cfg->tls_ca_file[0] == '\0')
        return 0;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        load_reason(0, reason, sizeof reason);
        snprintf(err, errlen, "TLS_CA_FILE (--tls-ca-file): cannot make a TLS context: %s",
                 reason);
        return -1;
    }
    /* The ssl module's client context: its options, ciphers, certificate and host name checks
     * (no partial wildcards), and the TLS 1.2 minimum the Python client sets. */
    SSL_CTX_set_options(ctx, (SSL_OP_ALL & ~(uint64_t)SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS) |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_SSLv3);
    SSL_CTX_clear_options(ctx, SSL_OP_LEGACY_SERVER_CONNECT);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_AUTO_RETRY);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS) != 1) {
        load_reason(0, reason, sizeof reason);
        snprintf(err, errlen, "TLS_CA_FILE (--tls-ca-file): cannot make a TLS context: %s",
                 reason);
        SSL_CTX_free(ctx);
        return -1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM_set_hostflags(SSL_CTX_get0_param(ctx), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);

    ERR_clear_error();
    errno = 0;
    if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, NULL) != 1) {
        load_reason(errno, reason, sizeof reason);
        snprintf(err, errlen, "TLS_CA_FILE (--tls-ca-file): cannot load '%s': %s",
                 cfg->tls_ca_file, reason);
        SSL_CTX_free(ctx);
        return -1;
    }
    if (cfg->tls_client_cert_file[0] != '\0') {
        const char *cert = cfg->tls_client_cert_file;
        const char *key = cfg->tls_client_key_file[0] != '\0' ? cfg->tls_client_key_file : cert;
        int failed = 0;
        ERR_clear_error();
        errno = 0;
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
            load_reason(errno, reason, sizeof reason);
            failed = 1;
        }
        if (!failed) {
            ERR_clear_error();
            errno = 0;
            if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
                load_reason(errno, reason, sizeof reason);
                failed = 1;
            }
        }
        if (!failed && SSL_CTX_check_private_key(ctx) != 1) {
            load_reason(0, reason, sizeof reason);
            failed = 1;
        }
        if (failed) {
            snprintf(err, errlen, "TLS_CLIENT_CERT_FILE (--tls-client-cert-file): cannot load "
                     "'%s': %s", cert, reason);
            SSL_CTX_free(ctx);
            return -1;
        }
    }
    *out = ctx;
    return 0;
}

/* How a TLS call failed, as the ssl module classifies it (PySSL_SetError). */
enum tls_fail {
    TLS_FAIL_EOF,    /* the peer closed (or cut) the connection: SSLEOFError */
    TLS_FAIL_CLOSED, /* close_notify: SSLZeroReturnError */
    TLS_FAIL_OS,     /* a system error on the socket (reset, broken pipe): OSError */
    TLS_FAIL_VERIFY, /* the certificate did not verify: SSLCertVerificationError */
    TLS_FAIL_SSL     /* anything else TLS: SSLError */
};

/* Classify the failure of a TLS call that returned rc with errno saved_errno right after it;
 * why gets the reason the Python client prints for it (name: the name checked, for a host name
 * mismatch). The caller has cleared OpenSSL's error queue before the call. *os_errno: the system
 * error for TLS_FAIL_OS. */
static enum tls_fail tls_failure(SSL *ssl, int rc, int saved_errno, const char *name,
                                 int *os_errno, char *why, size_t whylen)
{
    int code = SSL_get_error(ssl, rc);
    unsigned long e = ERR_peek_last_error();
    enum tls_fail kind = TLS_FAIL_SSL;

    *os_errno = 0;
    switch (code) {
    case SSL_ERROR_ZERO_RETURN:
        kind = TLS_FAIL_CLOSED;
        break;
    case SSL_ERROR_SYSCALL:
        if (e == 0) {
            if (rc == -1 && saved_errno != 0) {
                *os_errno = saved_errno;
                snprintf(why, whylen, "%s", strerror(saved_errno));
                ERR_clear_error();
                return TLS_FAIL_OS;
            }
            snprintf(why, whylen, "eof occurred in violation of protocol");
            return TLS_FAIL_EOF;
        }
        break;
    case SSL_ERROR_SSL:
        if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
            ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
            kind = TLS_FAIL_VERIFY;
        else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
                 ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            kind = TLS_FAIL_EOF;
        break;
    default:
        break;
    }
    if (kind == TLS_FAIL_VERIFY) {
        long v = SSL_get_verify_result(ssl);
        if (v == X509_V_ERR_HOSTNAME_MISMATCH)
            snprintf(why, whylen, "certificate verify failed: Hostname mismatch, certificate is "
                     "not valid for '%s'.", name);
        else if (v == X509_V_ERR_IP_ADDRESS_MISMATCH)
            snprintf(why, whylen, "certificate verify failed: IP address mismatch, certificate "
                     "is not valid for '%s'.", name);
        else
            snprintf(why, whylen, "certificate verify failed: %s",
                     X509_verify_cert_error_string(v));
    } else if (kind == TLS_FAIL_CLOSED && e == 0) {
        snprintf(why, whylen, "tls/ssl connection has been closed (eof)");
    } else {
        tls_reason(e, why, whylen);
    }
    ERR_clear_error();
    return kind;
}

/* Wait until fd is ready for events or deadline passes: 1 ready, 0 timed out, -1 poll failed
 * (errno set). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int wait = remaining_ms(deadline);
        if (wait == 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int rc = poll(&p, 1, wait);
        if (rc > 0)
            return 1;
        if (rc == -1 && errno != EINTR)
            return -1;
    }
}

/* TLS over the connected non-blocking socket fd, within CLIENT_TIMEOUT: the SSL object, or NULL
 * with at filled (the caller still closes fd). */
static SSL *tls_handshake(SSL_CTX *ctx, int fd, const struct pts_client_config *cfg,
                          struct attempt *at)
{
    const char *name = cfg->tls_server_name[0] != '\0' ? cfg->tls_server_name : cfg->target_host;
    char why[REASON_MAX];
    int os_errno;

    if (name[0] == '.') { /* OpenSSL would match any subdomain; the ssl module refuses too */
        fail(at, ATTEMPT_FATAL, "TLS handshake failed: server_hostname cannot be an empty "
             "string or start with a leading dot.");
        return NULL;
    }
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL) {
        tls_reason(ERR_peek_last_error(), why, sizeof why);
        ERR_clear_error();
        fail(at, ATTEMPT_FATAL, "TLS handshake failed: %s", why);
        return NULL;
    }
    /* As the ssl module does: an address is checked against the certificate's IP addresses and
     * sent without SNI; a name is sent as SNI and checked against its DNS names. */
    int ok = SSL_set_fd(ssl, fd) == 1;
    ASN1_OCTET_STRING *ip = ok ? a2i_IPADDRESS(name) : NULL;
    if (ok && ip != NULL) {
        ok = X509_VERIFY_PARAM_set1_ip(SSL_get0_param(ssl), ASN1_STRING_get0_data(ip),
                                       (size_t)ASN1_STRING_length(ip)) == 1;
        ASN1_OCTET_STRING_free(ip);
    } else if (ok) {
        ERR_clear_error(); /* a2i_IPADDRESS's "not an address" */
        ok = SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1;
    }
    if (!ok) {
        tls_reason(ERR_peek_last_error(), why, sizeof why);
        ERR_clear_error();
        fail(at, ATTEMPT_FATAL, "TLS handshake failed: %s", why);
        SSL_free(ssl);
        return NULL;
    }

    int64_t deadline = now_ms() + seconds_to_ms(cfg->client_timeout);
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_connect(ssl);
        int saved_errno = errno;
        if (rc == 1)
            return ssl;
        int code = SSL_get_error(ssl, rc);
        if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
            int ready = wait_fd(fd, code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (ready == 1)
                continue;
            if (ready == 0)
                fail(at, ATTEMPT_RETRY, "TLS handshake timed out after %.3g s",
                     cfg->client_timeout);
            else
                fail(at, ATTEMPT_RETRY, "TLS handshake: poll: %s", strerror(errno));
            break;
        }
        switch (tls_failure(ssl, rc, saved_errno, name, &os_errno, why, sizeof why)) {
        case TLS_FAIL_EOF: /* cut short: the server may be restarting */
        case TLS_FAIL_OS:
            fail(at, ATTEMPT_RETRY, "TLS handshake: %s", why);
            break;
        case TLS_FAIL_CLOSED: /* not verified, or not TLS: never plaintext instead */
        case TLS_FAIL_VERIFY:
        case TLS_FAIL_SSL:
            fail(at, ATTEMPT_FATAL, "TLS handshake failed: %s", why);
            break;
        }
        break;
    }
    ERR_clear_error();
    SSL_free(ssl);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The exchange, over the socket or TLS                                                       */

/* Write all of buf before deadline (over ssl when not NULL). 0, or -1 with at filled. */
static int send_all(int fd, SSL *ssl, const char *buf, size_t len, int64_t deadline,
                    struct attempt *at)
{
    size_t off = 0;
    while (off < len) {
        short want = POLLOUT;
        if (ssl != NULL) {
            ERR_clear_error();
            errno = 0;
            int n = SSL_write(ssl, buf + off, (int)(len - off));
            int saved_errno = errno;
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            int code = SSL_get_error(ssl, n);
            if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
                want = code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            } else {
                char why[REASON_MAX];
                int os_errno;
                tls_failure(ssl, n, saved_errno, "", &os_errno, why, sizeof why);
                fail(at, ATTEMPT_RETRY, "send: %s", why);
                return -1;
            }
        } else {
            ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            if (n == -1 && errno == EINTR)
                continue;
            if (!(n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
                fail(at, ATTEMPT_RETRY, "send: %s", n == -1 ? strerror(errno) : "no progress");
                return -1;
            }
        }
        int ready = wait_fd(fd, want, deadline);
        if (ready == 0) {
            fail(at, ATTEMPT_RETRY, "timed out sending the request");
            return -1;
        }
        if (ready == -1) {
            fail(at, ATTEMPT_RETRY, "poll: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

enum read_end { READ_EOF, READ_CAP, READ_RESET, READ_TIMEOUT, READ_FAILED };

/* Read until the peer closes, REPLY_CAP bytes arrive, or the deadline passes (over ssl when not
 * NULL: close_notify, and an EOF without it, end the reply too). READ_FAILED: why says why. */
static enum read_end read_reply(int fd, SSL *ssl, int64_t deadline, struct attempt *at,
                                char *why, size_t whylen)
{
    at->reply_len = 0;
    at->reply[0] = '\0';
    for (;;) {
        if (at->reply_len == REPLY_CAP)
            return READ_CAP;
        short want = POLLIN;
        if (ssl != NULL) {
            ERR_clear_error();
            errno = 0;
            int n = SSL_read(ssl, at->reply + at->reply_len, (int)(REPLY_CAP - at->reply_len));
            int saved_errno = errno;
            if (n > 0) {
                at->reply_len += (size_t)n;
                at->reply[at->reply_len] = '\0';
                continue;
            }
            int code = SSL_get_error(ssl, n);
            if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
                want = code == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            } else {
                int os_errno;
                switch (tls_failure(ssl, n, saved_errno, "", &os_errno, why, whylen)) {
                case TLS_FAIL_EOF:    /* a ragged EOF ends the reply (suppress_ragged_eofs) */
                case TLS_FAIL_CLOSED: /* close_notify */
                    return READ_EOF;
                case TLS_FAIL_OS:
                    return os_errno == ECONNRESET ? READ_RESET : READ_FAILED;
                case TLS_FAIL_VERIFY:
                case TLS_FAIL_SSL:
                    return READ_FAILED;
                }
                return READ_FAILED;
            }
        } else {
            ssize_t n = recv(fd, at->reply + at->reply_len, REPLY_CAP - at->reply_len, 0);
            if (n > 0) {
                at->reply_len += (size_t)n;
                at->reply[at->reply_len] = '\0';
                continue;
            }
            if (n == 0)
                return READ_EOF;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                snprintf(why, whylen, "%s", strerror(errno));
                return errno == ECONNRESET ? READ_RESET : READ_FAILED;
            }
        }
        int ready = wait_fd(fd, want, deadline);
        if (ready == 0)
            return READ_TIMEOUT;
        if (ready == -1) {
            snprintf(why, whylen, "%s", strerror(errno));
            return READ_FAILED;
        }
    }
}

/* Classify what the server sent. */
static void judge_reply(struct attempt *at, enum read_end how, const char *why, double timeout)
{
    char *nl = memchr(at->reply, '\n', at->reply_len);

    if (nl == NULL) {
        switch (how) {
        case READ_TIMEOUT:
            fail(at, ATTEMPT_RETRY, "no reply within %.3g s", timeout);
            return;
        case READ_RESET:
            fail(at, ATTEMPT_RETRY, "connection reset by the server");
            return;
        case READ_FAILED:
            fail(at, ATTEMPT_RETRY, "recv: %s", why);
            return;
        case READ_CAP:
            fail(at, ATTEMPT_FATAL, "unexpected answer: more than %d bytes without a newline",
                 REPLY_CAP);
            return;
        case READ_EOF:
            if (at->reply_len == 0)
                fail(at, ATTEMPT_RETRY, "server closed the connection without a reply");
            else
                fail(at, ATTEMPT_RETRY, "incomplete reply (%zu bytes, no newline)",
                     at->reply_len);
            return;
        }
    }
    /* A whole first line arrived: what happened afterwards does not matter. */
    at->line_len = (size_t)(nl - at->reply) + 1;
    size_t text_len = at->line_len - 1;
    if (text_len > 0 && at->reply[text_len - 1] == '\r')
        text_len--;

    int code = pts_reply_error(at->reply, text_len);
    if (code >= 0) {
        int retry = code < PTS_ERR_COUNT && pts_error_retryable[code];
        fail(at, retry ? ATTEMPT_RETRY : ATTEMPT_FATAL, "server answered: %.*s", (int)text_len,
             at->reply);
        return;
    }
    if (!pts_reply_shape_ok(at->reply, text_len)) {
        fail(at, ATTEMPT_FATAL, "unexpected answer: \"%.*s\"",
             (int)(text_len > 200 ? 200 : text_len), at->reply);
        return;
    }
    at->outcome = ATTEMPT_REPLY;
}

/* One attempt: a fresh connection (over TLS when ctx is not NULL), closed on every path. */
static void run_attempt(const struct pts_client_config *cfg, SSL_CTX *ctx, struct attempt *at)
{
    at->reason[0] = '\0';
    at->reply_len = 0;
    at->line_len = 0;

    int fd = open_connection(cfg, at);
    if (fd == -1)
        return;
    SSL *ssl = NULL;
    if (ctx != NULL) {
        ssl = tls_handshake(ctx, fd, cfg, at);
        if (ssl == NULL) {
            close(fd);
            return;
        }
    }

    int64_t deadline = now_ms() + seconds_to_ms(cfg->client_timeout);
    const char request[] = PTS_COMMAND "\n";
    if (send_all(fd, ssl, request, sizeof request - 1, deadline, at) == 0) {
        char why[REASON_MAX] = "";
        enum read_end how = read_reply(fd, ssl, deadline, at, why, sizeof why);
        judge_reply(at, how, why, cfg->client_timeout);
    }
    /* No close_notify, as the Python client's close(): the request and reply are complete. */
    SSL_free(ssl);
    close(fd); /* every path of an attempt closes its socket; a failing close changes nothing */
}

/* ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct pts_client_config cfg;
    char err[REASON_MAX];

    switch (pts_settings_load(pts_client_settings, PTS_CSET_COUNT, &cfg, argc, argv, pts_getenv,
                              NULL, err, sizeof err)) {
    case PTS_ACTION_HELP:
        usage(stdout);
        return EXIT_REPLY;
    case PTS_ACTION_VERSION:
        printf(PROG " %s (protocol %d)\n", PTS_VERSION, PTS_PROTOCOL_VERSION);
        return EXIT_REPLY;
    case PTS_ACTION_CHECK:
        pts_settings_describe(stdout, pts_client_settings, PTS_CSET_COUNT, &cfg);
        return EXIT_REPLY;
    case PTS_ACTION_ERROR:
        fprintf(stderr, PROG ": bad setting: %s (see " PROG " --help)\n", err);
        return EXIT_USAGE;
    case PTS_ACTION_RUN:
        break;
    }
    /* The TLS context, once for every attempt (a file that cannot be loaded is a bad
     * setting). OpenSSL writes to the socket with write(): a server that went away must be
     * an EPIPE, not a SIGPIPE. */
    SSL_CTX *ctx = NULL;
    {
        char tls_err[sizeof cfg.tls_client_cert_file + 2 * REASON_MAX];
        if (tls_context(&cfg, &ctx, tls_err, sizeof tls_err) == -1) {
            fprintf(stderr, PROG ": bad setting: %s (see " PROG " --help)\n", tls_err);
            return EXIT_USAGE;
        }
    }
    if (ctx != NULL)
        signal(SIGPIPE, SIG_IGN);

    char target[sizeof cfg.target_host + 32];
    if (strchr(cfg.target_host, ':') != NULL)
        snprintf(target, sizeof target, "[%s]:%ld", cfg.target_host, cfg.target_port);
    else
        snprintf(target, sizeof target, "%s:%ld", cfg.target_host, cfg.target_port);

    struct attempt *at = calloc(1, sizeof *at);
    if (at == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        SSL_CTX_free(ctx);
        return EXIT_FAILED;
    }
    double delay = cfg.client_retry_delay < cfg.client_retry_max_delay
                       ? cfg.client_retry_delay
                       : cfg.client_retry_max_delay;
    int status = EXIT_FAILED;
    for (long attempt = 1;; attempt++) {
        run_attempt(&cfg, ctx, at);
        if (at->outcome == ATTEMPT_REPLY) {
            if (fwrite(at->reply, 1, at->line_len, stdout) != at->line_len ||
                fflush(stdout) != 0) {
                fprintf(stderr, PROG ": cannot write the reply: %s\n", strerror(errno));
                break;
            }
            status = EXIT_REPLY;
            break;
        }
        if (at->outcome == ATTEMPT_FATAL) {
            fprintf(stderr, PROG ": %s: %s\n", target, at->reason);
            break;
        }
        if (attempt >= cfg.client_retries) {
            fprintf(stderr, PROG ": giving up on %s after %ld attempt%s; last error: %s\n",
                    target, attempt, attempt == 1 ? "" : "s", at->reason);
            break;
        }
        fprintf(stderr, PROG ": attempt %ld/%ld to %s failed: %s; retrying in %.3g s\n", attempt,
                cfg.client_retries, target, at->reason, delay);
        sleep_seconds(delay);
        delay = delay * 2 < cfg.client_retry_max_delay ? delay * 2 : cfg.client_retry_max_delay;
    }
    free(at);
    SSL_CTX_free(ctx);
    return status;
}
