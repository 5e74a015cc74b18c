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

#ifndef PTS_VERSION
#define PTS_VERSION "unknown"
#endif

#define PROG "c-client"
#define REPLY_CAP 4096         /* bytes read at most from one connection */
#define HOST_MAX 255           /* longest host name accepted */
#define REASON_MAX 512         /* longest failure reason kept */
#define COUNT_MAX 1000000000L  /* largest accepted count (attempts) */
#define DURATION_MAX 1000000.0 /* largest accepted duration, seconds (fits poll's int ms) */

#define EXIT_REPLY 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

struct client_config {
    char host[HOST_MAX + 1]; /* without IPv6 brackets */
    char port[24];           /* decimal, for getaddrinfo */
    long retries;            /* attempts in all, >= 1 */
    double retry_delay;      /* seconds before the second attempt */
    double retry_max_delay;  /* longest wait between attempts */
    double timeout;          /* seconds to connect, then to receive the reply */
};

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
/* Settings: environment, then --flag value / --flag=value                                    */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " [--<setting> VALUE | --<setting>=VALUE]... [--help] [--version]\n"
            "\n"
            "Ask a points server for its latest points and print the reply line.\n"
            "Each setting is an environment variable; its flag overrides it.\n"
            "\n");
    for (int i = 0; i < PTS_CSET_COUNT; i++) {
        const struct pts_setting *s = &pts_client_settings[i];
        fprintf(out, "  %-24s %-26s %s (default: %s)\n", s->env, s->flag, s->help,
                s->def[0] ? s->def : "\"\"");
    }
    fprintf(out,
            "\n"
            "exit status: 0 reply printed, 1 error reply, unexpected answer or retries\n"
            "exhausted, 2 bad setting\n");
}

/* Unsigned decimal integer made of digits only; 0 on success, -1 if malformed or > max. */
static int parse_count(const char *s, long max, long *out)
{
    long v = 0;
    if (*s == '\0')
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (v > (max - (*p - '0')) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

/* Seconds as a plain decimal ("5", "0.25", ".5"; no sign, exponent, inf or nan). */
static int parse_duration(const char *s, double *out)
{
    int digits = 0, dots = 0;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digits++;
        else if (*p == '.' && dots == 0)
            dots++;
        else
            return -1;
    }
    if (digits == 0)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || v > DURATION_MAX)
        return -1;
    *out = v;
    return 0;
}

/* Check one setting's value against its kind and store it; on error fill err. */
static int apply_setting(struct client_config *cfg, int id, const char *value, char *err,
                         size_t errlen)
{
    const struct pts_setting *s = &pts_client_settings[id];
    long n = 0;
    double d = 0;

    switch (id) {
    case PTS_CSET_TARGET_HOST: {
        size_t len = strlen(value);
        if (len >= 2 && value[0] == '[' && value[len - 1] == ']') { /* [::1] */
            value++;
            len -= 2;
        }
        if (len == 0 || len > HOST_MAX || memchr(value, ' ', len) != NULL) {
            snprintf(err, errlen, "%s=\"%s\": expected a host name or address", s->env, value);
            return -1;
        }
        memcpy(cfg->host, value, len);
        cfg->host[len] = '\0';
        return 0;
    }
    case PTS_CSET_TARGET_PORT:
        if (parse_count(value, 65535, &n) == -1 || n < 1) {
            snprintf(err, errlen, "%s=\"%s\": expected a port number 1-65535", s->env, value);
            return -1;
        }
        snprintf(cfg->port, sizeof cfg->port, "%ld", n);
        return 0;
    case PTS_CSET_CLIENT_RETRIES:
        if (parse_count(value, COUNT_MAX, &n) == -1 || n < 1) {
            snprintf(err, errlen, "%s=\"%s\": expected a whole number of attempts >= 1",
                     s->env, value);
            return -1;
        }
        cfg->retries = n;
        return 0;
    case PTS_CSET_CLIENT_RETRY_DELAY:
    case PTS_CSET_CLIENT_RETRY_MAX_DELAY:
    case PTS_CSET_CLIENT_TIMEOUT:
        if (parse_duration(value, &d) == -1 || d <= 0) {
            snprintf(err, errlen, "%s=\"%s\": expected seconds > 0 (e.g. 0.5)", s->env, value);
            return -1;
        }
        if (id == PTS_CSET_CLIENT_RETRY_DELAY)
            cfg->retry_delay = d;
        else if (id == PTS_CSET_CLIENT_RETRY_MAX_DELAY)
            cfg->retry_max_delay = d;
        else
            cfg->timeout = d;
        return 0;
    default:
        snprintf(err, errlen, "%s: setting not supported by this client", s->env);
        return -1;
    }
}

