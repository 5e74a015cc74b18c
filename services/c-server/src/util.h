/* Small helpers shared by every module: clocks, an intrusive list, eventfds, backoff. */
#ifndef PTS_UTIL_H
#define PTS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NS_PER_SEC 1000000000LL
#define NS_PER_MS 1000000LL

/* Monotonic clock in nanoseconds. */
int64_t mono_ns(void);
/* Seconds (may be fractional) to nanoseconds, saturating. */
int64_t secs_to_ns(double s);
/* Milliseconds for poll()/epoll_wait() until deadline (rounded up, 0 if past, capped). */
int ms_until(int64_t deadline_ns, int64_t now_ns, int cap_ms);

/* Intrusive circular doubly linked list. An unlinked node points to itself. */
struct dlist {
    struct dlist *prev, *next;
};

static inline void dlist_init(struct dlist *l) { l->prev = l->next = l; }
static inline int dlist_empty(const struct dlist *l) { return l->next == l; }
static inline void dlist_push_back(struct dlist *head, struct dlist *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
static inline void dlist_remove(struct dlist *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
/* Move every node of from to the end of to; from becomes empty. */
static inline void dlist_splice(struct dlist *to, struct dlist *from)
{
    if (dlist_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    dlist_init(from);
}

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Non-blocking, close-on-exec eventfd; -1 on error (errno set). */
int efd_new(void);
/* Add 1 to the eventfd (never blocks in practice). */
void efd_signal(int fd);
/* Reset the eventfd to 0. */
void efd_drain(int fd);

/* write() the whole buffer to a blocking descriptor, retrying on EINTR. 0 or -1. */
int write_all(int fd, const void *buf, size_t len);

/* Exponential backoff: 0.1 s doubling to 5 s, +-20 % jitter. */
struct backoff {
    double base;
    unsigned int seed;
};
void backoff_init(struct backoff *b, unsigned int seed);
void backoff_reset(struct backoff *b);
/* The next delay in seconds; doubles the base for the time after. */
double backoff_next(struct backoff *b);

#endif
