/*
 * loadgen: the benchmark's load generator in C, so that the generator is not what limits a run.
 *
 * Closed loop: each of N concurrent users opens a fresh TCP connection per request (as the
 * project's clients do), sends the protocol's command line, reads until the server closes, checks
 * the reply and starts its next request at once. The users are split over several processes
 * (-p), one epoll loop each, no threads: nothing is shared while the load runs.
 *
 * A run is bounded in time: the load starts at --begin (CLOCK_MONOTONIC seconds, the clock of
 * Python's time.monotonic(), so a caller can sample the server at the window's edges), runs a
 * warm-up, then a fixed measuring window; requests that *start* inside the window are counted,
 * and the ones still in flight at its end get at most --timeout to finish (the drain).
 *
 * Every reply is checked with the protocol's shared checker (pts_reply_shape_ok, the same rules
 * as the Python programs); anything else is an error, counted by kind: refused, reset, timeout,
 * "ERROR <code>", closed-without-reply, bad-reply, too-long, or the errno name of any other
 * failure. Latency runs from socket() to EOF; good replies go into a histogram (1 us steps
 * below 128 us, then 64 steps per power of two, each read as its middle: within 0.8 %) for
 * p50/p90/p99.
 *
 * Loopback targets only: a load generator pointed at another machine is a flood.
 *
 * TLS (--tls-ca FILE): each connection then does a TLS handshake (non-blocking, in the same
 * loop), verifying the server's certificate against FILE for the name "localhost" (--tls-name),
 * sends the request with SSL_write and reads the reply with SSL_read until close_notify or EOF.
 * Every connection does a full handshake, unless --tls-resume: then each user offers the TLS
 * session of its previous completed exchange (taken after the reply was read, since TLS 1.3
 * tickets arrive after the handshake), and the handshakes that were resumed are counted.
 * Handshake failures are errors of their own kinds: tls-verify (the certificate did not
 * verify), tls-handshake (any other TLS failure in the handshake), tls-closed-in-handshake (the
 * server closed the connection during the handshake), tls-error (a TLS failure after it).
 *
 *   loadgen --port PORT [--host 127.0.0.1] [-c 16] [-p 2] [-d 5] [-w 1] [-t 5] [--begin T]
 *           [--tls-ca FILE [--tls-name NAME] [--tls-resume]]
 *
 * Prints one JSON object (the fields of pointsbench.loadgen.LoadResult) on stdout. Exit status:
 * 0 after a run, whatever the servers answered; 1 when the run itself failed; 2 for a bad
 * command line or a target that is not a loopback address.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "points_protocol.h"
#include "pts_reply.h"

#define READ_CAP 4096          /* a reply longer than this is "too-long" (as loadgen.py) */
#define MAX_EVENTS 256
#define BACKOFF_NS 1000000LL   /* after a failed request: no busy spin against a dead port */
#define START_GRACE_NS 100000000LL /* without --begin: time for the processes to start */
#define REAP_SLACK_NS 5000000000LL /* a process still running this long after its last
                                      possible deadline is stuck: killed, the run fails */
#define ERRNO_SLOTS 256

/* Latency histogram: values in microseconds. Exact below SUB; above, SUB/2 buckets per power
 * of two (the HdrHistogram layout): a bucket is at most 2/SUB of its values wide. */
#define SUB_BITS 7
#define SUB (1 << SUB_BITS)
#define MAX_BITS 40 /* 2^40 us = 12 days: beyond any timeout */
#define NBUCKETS (SUB + (MAX_BITS - SUB_BITS) * (SUB / 2))

/* What a finished request was. Errors of a reply line and errno values are counted apart. */
enum kind {
    K_OK,
    K_REFUSED,
    K_RESET,
    K_TIMEOUT,
    K_CLOSED,   /* EOF before any byte */
    K_BAD,      /* a reply that is neither a good reply nor an error line */
    K_TOO_LONG, /* more than READ_CAP bytes */
    K_ERRNO,    /* any other failed system call: counted by errno */
    K_REPLY_ERROR,
    K_TLS_VERIFY,    /* the server's certificate did not verify */
    K_TLS_HANDSHAKE, /* any other TLS failure during the handshake */
    K_TLS_CLOSED,    /* the server closed the connection during the handshake */
    K_TLS_ERROR,     /* a TLS failure after the handshake */
    K_COUNT
};
static const char *const kind_name[K_COUNT] = {
    "ok", "refused", "reset", "timeout", "closed-without-reply", "bad-reply", "too-long",
    "errno", "reply-error", "tls-verify", "tls-handshake", "tls-closed-in-handshake",
    "tls-error",
};

/* One process's results. They live in a shared anonymous mapping made before fork(): the
 * parent reads them after waitpid(), so there is no partial write to handle and no lock. */