enum parse_result { PARSE_OK, PARSE_HELP, PARSE_VERSION, PARSE_ERROR };

/* Fill cfg from the defaults, the environment and argv (in that order of precedence, last
 * wins). On PARSE_ERROR err says why. */
static enum parse_result parse_settings(int argc, char **argv, struct client_config *cfg,
                                        char *err, size_t errlen)
{
    const char *values[PTS_CSET_COUNT];

    for (int i = 0; i < PTS_CSET_COUNT; i++) {
        const char *env = getenv(pts_client_settings[i].env);
        values[i] = env != NULL ? env : pts_client_settings[i].def;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return PARSE_HELP;
        if (strcmp(arg, "--version") == 0)
            return PARSE_VERSION;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%s\"", arg);
            return PARSE_ERROR;
        }
        const char *eq = strchr(arg, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        int id = -1;
        for (int i = 0; i < PTS_CSET_COUNT; i++) {
            const char *flag = pts_client_settings[i].flag;
            if (strlen(flag) == name_len && strncmp(flag, arg, name_len) == 0) {
                id = i;
                break;
            }
        }
        if (id == -1) {
            snprintf(err, errlen, "unknown option \"%.*s\"", (int)name_len, arg);
            return PARSE_ERROR;
        }
        if (eq != NULL) {
            values[id] = eq + 1;
        } else if (a + 1 < argc) {
            values[id] = argv[++a];
        } else {
            snprintf(err, errlen, "option %s needs a value", arg);
            return PARSE_ERROR;
        }
    }
    for (int i = 0; i < PTS_CSET_COUNT; i++) {
        if (apply_setting(cfg, i, values[i], err, errlen) == -1)
            return PARSE_ERROR;
    }
    return PARSE_OK;
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
static int open_connection(const struct client_config *cfg, struct attempt *at)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV; /* no AI_ADDRCONFIG: it hides loopback-only hosts */

    int rc = getaddrinfo(cfg->host, cfg->port, &hints, &res);
    if (rc != 0) {
        fail(at, ATTEMPT_RETRY, "cannot resolve \"%s\": %s", cfg->host,
             rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    char err[REASON_MAX] = "no address";
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd == -1; ai = ai->ai_next)
        fd = connect_addr(ai, seconds_to_ms(cfg->timeout), err, sizeof err);
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

/* Does line (without its '\n') have the shape of PTS_REPLY_FORMAT? The format's literal text
 * must match exactly; %s matches a non-empty run up to the next literal text, %lld an integer. */
static int reply_shape_ok(const char *line, size_t len)
{
    const char *fmt = PTS_REPLY_FORMAT;
    const char *end = line + len;
    const char *p = line;

    while (*fmt != '\0' && *fmt != '\n') {
        if (fmt[0] == '%' && fmt[1] == 's') {
            fmt += 2;
            /* the literal text that follows, up to the next conversion or the newline */
            size_t lit = strcspn(fmt, "%\n");
            const char *stop = end;
            if (lit > 0) {
                stop = memmem(p, (size_t)(end - p), fmt, lit);
                if (stop == NULL)
                    return 0;
            }
            if (stop == p)
                return 0;
            p = stop;
        } else if (strncmp(fmt, "%lld", 4) == 0) {
            fmt += 4;
            if (p < end && *p == '-')
                p++;
            const char *digits = p;
            while (p < end && *p >= '0' && *p <= '9')
                p++;
            if (p == digits)
                return 0;
        } else {
            if (p >= end || *p != *fmt)
                return 0;
            p++;
            fmt++;
        }
    }
    return p == end;
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

    size_t prefix = strlen(PTS_ERROR_PREFIX);
    if (text_len >= prefix && memcmp(at->reply, PTS_ERROR_PREFIX, prefix) == 0) {
        const char *code = at->reply + prefix;
        size_t code_len = strcspn(code, " \r\n");
        for (int i = 0; i < PTS_ERR_COUNT; i++) {
            if (strlen(pts_error_code[i]) == code_len &&
                strncmp(pts_error_code[i], code, code_len) == 0) {
                fail(at, pts_error_retryable[i] ? ATTEMPT_RETRY : ATTEMPT_FATAL,
                     "server answered: %.*s", (int)text_len, at->reply);
                return;
            }
        }
        fail(at, ATTEMPT_FATAL, "server answered: %.*s", (int)text_len, at->reply);
        return;
    }
    if (!reply_shape_ok(at->reply, text_len)) {
        fail(at, ATTEMPT_FATAL, "unexpected answer: \"%.*s\"",
             (int)(text_len > 200 ? 200 : text_len), at->reply);
        return;
    }
    at->outcome = ATTEMPT_REPLY;
}

static void run_attempt(const struct client_config *cfg, struct attempt *at)
{
    at->reason[0] = '\0';
    at->reply_len = 0;
    at->line_len = 0;

    int fd = open_connection(cfg, at);
    if (fd == -1)
        return;

    int64_t deadline = now_ms() + seconds_to_ms(cfg->timeout);
    const char request[] = PTS_COMMAND "\n";
    if (send_all(fd, request, sizeof request - 1, deadline, at) == 0) {
        int read_errno = 0;
        enum read_end how = read_reply(fd, deadline, at, &read_errno);
        judge_reply(at, how, read_errno, cfg->timeout);
    }
    close(fd); /* every path of an attempt closes its socket; a failing close changes nothing */
}

/* ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct client_config cfg;
    char err[REASON_MAX];

    memset(&cfg, 0, sizeof cfg);
    switch (parse_settings(argc, argv, &cfg, err, sizeof err)) {
    case PARSE_HELP:
        usage(stdout);
        return EXIT_REPLY;
    case PARSE_VERSION:
        printf(PROG " %s (protocol %d)\n", PTS_VERSION, PTS_PROTOCOL_VERSION);
        return EXIT_REPLY;
    case PARSE_ERROR:
        fprintf(stderr, PROG ": bad setting: %s (see " PROG " --help)\n", err);
        return EXIT_USAGE;
    case PARSE_OK:
        break;
    }

    char target[HOST_MAX + sizeof cfg.port + 4];
    if (strchr(cfg.host, ':') != NULL)
        snprintf(target, sizeof target, "[%s]:%s", cfg.host, cfg.port);
    else
        snprintf(target, sizeof target, "%s:%s", cfg.host, cfg.port);

    struct attempt *at = calloc(1, sizeof *at);
    if (at == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        return EXIT_FAILED;
    }
    double delay = cfg.retry_delay < cfg.retry_max_delay ? cfg.retry_delay : cfg.retry_max_delay;
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
        if (attempt >= cfg.retries) {
            fprintf(stderr, PROG ": giving up on %s after %ld attempt%s; last error: %s\n",
                    target, attempt, attempt == 1 ? "" : "s", at->reason);
            break;
        }
        fprintf(stderr, PROG ": attempt %ld/%ld to %s failed: %s; retrying in %.3g s\n", attempt,
                cfg.retries, target, at->reason, delay);
        sleep_seconds(delay);
        delay = delay * 2 < cfg.retry_max_delay ? delay * 2 : cfg.retry_max_delay;
    }
    free(at);
    return status;
}
