/* The health and metrics HTTP endpoint. */
#include "health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "util.h"

#define HTTP_TIMEOUT_NS (5 * NS_PER_SEC)
#define HEARTBEAT_STALE_NS (30 * NS_PER_SEC)

static char *make_response(int status, const char *reason, const char *ctype, const char *body,
                           size_t body_len, int head_only, size_t *out_len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason, ctype, body_len);
    if (n < 0 || (size_t)n >= sizeof head)
        return NULL;
    size_t total = (size_t)n + (head_only ? 0 : body_len);
    char *buf = malloc(total);
    if (!buf)
        return NULL;
    memcpy(buf, head, (size_t)n);
    if (!head_only)
        memcpy(buf + n, body, body_len);
    *out_len = total;
    return buf;
}

char *health_respond(struct metrics *m, const char *head, size_t head_len, int64_t now_ns,
                   size_t *out_len)
{
    static const char text[] = "text/plain; charset=utf-8";
    char method[16], path[256];
    /* Only the request line counts: "METHOD SP PATH [SP VERSION]" up to the first LF. Both
     * spaces are looked for inside it, so a space on a later line (an attacker's "G\n x") can
     * never be taken for the end of the method. */
    const char *eol = memchr(head, '\n', head_len);
    if (!eol)
        eol = head + head_len;
    const char *sp1 = memchr(head, ' ', (size_t)(eol - head));
    if (!sp1 || (size_t)(sp1 - head) >= sizeof method)
        return make_response(400, "Bad Request", text, "bad request\n", 12, 0, out_len);
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (!sp2)
        sp2 = eol;
    memcpy(method, head, (size_t)(sp1 - head));
    method[sp1 - head] = '\0';
    size_t plen = (size_t)(sp2 - sp1 - 1);
    if (plen >= sizeof path)
        return make_response(404, "Not Found", text, "not found\n", 10, 0, out_len);
    memcpy(path, sp1 + 1, plen);
    path[plen] = '\0';
    char *q = strpbrk(path, "?#\r");
    if (q)
        *q = '\0';
    int head_only = strcmp(method, "HEAD") == 0;
    if (!head_only && strcmp(method, "GET") != 0)
        return make_response(405, "Method Not Allowed", text, "method not allowed\n", 19, 0,
                             out_len);
    if (strcmp(path, "/healthz") == 0) {
        int64_t beat = atomic_load_explicit(&m->loop_heartbeat_ns, memory_order_relaxed);
        if (now_ns - beat > HEARTBEAT_STALE_NS)
            return make_response(503, "Service Unavailable", text, "event loop stalled\n", 19,
                                 head_only, out_len);
        return make_response(200, "OK", text, "ok\n", 3, head_only, out_len);
    }
    if (strcmp(path, "/readyz") == 0) {
        if (metrics_get(m, PTS_S_DB_UP))
            return make_response(200, "OK", text, "ready\n", 6, head_only, out_len);
        return make_response(503, "Service Unavailable", text, "not ready\n", 10, head_only,
                             out_len);
    }
    if (strcmp(path, "/metrics") == 0) {
        char *body = malloc(METRICS_TEXT_MAX);
        if (!body)
            return NULL;
        size_t len = metrics_render(m, body, METRICS_TEXT_MAX);
        char *r = make_response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, len,
                                head_only, out_len);
        free(body);
        return r;
    }
    return make_response(404, "Not Found", text, "not found\n", 10, head_only, out_len);
}

static void conn_close(struct health_server *h, struct http_conn *c)
{
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set */
    free(c->out);
    c->fd = -1;
    c->out = NULL;
    c->in_len = c->out_len = c->out_off = 0;
    (void)h;
}

static void conn_write(struct health_server *h, struct http_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return; /* EPOLLOUT will call again */
            conn_close(h, c);
            return;
        }
        c->out_off += (size_t)n;
    }
    conn_close(h, c);
}

static void conn_read(struct health_server *h, struct http_conn *c)
{
    if (c->out)
        return;
    for (;;) {
        if (c->in_len >= sizeof c->in - 1) {
            c->out = make_response(431, "Request Header Fields Too Large", "text/plain",
                                   "too large\n", 10, 0, &c->out_len);
            break;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - 1 - c->in_len, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_close(h, c);
            return;
        }
        if (n == 0) {
            if (c->in_len == 0) {
                conn_close(h, c);
                return;
            }
            break; /* answer what we have */
        }
        c->in_len += (size_t)n;
        c->in[c->in_len] = '\0';
        if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n"))
            break;
    }
    if (!c->out)
        c->out = health_respond(h->m, c->in, c->in_len, mono_ns(), &c->out_len);
    if (!c->out) {
        conn_close(h, c);
        return;
    }
    conn_write(h, c);
}