struct tally {
    uint64_t kind[K_COUNT];
    uint64_t reply_error[PTS_ERR_COUNT + 1]; /* by index of pts_error_code; last: unknown */
    uint64_t sys_errno[ERRNO_SLOTS];         /* slot 0: an errno too large to have a slot */
    uint64_t hist[NBUCKETS];                 /* latency of good replies */
    uint64_t lat_sum_us, lat_max_us;
    uint64_t tls_handshakes, tls_resumed; /* completed handshakes; of them, resumed */
    double cpu_s;  /* CPU time this process used inside the measuring window */
    int finished;  /* set last, by a process that ran to the end */
};

/* What every process runs: read-only after main() filled it in. */
struct plan {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[NI_MAXHOST];
    int port, concurrency, procs;
    double duration, warmup, timeout;
    int64_t begin_ns, measure_ns, end_ns, timeout_ns;
    const char *request;
    size_t request_len;
    SSL_CTX *tls;        /* NULL: plaintext */
    const char *tls_name; /* the name the certificate must hold ("localhost") */
    int tls_name_is_ip;  /* then no SNI (as clients do for an address) */
    int tls_resume;      /* offer the previous connection's session */
};

/* Plaintext: U_CONNECTING (connect and send), U_READING. TLS: U_HANDSHAKE (connect and
 * handshake), U_SENDING, U_READING. */
enum ustate { U_IDLE, U_CONNECTING, U_HANDSHAKE, U_SENDING, U_READING, U_DONE };

struct user {
    int fd;
    enum ustate state;
    int64_t started_ns; /* when the current request began */
    int64_t timer_ns;   /* U_IDLE: when to start the next request; else the request's deadline */
    size_t sent;
    size_t len;
    SSL *ssl;             /* TLS: this request's connection */
    SSL_SESSION *session; /* --tls-resume: the session of the last completed exchange */
    int handshook, resumed; /* this request: handshake completed; it was resumed */
    char buf[READ_CAP + 1]; /* one byte more than the cap: how "too long" is seen */
};

struct loop {
    const struct plan *pl;
    struct tally *t;
    int efd;
    struct user *users;
    int nusers;
    int active;       /* users with a connection open */
    int64_t next_ns;  /* earliest timer of any user (a lower bound is enough) */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid clock id and pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == -1)
        return NAN;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* -- latency histogram ------------------------------------------------------------------- */

static int bucket_of(uint64_t us)
{
    if (us < SUB)
        return (int)us;
    int msb = 63 - __builtin_clzll(us); /* >= SUB_BITS */
    if (msb >= MAX_BITS)
        return NBUCKETS - 1;
    int shift = msb - SUB_BITS + 1;
    return SUB + (msb - SUB_BITS) * (SUB / 2) + (int)((us >> shift) - SUB / 2);
}

/* The value a bucket stands for: itself when exact, else the middle of its range. */
static double bucket_value(int i)
{
    if (i < SUB)
        return i;
    int j = i - SUB;
    int msb = SUB_BITS + j / (SUB / 2);
    uint64_t lo = (uint64_t)(SUB / 2 + j % (SUB / 2)) << (msb - SUB_BITS + 1);
    uint64_t width = (uint64_t)1 << (msb - SUB_BITS + 1);
    return (double)lo + (double)(width - 1) / 2;
}

/* Nearest-rank percentile (as pointsbench.loadgen.percentile), in microseconds. */
static double hist_percentile(const uint64_t *hist, uint64_t n, double q, uint64_t max_us)
{
    uint64_t rank = (uint64_t)ceil(q / 100 * (double)n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank) {
            double v = bucket_value(i);
            return v > (double)max_us ? (double)max_us : v;
        }
    }
    return (double)max_us;
}

/* -- one user's requests ----------------------------------------------------------------- */

static void set_timer(struct loop *lp, struct user *u, int64_t at)
{
    u->timer_ns = at;
    if (at < lp->next_ns)
        lp->next_ns = at;
}

static void user_start(struct loop *lp, struct user *u, int64_t now);

/* The request is over: count it (if it started inside the window), close, go on. */
static void user_finish(struct loop *lp, struct user *u, enum kind k, int err_index)
{
    const struct plan *pl = lp->pl;
    int64_t now = now_ns();
    /* A request that ends past its deadline is a timeout, whatever it got: the sweep can run a
     * little late (a long batch of events, a descheduled process), and a late reply must not
     * count as good with a latency above --timeout. */
    if (u->state != U_IDLE && now > u->timer_ns)
        k = K_TIMEOUT;
    if (u->ssl != NULL) {
        SSL_free(u->ssl);
        u->ssl = NULL;
    }
    if (k != K_OK && u->session != NULL) {
        /* a failed request: the next one starts afresh (a full handshake) */
        SSL_SESSION_free(u->session);
        u->session = NULL;
    }
    if (u->fd != -1) {
        /* close() removes the descriptor from the epoll set (it is never dup'ed). Its only
         * possible error here, EINTR, still frees the descriptor on Linux: nothing to do. */
        close(u->fd);
        u->fd = -1;
        lp->active--;
    }
    if (u->started_ns >= pl->measure_ns) {
        struct tally *t = lp->t;
        t->kind[k]++;
        t->tls_handshakes += (uint64_t)u->handshook;
        t->tls_resumed += (uint64_t)u->resumed;
        if (k == K_OK) {
            uint64_t us = (uint64_t)(now - u->started_ns) / 1000;
            t->hist[bucket_of(us)]++;
            t->lat_sum_us += us;
            if (us > t->lat_max_us)
                t->lat_max_us = us;
        } else if (k == K_REPLY_ERROR) {
            t->reply_error[err_index]++;
        } else if (k == K_ERRNO) {
            t->sys_errno[err_index > 0 && err_index < ERRNO_SLOTS ? err_index : 0]++;
        }
    }
    if (k == K_OK || k == K_TIMEOUT) {
        user_start(lp, u, now);
    } else {
        u->state = U_IDLE;
        set_timer(lp, u, now + BACKOFF_NS);
    }
}

