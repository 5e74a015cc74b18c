/*
 * refserver: the benchmark's reference, a minimal constant-reply points server with no
 * database. It measures what this machine and the load generator can do for this workload
 * (one TCP connection per request), so the real servers can be compared with it.
 *
 * It does the same network work as the real servers and nothing else: a non-blocking
 * listener with a deep backlog, one event loop (the C server's ae.c), read the request line,
 * write one reply line of the real shape and length, shutdown(SHUT_WR), then linger (read and
 * discard until the peer closes, at most 2 s) before close(). A request line other than the command gets
 * ERROR unknown-command; more than PTS_MAX_LINE_BYTES without a newline gets line-too-long.
 *
 *   refserver [PORT [HOST]]        (or SERVER_PORT / SERVER_HOST; default 127.0.0.1:5099)
 *
 * SIGTERM / SIGINT end it (exit 0).
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ae.h"
#include "points_protocol.h"

#define LINGER_MS 2000
#define IDLE_MS 10000
#define BACKLOG 4096

/* A reply of the real shape and length (the row name of a roster member, points, stamp). */
#define REPLY "User: c_user-azmeer, Points: 123, Last Update: 2026-01-05 10:00:00\n"

enum conn_state { C_FREE, C_READING, C_WRITING, C_LINGER };

struct conn {
    struct ae_file file; /* the socket in the loop (ae.c, the C server's) */
    enum conn_state state;
    int64_t deadline_ms;
    size_t in_len;
    const char *out;
    size_t out_len, out_off;
    char in[PTS_MAX_LINE_BYTES + 2];
};

struct server {
    struct ae_loop ae;
    struct ae_file lfile, sfile;
    int lfd, sfd, running;
    struct conn *conns; /* indexed by descriptor */
    size_t nconns;
    unsigned long served;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(struct server *s, int fd)
{
    ae_del(&s->ae, &s->conns[fd].file);
    close(fd);
    s->conns[fd].state = C_FREE;
}

static void conn_linger(struct server *s, int fd)
{
    struct conn *c = &s->conns[fd];
    if (shutdown(fd, SHUT_WR) == -1) {
        conn_close(s, fd);
        return;
    }
    c->state = C_LINGER;
    c->deadline_ms = now_ms() + LINGER_MS;
    if (ae_mod(&s->ae, &c->file, EPOLLIN | EPOLLRDHUP) == -1)
        conn_close(s, fd);
}

/* Write what is left of the answer; linger when done. */
static void conn_write(struct server *s, int fd)
{
    struct conn *c = &s->conns[fd];
    while (c->out_off < c->out_len) {
        ssize_t n = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->state != C_WRITING) {
                c->state = C_WRITING;
                if (ae_mod(&s->ae, &c->file, EPOLLOUT) == -1)
                    conn_close(s, fd);
            }
            return;
        }
        conn_close(s, fd);
        return;
    }
    s->served++;
    conn_linger(s, fd);
}

static void conn_answer(struct server *s, int fd, const char *line)
{
    struct conn *c = &s->conns[fd];
    c->out = line;
    c->out_len = strlen(line);
    c->out_off = 0;
    conn_write(s, fd);
}

/* Judge the buffered input: a complete line, too much, or EOF. */
static void conn_check(struct server *s, int fd, int eof)
{
    struct conn *c = &s->conns[fd];
    char *nl = memchr(c->in, '\n', c->in_len);
    size_t len;
    if (nl != NULL) {
        len = (size_t)(nl - c->in);
    } else if (c->in_len > PTS_MAX_LINE_BYTES) {
        conn_answer(s, fd, pts_error_line[PTS_ERR_LINE_TOO_LONG]);
        return;
    } else if (eof) {
        if (c->in_len == 0) {
            conn_close(s, fd);
            return;
        }
        len = c->in_len;
    } else {
        return;
    }
    if (len > 0 && c->in[len - 1] == '\r')
        len--;
    if (len == strlen(PTS_COMMAND) && memcmp(c->in, PTS_COMMAND, len) == 0)
        conn_answer(s, fd, REPLY);
    else
        conn_answer(s, fd, pts_error_line[PTS_ERR_UNKNOWN_COMMAND]);
}

