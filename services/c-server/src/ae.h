/* A small event loop (after redis ae.c): descriptors, each with its callback, over epoll.
 *
 * The owner keeps its own timers (FIFO lists in server.c, per-slot deadlines in health.c) and
 * passes the longest wait; ae waits and calls the callbacks. Used by the protocol server, the
 * health server (in its own thread, with its own loop) and the benchmark's reference server. */
#ifndef PTS_AE_H
#define PTS_AE_H

#include <stddef.h>
#include <stdint.h>

struct ae_loop;
struct ae_file;

/* Called with the events epoll reported for f (EPOLLIN, EPOLLOUT, EPOLLERR, ...). */
typedef void ae_proc(struct ae_loop *ae, struct ae_file *f, uint32_t events);

/* Embedded in the owner's object (container_of gets the object back); must stay valid while
 * registered, and until the end of the turn in which it was removed. */
struct ae_file {
    int fd;
    ae_proc *proc;
};

#define AE_MAX_EVENTS 256

struct ae_loop {
    int epfd;
    void *owner; /* for the callbacks: the server that runs this loop */
};

/* 0, or -1 with err set. */
int ae_init(struct ae_loop *ae, void *owner, char *err, size_t errlen);
void ae_destroy(struct ae_loop *ae);

/* Watch fd for events, calling proc with f. 0, or -1 with errno set. */
int ae_add(struct ae_loop *ae, struct ae_file *f, int fd, uint32_t events, ae_proc *proc);
/* Watch f for other events from now on. 0, or -1 with errno set. */
int ae_mod(struct ae_loop *ae, struct ae_file *f, uint32_t events);
/* Stop watching f (before closing its descriptor). 0, or -1 with errno set. */
int ae_del(struct ae_loop *ae, struct ae_file *f);

/* Wait at most timeout_ms (-1: no limit) and call the callbacks of what happened. Returns the
 * number of events handled (0: the time passed or a signal interrupted the wait), or -1 with
 * errno set when epoll itself failed. */
int ae_run_once(struct ae_loop *ae, int timeout_ms);

#endif