/* A failed system call: the kinds with a name of their own, else counted by errno. */
static void user_fail(struct loop *lp, struct user *u, int err)
{
    if (err == ECONNREFUSED)
        user_finish(lp, u, K_REFUSED, 0);
    else if (err == ECONNRESET || err == EPIPE)
        user_finish(lp, u, K_RESET, 0); /* EPIPE: the peer reset before we could send */
    else if (err == ETIMEDOUT)
        user_finish(lp, u, K_TIMEOUT, 0);
    else
        user_finish(lp, u, K_ERRNO, err);
}

/* EOF: judge the whole reply. The same order as loadgen.py: a good reply, an error line,
 * nothing at all, anything else. */
static void user_judge(struct loop *lp, struct user *u)
{
    const char *nl = memchr(u->buf, '\n', u->len);
    if (nl != NULL && (size_t)(nl - u->buf) == u->len - 1 &&
        pts_reply_shape_ok(u->buf, u->len - 1)) {
        user_finish(lp, u, K_OK, 0);
        return;
    }
    size_t first = nl != NULL ? (size_t)(nl - u->buf) : u->len;
    int e = pts_reply_error(u->buf, first);
    if (e >= 0)
        user_finish(lp, u, K_REPLY_ERROR, e); /* PTS_ERR_COUNT: a code we do not know */
    else if (u->len == 0)
        user_finish(lp, u, K_CLOSED, 0);
    else
        user_finish(lp, u, K_BAD, 0);
}

/* n more reply bytes are in u->buf: 1 to read on, 0 when the reply is too long (finished). */
static int user_took(struct loop *lp, struct user *u, size_t n)
{
    u->len += n;
    if (u->len > READ_CAP) {
        user_finish(lp, u, K_TOO_LONG, 0);
        return 0;
    }
    return 1;
}