static void conn_read(struct server *s, int fd)
{
    struct conn *c = &s->conns[fd];
    char sink[4096];
    for (;;) {
        char *dst = c->state == C_READING ? c->in + c->in_len : sink;
        size_t room = c->state == C_READING ? sizeof c->in - c->in_len : sizeof sink;
        ssize_t n = recv(fd, dst, room, 0);
        if (n > 0) {
            if (c->state == C_READING) {
                c->in_len += (size_t)n;
                conn_check(s, fd, 0);
                if (c->state != C_READING)
                    return; /* answered (or closed); linger reads come with the next event */
            }
            continue;
        }
        if (n == 0) {
            if (c->state == C_READING)
                conn_check(s, fd, 1);
            else
                conn_close(s, fd); /* peer closed during linger: done */
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_close(s, fd);
        return;
    }
}

static void on_conn(struct ae_loop *ae, struct ae_file *f, uint32_t events)
{
    (void)events;
    struct server *s = ae->owner;
    if (s->conns[f->fd].state == C_WRITING)
        conn_write(s, f->fd);
    else if (s->conns[f->fd].state != C_FREE)
        conn_read(s, f->fd);
}

static void on_signal(struct ae_loop *ae, struct ae_file *f, uint32_t events)
{
    (void)f;
    (void)events;
    struct server *s = ae->owner;
    s->running = 0;
}

static void on_listen(struct ae_loop *ae, struct ae_file *f, uint32_t events)
{
    (void)f;
    (void)events;
    struct server *s = ae->owner;
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fprintf(stderr, "refserver: accept: %s\n", strerror(errno));
            return;
        }
        if ((size_t)fd >= s->nconns) {
            close(fd);
            continue;
        }
        struct conn *c = &s->conns[fd];
        c->state = C_READING;
        c->in_len = 0;
        c->deadline_ms = now_ms() + IDLE_MS;
        if (ae_add(&s->ae, &c->file, fd, EPOLLIN | EPOLLRDHUP, on_conn) == -1) {
            close(fd);
            c->state = C_FREE;
            continue;
        }
        conn_read(s, fd); /* the request is often there already */
    }
}

static void sweep(struct server *s)
{
    int64_t now = now_ms();
    for (size_t fd = 0; fd < s->nconns; fd++) {
        struct conn *c = &s->conns[fd];
        if (c->state == C_FREE || c->deadline_ms > now)
            continue;
        if (c->state == C_READING)
            conn_answer(s, (int)fd, pts_error_line[PTS_ERR_IDLE_TIMEOUT]);
        else
            conn_close(s, (int)fd);
    }
}

static int listen_on(const char *host, const char *port)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "refserver: %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    res->ai_protocol);
    int one = 1;
    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
        bind(fd, res->ai_addr, res->ai_addrlen) == -1 || listen(fd, BACKLOG) == -1) {
        fprintf(stderr, "refserver: listen on %s:%s: %s\n", host, port, strerror(errno));
        if (fd != -1)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int main(int argc, char **argv)
{
    const char *port = argc > 1 ? argv[1] : getenv("SERVER_PORT");
    const char *host = argc > 2 ? argv[2] : getenv("SERVER_HOST");
    if (port == NULL || *port == '\0')
        port = "5099";
    if (host == NULL || *host == '\0')
        host = "127.0.0.1";

    struct server s;
    memset(&s, 0, sizeof s);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max && rl.rlim_cur < 65536) {
        rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    s.nconns = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? rl.rlim_cur : 65536;
    s.conns = calloc(s.nconns, sizeof *s.conns);
    if (s.conns == NULL) {
        fprintf(stderr, "refserver: out of memory\n");
        return 1;
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1 ||
        (s.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
        fprintf(stderr, "refserver: signalfd: %s\n", strerror(errno));
        return 1;
    }
    s.lfd = listen_on(host, port);
    if (s.lfd == -1)
        return 1;
    char err[256];
    if (ae_init(&s.ae, &s, err, sizeof err) == -1) {
        fprintf(stderr, "refserver: %s\n", err);
        return 1;
    }
    if (ae_add(&s.ae, &s.lfile, s.lfd, EPOLLIN, on_listen) == -1 ||
        ae_add(&s.ae, &s.sfile, s.sfd, EPOLLIN, on_signal) == -1) {
        fprintf(stderr, "refserver: epoll: %s\n", strerror(errno));
        return 1;
    }
    printf("refserver listening on %s:%s\n", host, port);
    fflush(stdout);

    int64_t next_sweep = now_ms() + 250;
    s.running = 1;
    while (s.running) {
        if (ae_run_once(&s.ae, 250) == -1) {
            fprintf(stderr, "refserver: epoll_wait: %s\n", strerror(errno));
            break;
        }
        if (now_ms() >= next_sweep) {
            sweep(&s);
            next_sweep = now_ms() + 250;
        }
    }
    for (size_t fd = 0; fd < s.nconns; fd++)
        if (s.conns[fd].state != C_FREE)
            close((int)fd);
    close(s.lfd);
    ae_destroy(&s.ae);
    close(s.sfd);
    free(s.conns);
    printf("refserver stopped, served %lu\n", s.served);
    return 0;
}
