/* Health endpoint responses. */
#include "health.h"

#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "util.h"

static char *get(struct metrics *m, const char *req, size_t *len)
{
    return health_respond(m, req, strlen(req), mono_ns(), len);
}

static int starts(const char *resp, const char *prefix)
{
    return resp && strncmp(resp, prefix, strlen(prefix)) == 0;
}

void test_health(struct unit *u)
{
    struct metrics m;
    static const struct metrics_info info[] = {{"language", "c"}, {"version", "1.0.0"}, {0, 0}};
    metrics_init(&m, info);
    atomic_store(&m.loop_heartbeat_ns, mono_ns());
    size_t len;
    char *r;

    r = get(&m, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &len);
    CHECK(u, starts(r, "HTTP/1.0 200 OK\r\n"));
    CHECK(u, r && len > 3 && memcmp(r + len - 3, "ok\n", 3) == 0);
    free(r);
    r = get(&m, "GET /readyz HTTP/1.1\r\n\r\n", &len);
    CHECK(u, starts(r, "HTTP/1.0 503 "));
    free(r);
    metrics_set(&m, PTS_S_DB_UP, 1);
    r = get(&m, "GET /readyz?verbose HTTP/1.1\r\n\r\n", &len);
    CHECK(u, starts(r, "HTTP/1.0 200 OK\r\n"));
    free(r);
    r = get(&m, "GET /metrics HTTP/1.1\r\n\r\n", &len);
    CHECK(u, starts(r, "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4"));
    CHECK(u, r && strstr(r, "\r\n\r\n# HELP points_connections_total") != NULL);
    free(r);
    r = get(&m, "HEAD /metrics HTTP/1.1\r\n\r\n", &len);
    CHECK(u, starts(r, "HTTP/1.0 200 OK\r\n") && r[len - 1] == '\n' && r[len - 3] == '\n');
    free(r);
    r = get(&m, "GET /nope HTTP/1.1\r\n\r\n", &len);
    CHECK(u, starts(r, "HTTP/1.0 404 "));
    free(r);
    r = get(&m, "POST /metrics HTTP/1.1\r\n\r\n", &len);
    CHECK(u, starts(r, "HTTP/1.0 405 "));
    free(r);
    r = get(&m, "garbage", &len);
    CHECK(u, starts(r, "HTTP/1.0 400 "));
    free(r);
    /* A space only after the first line: no method on the request line (it used to be taken
     * from the second line, and the path length went negative: a heap over-read). */
    r = get(&m, "G\n x\n\n", &len);
    CHECK(u, starts(r, "HTTP/1.0 400 "));
    free(r);
    r = get(&m, "GET\n/healthz x\r\n\r\n", &len);
    CHECK(u, starts(r, "HTTP/1.0 400 "));
    free(r);
    r = get(&m, "GET /healthz\n x", &len); /* the path ends at the line's end */
    CHECK(u, starts(r, "HTTP/1.0 200 "));
    free(r);
    r = get(&m, "GET /healthz", &len); /* HTTP/0.9 style, no version */
    CHECK(u, starts(r, "HTTP/1.0 200 "));
    free(r);
    /* A stalled event loop fails /healthz. */
    atomic_store(&m.loop_heartbeat_ns, mono_ns() - 60 * NS_PER_SEC);
    r = get(&m, "GET /healthz HTTP/1.1\r\n\r\n", &len);
    CHECK(u, starts(r, "HTTP/1.0 503 "));
    free(r);
}