/* Read what has arrived; the descriptor is edge-triggered, so read until EAGAIN or EOF. */
static void user_read(struct loop *lp, struct user *u)
{
    for (;;) {
        ssize_t n = recv(u->fd, u->buf + u->len, sizeof u->buf - u->len, 0);
        if (n > 0) {
            if (!user_took(lp, u, (size_t)n))
                return;
            continue;
        }
        if (n == 0) {
            user_judge(lp, u);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            user_fail(lp, u, errno);
        return;
    }
}

/* Send the request once the connection is up. No getsockopt(SO_ERROR) first: send() itself
 * fails with a failed connect's error (ECONNREFUSED), and with EAGAIN while it is pending. */
static void user_send(struct loop *lp, struct user *u)
{
    const struct plan *pl = lp->pl;
    while (u->sent < pl->request_len) {
        ssize_t n = send(u->fd, pl->request + u->sent, pl->request_len - u->sent, MSG_NOSIGNAL);
        if (n > 0) {
            u->sent += (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* still connecting, or no room: the next EPOLLOUT edge comes back here */
        user_fail(lp, u, n == -1 ? errno : EIO);
        return;
    }
    u->state = U_READING;
}

/* -- TLS ---------------------------------------------------------------------------------- */

/* A TLS call failed with rc (not a retry): count it by kind. saved_errno: errno right after
 * the call. Only called with OpenSSL's error queue cleared before the call. */
static void tls_fail(struct loop *lp, struct user *u, int rc, int saved_errno)
{
    int code = SSL_get_error(u->ssl, rc);
    unsigned long e = ERR_peek_last_error();
    int in_handshake = u->state == U_HANDSHAKE;
    ERR_clear_error();
    if (code == SSL_ERROR_SYSCALL && saved_errno != 0) {
        user_fail(lp, u, saved_errno); /* refused, reset, ...: as in plaintext */
        return;
    }
    int eof = code == SSL_ERROR_SYSCALL || code == SSL_ERROR_ZERO_RETURN ||
              (ERR_GET_LIB(e) == ERR_LIB_SSL &&
               ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
    if (!in_handshake)
        user_finish(lp, u, eof ? K_RESET : K_TLS_ERROR, 0); /* eof: cut off while sending */
    else if (eof)
        user_finish(lp, u, K_TLS_CLOSED, 0);
    else if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
             ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
        user_finish(lp, u, K_TLS_VERIFY, 0);
    else
        user_finish(lp, u, K_TLS_HANDSHAKE, 0);
}

/* Read the reply over TLS until close_notify or EOF (a ragged EOF is an EOF too: the context
 * ignores an unexpected one), until SSL_read wants more from the socket (edge-triggered: the
 * socket has then been read to EAGAIN). */
static void tls_read(struct loop *lp, struct user *u)
{
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int n = SSL_read(u->ssl, u->buf + u->len, (int)(sizeof u->buf - u->len));
        int saved_errno = errno;
        if (n > 0) {
            if (!user_took(lp, u, (size_t)n))
                return;
            continue;
        }
        int code = SSL_get_error(u->ssl, n);
        if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE)
            return;
        if (code == SSL_ERROR_ZERO_RETURN ||
            (code == SSL_ERROR_SYSCALL && saved_errno == 0)) {
            ERR_clear_error();
            /* A completed exchange: its session (with the tickets that came after the
             * handshake) is the one the next request of this user offers. Marked as shut down
             * so that SSL_free() keeps it resumable; nothing more is sent. */
            SSL_set_shutdown(u->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            if (lp->pl->tls_resume) {
                SSL_SESSION *s = SSL_get1_session(u->ssl);
                if (u->session != NULL)
                    SSL_SESSION_free(u->session);
                u->session = s;
            }
            user_judge(lp, u);
            return;
        }
        tls_fail(lp, u, n, saved_errno);
        return;
    }
}

/* Drive a TLS request as far as the socket allows: handshake, request, reply. Each step runs
 * until OpenSSL wants the socket (read or written to EAGAIN), so the next edge comes back. */
static void tls_step(struct loop *lp, struct user *u)
{
    const struct plan *pl = lp->pl;
    if (u->state == U_HANDSHAKE) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_connect(u->ssl);
        int saved_errno = errno;
        if (rc != 1) {
            int code = SSL_get_error(u->ssl, rc);
            if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE)
                tls_fail(lp, u, rc, saved_errno);
            return;
        }
        u->handshook = 1;
        u->resumed = SSL_session_reused(u->ssl) == 1;
        u->state = U_SENDING;
    }
    if (u->state == U_SENDING) {
        while (u->sent < pl->request_len) {
            ERR_clear_error();
            errno = 0;
            int n = SSL_write(u->ssl, pl->request + u->sent, (int)(pl->request_len - u->sent));
            int saved_errno = errno;
            if (n > 0) {
                u->sent += (size_t)n;
                continue;
            }
            int code = SSL_get_error(u->ssl, n);
            if (code != SSL_ERROR_WANT_READ && code != SSL_ERROR_WANT_WRITE)
                tls_fail(lp, u, n, saved_errno);
            return;
        }
        u->state = U_READING;
    }
    if (u->state == U_READING)
        tls_read(lp, u);
}

/* The SSL object of a new connection (the socket fd, the server name, the saved session). */
static int tls_new(const struct plan *pl, struct user *u)
{
    u->ssl = SSL_new(pl->tls);
    if (u->ssl == NULL || SSL_set_fd(u->ssl, u->fd) != 1 ||
        (!pl->tls_name_is_ip && SSL_set_tlsext_host_name(u->ssl, pl->tls_name) != 1) ||
        (u->session != NULL && SSL_set_session(u->ssl, u->session) != 1)) {
        ERR_clear_error();
        return -1;
    }
    SSL_set_connect_state(u->ssl);
    return 0;
}

static SSL_CTX *tls_context(const char *ca_file, const char *name, int name_is_ip)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        goto fail;
    /* As the project's clients: TLS 1.2 at least, the certificate verified against the CA
     * for the name; a ragged EOF after the reply is an EOF. No client session cache: the
     * sessions are kept per user (--tls-resume). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Records read in as large reads as the socket has, not a header and a body at a time:
     * fewer system calls for the generator (every step below runs to EAGAIN anyway). */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        (name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name)
                    : X509_VERIFY_PARAM_set1_host(param, name, 0)) != 1)
        goto fail;
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        char reason[256];
        ERR_error_string_n(ERR_peek_last_error(), reason, sizeof reason);
        fprintf(stderr, "loadgen: --tls-ca %s: cannot load it: %s\n", ca_file, reason);
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
fail:
    fprintf(stderr, "loadgen: cannot make a TLS context: %s\n",
            ERR_reason_error_string(ERR_peek_last_error()));
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

