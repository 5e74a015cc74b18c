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
 * Names, the request, the error codes and the settings come from protocol/points_protocol.h
 * (rendered from protocol/protocol.toml). No global state: everything lives in main's frame.
 */

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

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

/* Write all of buf before deadline. 0, or -1 with at filled. */
static int send_all(int fd, const char *buf, size_t len, int64_t deadline, struct attempt *at)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int wait = remaining_ms(deadline);
            if (wait == 0) {
                fail(at, ATTEMPT_RETRY, "timed out sending the request");
                return -1;
            }
            struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
            if (poll(&p, 1, wait) == -1 && errno != EINTR) {
                fail(at, ATTEMPT_RETRY, "poll: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        fail(at, ATTEMPT_RETRY, "send: %s", n == -1 ? strerror(errno) : "no progress");
        return -1;
    }
    return 0;
}

enum read_end { READ_EOF, READ_CAP, READ_RESET, READ_TIMEOUT, READ_FAILED };

/* Read until the peer closes, REPLY_CAP bytes arrive, or the deadline passes. */
static enum read_end read_reply(int fd, int64_t deadline, struct attempt *at, int *read_errno)
{
    at->reply_len = 0;
    at->reply[0] = '\0';
    for (;;) {
        if (at->reply_len == REPLY_CAP)
            return READ_CAP;
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
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int wait = remaining_ms(deadline);
            if (wait == 0)
                return READ_TIMEOUT;
            struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
            if (poll(&p, 1, wait) == -1 && errno != EINTR) {
                *read_errno = errno;
                return READ_FAILED;
            }
            continue;
        }
        *read_errno = errno;
        return errno == ECONNRESET ? READ_RESET : READ_FAILED;
    }
}

/* Classify what the server sent. */
static void judge_reply(struct attempt *at, enum read_end how, int read_errno, double timeout)
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
            fail(at, ATTEMPT_RETRY, "recv: %s", strerror(read_errno));
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

static void run_attempt(const struct pts_client_config *cfg, struct attempt *at)
{
    at->reason[0] = '\0';
    at->reply_len = 0;
    at->line_len = 0;

    int fd = open_connection(cfg, at);
    if (fd == -1)
        return;

    int64_t deadline = now_ms() + seconds_to_ms(cfg->client_timeout);
    const char request[] = PTS_COMMAND "\n";
    if (send_all(fd, request, sizeof request - 1, deadline, at) == 0) {
        int read_errno = 0;
        enum read_end how = read_reply(fd, deadline, at, &read_errno);
        judge_reply(at, how, read_errno, cfg->client_timeout);
    }
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
    /* TLS (design.md section 9) is in the Python client so far: refuse rather than talk
     * plaintext to a server the operator wanted verified. */
    if (cfg.tls_ca_file[0]) {
        fprintf(stderr, PROG ": bad setting: TLS_CA_FILE: TLS is not supported by the C client "
                "yet (the Python client supports it) (see " PROG " --help)\n");
        return EXIT_USAGE;
    }

    char target[sizeof cfg.target_host + 32];
    if (strchr(cfg.target_host, ':') != NULL)
        snprintf(target, sizeof target, "[%s]:%ld", cfg.target_host, cfg.target_port);
    else
        snprintf(target, sizeof target, "%s:%ld", cfg.target_host, cfg.target_port);

    struct attempt *at = calloc(1, sizeof *at);
    if (at == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        return EXIT_FAILED;
    }
    double delay = cfg.client_retry_delay < cfg.client_retry_max_delay
                       ? cfg.client_retry_delay
                       : cfg.client_retry_max_delay;
    int status = EXIT_FAILED;
    for (long attempt = 1;; attempt++) {
        run_attempt(&cfg, at);
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
    return status;
}
