/* Clocks, eventfds, whole writes and backoff. */
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 5.0
#define BACKOFF_JITTER 0.2

int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

int64_t secs_to_ns(double s)
{
    if (!(s > 0))
        return 0;
    if (s > 9.0e9)
        return INT64_MAX / 4;
    return (int64_t)llround(s * (double)NS_PER_SEC);
}

int ms_until(int64_t deadline_ns, int64_t now_ns, int cap_ms)
{
    if (deadline_ns <= now_ns)
        return 0;
    int64_t ms = (deadline_ns - now_ns + NS_PER_MS - 1) / NS_PER_MS;
    return ms > cap_ms ? cap_ms : (int)ms;
}

int efd_new(void)
{
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void efd_signal(int fd)
{
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(fd, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
    /* EAGAIN means the counter is saturated: the reader will wake anyway. */
}

void efd_drain(int fd)
{
    uint64_t v;
    ssize_t n;
    do {
        n = read(fd, &v, sizeof v);
    } while (n < 0 && errno == EINTR);
}

int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void backoff_init(struct backoff *b, unsigned int seed)
{
    b->base = BACKOFF_FIRST;
    b->seed = seed;
}

void backoff_reset(struct backoff *b)
{
    b->base = BACKOFF_FIRST;
}

double backoff_next(struct backoff *b)
{
    double r = (double)rand_r(&b->seed) / (double)RAND_MAX; /* 0..1 */
    double d = b->base * (1.0 - BACKOFF_JITTER + 2.0 * BACKOFF_JITTER * r);
    b->base = b->base * 2 > BACKOFF_MAX ? BACKOFF_MAX : b->base * 2;
    return d;
}