static void user_start(struct loop *lp, struct user *u, int64_t now)
{
    const struct plan *pl = lp->pl;
    if (now >= pl->end_ns) {
        u->state = U_DONE;
        return;
    }
    u->started_ns = now;
    u->sent = u->len = 0;
    u->handshook = u->resumed = 0;
    u->state = pl->tls != NULL ? U_HANDSHAKE : U_CONNECTING;
    set_timer(lp, u, now + pl->timeout_ns);
    u->fd = socket(pl->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd == -1) {
        user_fail(lp, u, errno); /* EMFILE, ENOBUFS, ...: counted, then a back-off */
        return;
    }
    lp->active++;
    /* A non-blocking connect interrupted by a signal goes on in the background, exactly like
     * EINPROGRESS: both mean "wait for the descriptor to become writable". */
    if (connect(u->fd, (const struct sockaddr *)&pl->addr, pl->addrlen) == -1 &&
        errno != EINPROGRESS && errno != EINTR) {
        user_fail(lp, u, errno);
        return;
    }
    /* TLS: the handshake's last flight and the request are two writes; Nagle would hold the
     * request until the server ACKs the first (up to a delayed ACK's 40 ms). */
    static const int one = 1;
    if (pl->tls != NULL &&
        setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1) {
        user_fail(lp, u, errno);
        return;
    }
    if (pl->tls != NULL && tls_new(pl, u) == -1) {
        user_fail(lp, u, ENOMEM); /* SSL_new and friends fail only for lack of memory */
        return;
    }
    /* One registration for the whole connection, edge-triggered: EPOLLOUT once connected,
     * EPOLLIN as the reply and the FIN arrive; no EPOLL_CTL_MOD per state. If the connection
     * is already up, ADD reports it at once. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = u};
    if (epoll_ctl(lp->efd, EPOLL_CTL_ADD, u->fd, &ev) == -1)
        user_fail(lp, u, errno);
}

static void user_event(struct loop *lp, struct user *u, uint32_t events)
{
    if (u->ssl != NULL) {
        tls_step(lp, u); /* any edge: OpenSSL tells what it waits for */
        return;
    }
    if (u->state == U_CONNECTING) {
        user_send(lp, u);
        /* A reply that came with the same edge (a server may answer before reading, e.g.
         * ERROR server-busy) gets no second edge: read it now. */
        if (u->state == U_READING && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
            user_read(lp, u);
    } else if (u->state == U_READING) {
        user_read(lp, u);
    }
    /* U_IDLE, U_DONE: no connection, nothing to do (epoll reports a closed descriptor no
     * more, so this is only a guard). */
}

/* Due timers: requests past their deadline time out, idle users start their next request.
 * Recomputes the earliest timer. Called only when one is due, so the cost of a scan over all
 * users is paid about once per back-off or timeout, not per event. */
static void sweep(struct loop *lp, int64_t now)
{
    lp->next_ns = INT64_MAX;
    for (int i = 0; i < lp->nusers; i++) {
        struct user *u = &lp->users[i];
        if (u->state == U_DONE)
            continue;
        if (u->timer_ns <= now) {
            if (u->state == U_IDLE)
                user_start(lp, u, now);
            else
                user_finish(lp, u, K_TIMEOUT, 0);
        }
        /* user_start/user_finish may have set a new timer: keep the earliest. */
        if (u->state != U_DONE && u->timer_ns < lp->next_ns)
            lp->next_ns = u->timer_ns;
    }
}

static int ms_until(int64_t at, int64_t now)
{
    if (at <= now)
        return 0;
    int64_t ms = (at - now + 999999) / 1000000;
    return ms > 1000 ? 1000 : (int)ms;
}

/* One process: nusers users until the window is over and every request has ended. */
static int run_users(const struct plan *pl, int nusers, struct tally *t)
{
    struct loop lp = {.pl = pl, .t = t, .nusers = nusers, .next_ns = INT64_MAX};
    lp.efd = epoll_create1(EPOLL_CLOEXEC);
    if (lp.efd == -1) {
        fprintf(stderr, "loadgen: epoll_create1: %s\n", strerror(errno));
        return -1;
    }
    lp.users = calloc((size_t)nusers, sizeof *lp.users);
    if (lp.users == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        close(lp.efd);
        return -1;
    }
    struct timespec at = {.tv_sec = pl->begin_ns / 1000000000LL,
                          .tv_nsec = pl->begin_ns % 1000000000LL};
    int rc;
    while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL)) == EINTR)
        ;
    if (rc != 0 && rc != EINVAL) /* EINVAL: a begin time in the past, start now */
        fprintf(stderr, "loadgen: clock_nanosleep: %s\n", strerror(rc));

    int64_t now = now_ns();
    for (int i = 0; i < nusers; i++) {
        lp.users[i].fd = -1;
        user_start(&lp, &lp.users[i], now);
    }
    /* Hard stop: every request ends by its own deadline, at most end + timeout; this bound
     * only guards against a bug in that reasoning. */
    int64_t hard_end = pl->end_ns + pl->timeout_ns + 1000000000LL;
    double cpu_start = NAN, cpu_end = NAN;
    int status = 0;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        now = now_ns();
        if (isnan(cpu_start) && now >= pl->measure_ns)
            cpu_start = cpu_seconds();
        if (isnan(cpu_end) && now >= pl->end_ns)
            cpu_end = cpu_seconds();
        if (now >= lp.next_ns)
            sweep(&lp, now);
        if (lp.active == 0 && now >= pl->end_ns) {
            int waiting = 0; /* users in back-off still end by their timer: wait for them */
            for (int i = 0; i < nusers; i++)
                waiting += lp.users[i].state == U_IDLE;
            if (waiting == 0)
                break;
        }
        if (now >= hard_end) {
            fprintf(stderr, "loadgen: %d requests still open after the drain\n", lp.active);
            status = -1;
            break;
        }
        int64_t wake = lp.next_ns;
        if (isnan(cpu_start) && pl->measure_ns < wake)
            wake = pl->measure_ns;
        if (isnan(cpu_end) && pl->end_ns < wake)
            wake = pl->end_ns;
        int n = epoll_wait(lp.efd, events, MAX_EVENTS, ms_until(wake, now));
        if (n == -1) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "loadgen: epoll_wait: %s\n", strerror(errno));
            status = -1;
            break;
        }
        for (int i = 0; i < n; i++)
            user_event(&lp, events[i].data.ptr, events[i].events);
    }
    t->cpu_s = cpu_end - cpu_start;
    for (int i = 0; i < nusers; i++) {
        struct user *u = &lp.users[i];
        SSL_free(u->ssl); /* SSL_free(NULL), SSL_SESSION_free(NULL): no-ops */
        SSL_SESSION_free(u->session);
        if (u->fd != -1)
            close(u->fd);
    }
    free(lp.users);
    close(lp.efd);
    return status;
}

