/* Fuzz target: the C server's health HTTP parser (services/c-server/src/health.c,
 * health_respond) fed any request head, as read from the health port (at most HTTP_REQ_MAX
 * bytes). The answer must be a whole HTTP/1.0 response with one of the statuses the server
 * uses and a Content-Length that matches its body (none for HEAD). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct metrics m;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct metrics_info info[] = {{"language", "c"}, {"version", "fuzz"}, {0, 0}};
    if (!ready) {
        metrics_init(&m, info);
        ready = 1;
    }
    atomic_store(&m.loop_heartbeat_ns, mono_ns());
    if (size > HTTP_REQ_MAX)
        size = HTTP_REQ_MAX;
    char *head = malloc(size ? size : 1);
    if (!head)
        return 0;
    memcpy(head, data, size);
    size_t len = 0;
    char *r = health_respond(&m, head, size, mono_ns(), &len);
    if (r) {
        /* r holds exactly len bytes, no NUL: read the status by hand, never past r + len. */
        if (len < 17 || memcmp(r, "HTTP/1.0 ", 9) != 0 || !isdigit((unsigned char)r[9])
            || !isdigit((unsigned char)r[10]) || !isdigit((unsigned char)r[11]))
            abort();
        int status = (r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0');
        if (status != 200 && status != 400 && status != 404 && status != 405 && status != 503)
            abort();
        const char *end = memmem(r, len, "\r\n\r\n", 4);
        const char *cl = memmem(r, len, "Content-Length: ", 16);
        if (!end || !cl || cl > end)
            abort();
        size_t body = len - (size_t)(end + 4 - r);
        size_t want = strtoul(cl + 16, NULL, 10);
        if (body != want && body != 0) /* HEAD: the length of the body not sent */
            abort();
        free(r);
    }
    free(head);
    return 0;
}