static void on_conn(struct ae_loop *ae, struct ae_file *f, uint32_t events)
{
    (void)events;
    struct health_server *h = ae->owner;
    struct http_conn *c = container_of(f, struct http_conn, file);
    if (c->fd < 0)
        return; /* closed earlier in this turn (made room for a new one) */
    if (c->out)
        conn_write(h, c);
    else
        conn_read(h, c);
}

static void on_stop(struct ae_loop *ae, struct ae_file *f, uint32_t events)
{
    (void)f;
    (void)events;
    struct health_server *h = ae->owner;
    h->stopping = 1;
}

static void on_listen(struct ae_loop *ae, struct ae_file *f, uint32_t events)
{
    (void)f;
    (void)events;
    struct health_server *h = ae->owner;
    for (;;) {
        int fd = accept4(h->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                usleep(20000); /* EMFILE and friends: the listener stays readable; no spin */
            return;
        }
        /* A free slot, or else the connection closest to its deadline makes room. */
        struct http_conn *slot = NULL;
        for (int i = 0; i < HTTP_MAX_CONNS; i++) {
            struct http_conn *c = &h->conns[i];
            if (c->fd < 0) {
                slot = c;
                break;
            }
            if (!slot || c->deadline < slot->deadline)
                slot = c;
        }
        if (slot->fd >= 0)
            conn_close(h, slot);
        slot->fd = fd;
        slot->deadline = mono_ns() + HTTP_TIMEOUT_NS;
        if (ae_add(&h->ae, &slot->file, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_conn)
            < 0) {
            conn_close(h, slot);
            continue;
        }
        conn_read(h, slot);
    }
}

static void *health_main(void *arg)
{
    struct health_server *h = arg;
    while (!h->stopping) {
        int64_t now = mono_ns();
        int64_t next = now + NS_PER_SEC;
        for (int i = 0; i < HTTP_MAX_CONNS; i++) {
            struct http_conn *c = &h->conns[i];
            if (c->fd < 0)
                continue;
            if (c->deadline <= now)
                conn_close(h, c);
            else if (c->deadline < next)
                next = c->deadline;
        }
        if (ae_run_once(&h->ae, ms_until(next, now, 1000)) < 0)
            break; /* EBADF/EINVAL: nothing left to serve */
    }
    return NULL;
}

int health_start(struct health_server *h, const struct pts_server_config *cfg, struct metrics *m, char *err,
               size_t errlen)
{
    memset(h, 0, sizeof *h);
    h->cfg = cfg;
    h->m = m;
    h->listen_fd = h->stop_fd = h->ae.epfd = -1;
    for (int i = 0; i < HTTP_MAX_CONNS; i++)
        h->conns[i].fd = -1;
    if (cfg->health_port == 0)
        return 0;
    h->listen_fd = net_listen_tcp(cfg->health_host, cfg->health_port,
                                 PTS_CONN_HEALTH_LISTEN_BACKLOG, err, errlen);
    if (h->listen_fd < 0)
        goto fail;
    h->stop_fd = efd_new();
    if (h->stop_fd < 0) {
        snprintf(err, errlen, "health: eventfd: %s", strerror(errno));
        goto fail;
    }
    if (ae_init(&h->ae, h, err, errlen) != 0)
        goto fail;
    if (ae_add(&h->ae, &h->listen_file, h->listen_fd, EPOLLIN, on_listen) < 0
        || ae_add(&h->ae, &h->stop_file, h->stop_fd, EPOLLIN, on_stop) < 0) {
        snprintf(err, errlen, "health: epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    int rc = pthread_create(&h->thread, NULL, health_main, h);
    if (rc != 0) {
        snprintf(err, errlen, "health: pthread_create: %s", strerror(rc));
        goto fail;
    }
    h->started = 1;
    return 0;
fail:
    health_stop(h);
    return -1;
}

void health_stop(struct health_server *h)
{
    if (h->started) {
        efd_signal(h->stop_fd);
        pthread_join(h->thread, NULL);
        h->started = 0;
    }
    for (int i = 0; i < HTTP_MAX_CONNS; i++)
        if (h->conns[i].fd >= 0)
            conn_close(h, &h->conns[i]);
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    if (h->stop_fd >= 0)
        close(h->stop_fd);
    ae_destroy(&h->ae);
    h->listen_fd = h->stop_fd = -1;
}