/* -- the command line and the processes --------------------------------------------------- */

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
    }
    return 0;
}

/* The first loopback address of host (names allowed: "localhost"); -1 with a message if none. */
static int resolve_loopback(struct plan *pl, const char *host)
{
    char port[16];
    snprintf(port, sizeof port, "%d", pl->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "loadgen: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int found = -1;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen <= sizeof pl->addr && is_loopback(ai->ai_addr)) {
            memcpy(&pl->addr, ai->ai_addr, ai->ai_addrlen);
            pl->addrlen = ai->ai_addrlen;
            found = 0;
            break;
        }
    }
    freeaddrinfo(res);
    if (found != 0) {
        fprintf(stderr, "loadgen: %s is not a loopback address: the load generator only "
                        "targets this machine\n", host);
        return -1;
    }
    rc = getnameinfo((const struct sockaddr *)&pl->addr, pl->addrlen, pl->host, sizeof pl->host,
                     NULL, 0, NI_NUMERICHOST);
    if (rc != 0) /* cannot happen for an address getaddrinfo gave; keep the JSON valid */
        snprintf(pl->host, sizeof pl->host, "unknown");
    return 0;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_double(const char *s, double lo, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < lo)
        return -1;
    *out = v;
    return 0;
}

/* One descriptor per user of this process, plus a few: raise the soft limit if needed. */
static void raise_nofile(int users)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)users + 32;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
        fprintf(stderr, "loadgen: setrlimit(RLIMIT_NOFILE): %s (EMFILE errors may follow)\n",
                strerror(errno));
}

static void json_ms(const char *name, double us, int have, int last)
{
    if (have)
        printf("\"%s\": %.3f%s", name, us / 1000, last ? "" : ", ");
    else
        printf("\"%s\": null%s", name, last ? "" : ", ");
}

/* Every key written here is a fixed name, a protocol error code (kebab-case, from
 * protocol.toml) or an errno name: none needs JSON escaping. */
static void print_json(const struct plan *pl, const struct tally *sum, double cpu_s)
{
    uint64_t ok = sum->kind[K_OK];
    printf("{\"generator\": \"c\", \"host\": \"%s\", \"port\": %d, \"concurrency\": %d, "
           "\"generators\": %d, \"duration\": %g, \"warmup\": %g, \"timeout\": %g, "
           "\"ok\": %llu, \"errors\": {",
           pl->host, pl->port, pl->concurrency, pl->procs, pl->duration, pl->warmup, pl->timeout,
           (unsigned long long)ok);
    const char *sep = "";
    for (int k = K_REFUSED; k < K_COUNT; k++) {
        if (k == K_ERRNO || k == K_REPLY_ERROR || sum->kind[k] == 0)
            continue;
        printf("%s\"%s\": %llu", sep, kind_name[k], (unsigned long long)sum->kind[k]);
        sep = ", ";
    }
    for (int e = 0; e <= PTS_ERR_COUNT; e++) {
        if (sum->reply_error[e] == 0)
            continue;
        printf("%s\"%s%s\": %llu", sep, PTS_ERROR_PREFIX,
               e < PTS_ERR_COUNT ? pts_error_code[e] : "(unknown code)",
               (unsigned long long)sum->reply_error[e]);
        sep = ", ";
    }
    for (int e = 0; e < ERRNO_SLOTS; e++) {
        if (sum->sys_errno[e] == 0)
            continue;
        const char *name = e > 0 ? strerrorname_np(e) : NULL;
        if (name != NULL)
            printf("%s\"%s\": %llu", sep, name, (unsigned long long)sum->sys_errno[e]);
        else
            printf("%s\"errno-%d\": %llu", sep, e, (unsigned long long)sum->sys_errno[e]);
        sep = ", ";
    }
    printf("}, \"rps\": %.3f, ", (double)ok / pl->duration);
    json_ms("p50_ms", hist_percentile(sum->hist, ok, 50, sum->lat_max_us), ok > 0, 0);
    json_ms("p90_ms", hist_percentile(sum->hist, ok, 90, sum->lat_max_us), ok > 0, 0);
    json_ms("p99_ms", hist_percentile(sum->hist, ok, 99, sum->lat_max_us), ok > 0, 0);
    json_ms("max_ms", (double)sum->lat_max_us, ok > 0, 0);
    json_ms("mean_ms", ok > 0 ? (double)sum->lat_sum_us / (double)ok : 0, ok > 0, 0);
    printf("\"tls\": \"%s\", \"tls_handshakes\": %llu, \"tls_resumed\": %llu, ",
           pl->tls == NULL ? "off" : pl->tls_resume ? "resume" : "full",
           (unsigned long long)sum->tls_handshakes, (unsigned long long)sum->tls_resumed);
    if (isfinite(cpu_s))
        printf("\"generator_cpu\": %.4f}\n", cpu_s / pl->duration);
    else
        printf("\"generator_cpu\": null}\n");
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: loadgen --port PORT [--host 127.0.0.1] [-c|--concurrency 16] [-p|--procs 2]\n"
            "               [-d|--duration 5] [-w|--warmup 1] [-t|--timeout 5] [--begin T]\n"
            "               [--tls-ca FILE [--tls-name localhost] [--tls-resume]]\n"
            "Closed-loop load on a points server: a fresh connection per request, every reply\n"
            "checked. --begin: CLOCK_MONOTONIC seconds at which the load starts (default: now\n"
            "+ 0.1 s). --tls-ca: over TLS, the server's certificate verified against FILE for\n"
            "--tls-name; a full handshake per connection, or with --tls-resume the session of\n"
            "the user's previous exchange offered. Loopback addresses only. Prints one JSON\n"
            "object.\n");
}

int main(int argc, char **argv)
{
    struct plan pl = {.concurrency = 16, .procs = 2, .duration = 5, .warmup = 1, .timeout = 5,
                      .port = 0};
    const char *host = "127.0.0.1";
    const char *tls_ca = NULL, *tls_name = NULL;
    double begin = NAN;
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},    {"port", required_argument, NULL, 'P'},
        {"concurrency", required_argument, NULL, 'c'}, {"procs", required_argument, NULL, 'p'},
        {"duration", required_argument, NULL, 'd'}, {"warmup", required_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, 't'},  {"begin", required_argument, NULL, 'B'},
        {"tls-ca", required_argument, NULL, 'C'},  {"tls-name", required_argument, NULL, 'N'},
        {"tls-resume", no_argument, NULL, 'R'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "c:p:d:w:t:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'P': bad |= parse_int(optarg, 1, 65535, &pl.port); break;
        case 'c': bad |= parse_int(optarg, 1, 1000000, &pl.concurrency); break;
        case 'p': bad |= parse_int(optarg, 1, 1024, &pl.procs); break;
        case 'd': bad |= parse_double(optarg, 0.001, &pl.duration); break;
        case 'w': bad |= parse_double(optarg, 0, &pl.warmup); break;
        case 't': bad |= parse_double(optarg, 0.001, &pl.timeout); break;
        case 'B': bad |= parse_double(optarg, 0, &begin); break;
        case 'C': tls_ca = optarg; break;
        case 'N': tls_name = optarg; break;
        case 'R': pl.tls_resume = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (tls_ca == NULL && (tls_name != NULL || pl.tls_resume)) {
        fprintf(stderr, "loadgen: --tls-name and --tls-resume need --tls-ca\n");
        bad = 1;
    }
    if (tls_name != NULL && tls_name[0] == '\0')
        bad = 1;
    if (bad || optind != argc || pl.port == 0) {
        fprintf(stderr, "loadgen: %s\n", pl.port == 0 ? "--port is required"
                                                      : "bad or out-of-range argument");
        usage(stderr);
        return 2;
    }
    if (resolve_loopback(&pl, host) == -1)
        return 2;
    if (tls_ca != NULL) {
        unsigned char ip[sizeof(struct in6_addr)];
        pl.tls_name = tls_name != NULL ? tls_name : "localhost";
        pl.tls_name_is_ip = inet_pton(AF_INET, pl.tls_name, ip) == 1 ||
                            inet_pton(AF_INET6, pl.tls_name, ip) == 1;
        pl.tls = tls_context(tls_ca, pl.tls_name, pl.tls_name_is_ip);
        if (pl.tls == NULL)
            return 2;
        /* OpenSSL writes to the socket with write(): a server gone away is an EPIPE, counted
         * as a reset, not a SIGPIPE. */
        signal(SIGPIPE, SIG_IGN);
    }
    if (pl.procs > pl.concurrency)
        pl.procs = pl.concurrency; /* no process without users */

    static char request[sizeof PTS_COMMAND + 1];
    snprintf(request, sizeof request, "%s\n", PTS_COMMAND);
    pl.request = request;
    pl.request_len = strlen(request);
    pl.begin_ns = isnan(begin) ? now_ns() + START_GRACE_NS : (int64_t)(begin * 1e9);
    pl.measure_ns = pl.begin_ns + (int64_t)(pl.warmup * 1e9);
    pl.end_ns = pl.measure_ns + (int64_t)(pl.duration * 1e9);
    pl.timeout_ns = (int64_t)(pl.timeout * 1e9);
    raise_nofile(pl.concurrency / pl.procs + 1);
    /* The first call compiles the reply pattern: do it once here, before fork(), so each
     * process inherits it and a broken pattern is seen before any load. */
    pts_reply_shape_ok("", 0);

    size_t map_len = sizeof(struct tally) * (size_t)pl.procs;
    struct tally *tallies = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (tallies == MAP_FAILED) {
        fprintf(stderr, "loadgen: mmap: %s\n", strerror(errno));
        SSL_CTX_free(pl.tls);
        return 1;
    }
    fflush(stdout); /* nothing buffered may be written twice by the children */
    pid_t parent = getpid();
    pid_t *pids = calloc((size_t)pl.procs, sizeof *pids);
    if (pids == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        munmap(tallies, map_len);
        SSL_CTX_free(pl.tls);
        return 1;
    }
    int started = 0, failed = 0;
    for (int i = 0; i < pl.procs; i++) {
        int share = pl.concurrency / pl.procs + (i < pl.concurrency % pl.procs ? 1 : 0);
        pid_t pid = fork();
        if (pid == -1) {
            fprintf(stderr, "loadgen: fork: %s\n", strerror(errno));
            failed = 1;
            break;
        }
        if (pid == 0) {
            /* Die with the parent (e.g. the bench interrupted): a generator must not outlive
             * its caller. The getppid() check covers a parent gone before prctl(). */
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
                _exit(1);
            free(pids); /* the parent's; a leak checker following the fork would report it */
            int rc = run_users(&pl, share, &tallies[i]);
            SSL_CTX_free(pl.tls); /* this process's copy */
            tallies[i].finished = rc == 0;
            _exit(rc == 0 ? 0 : 1);
        }
        pids[started++] = pid;
    }

    /* Reap with a deadline: every process ends by end + timeout on its own; one still running
     * well after that is stuck, and the run fails rather than hangs. Polling every 10 ms costs
     * nothing next to the load and needs no SIGCHLD handler. */
    int64_t deadline = pl.end_ns + pl.timeout_ns + REAP_SLACK_NS;
    if (failed)
        deadline = now_ns();
    int left = started;
    while (left > 0) {
        int wstatus;
        pid_t pid = waitpid(-1, &wstatus, WNOHANG);
        if (pid > 0) {
            left--;
            if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
                failed = 1;
            continue;
        }
        if (pid == -1 && errno != EINTR) {
            fprintf(stderr, "loadgen: waitpid: %s\n", strerror(errno));
            failed = 1;
            break;
        }
        if (now_ns() > deadline) {
            if (!failed)
                fprintf(stderr, "loadgen: a generator process did not finish in time\n");
            for (int i = 0; i < started; i++)
                kill(pids[i], SIGKILL); /* ESRCH for the ones already reaped: harmless */
            while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
                ;
            failed = 1;
            break;
        }
        struct timespec tick = {.tv_sec = 0, .tv_nsec = 10000000};
        nanosleep(&tick, NULL); /* EINTR: just poll again sooner */
    }
    free(pids);

    struct tally sum;
    memset(&sum, 0, sizeof sum);
    double cpu_s = 0;
    for (int i = 0; i < started && !failed; i++) {
        const struct tally *t = &tallies[i];
        if (!t->finished) {
            failed = 1;
            break;
        }
        for (int k = 0; k < K_COUNT; k++)
            sum.kind[k] += t->kind[k];
        for (int e = 0; e <= PTS_ERR_COUNT; e++)
            sum.reply_error[e] += t->reply_error[e];
        for (int e = 0; e < ERRNO_SLOTS; e++)
            sum.sys_errno[e] += t->sys_errno[e];
        for (int b = 0; b < NBUCKETS; b++)
            sum.hist[b] += t->hist[b];
        sum.lat_sum_us += t->lat_sum_us;
        sum.tls_handshakes += t->tls_handshakes;
        sum.tls_resumed += t->tls_resumed;
        if (t->lat_max_us > sum.lat_max_us)
            sum.lat_max_us = t->lat_max_us;
        cpu_s += t->cpu_s;
    }
    munmap(tallies, map_len);
    SSL_CTX_free(pl.tls);
    if (failed) {
        fprintf(stderr, "loadgen: the run failed (see above)\n");
        return 1;
    }
    print_json(&pl, &sum, cpu_s);
    if (fflush(stdout) == EOF || ferror(stdout)) {
        fprintf(stderr, "loadgen: writing the result: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
