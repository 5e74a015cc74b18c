/* The event loop (see ae.h). */
#include "ae.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int ae_init(struct ae_loop *ae, void *owner, char *err, size_t errlen)
{
    ae->owner = owner;
    ae->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ae->epfd < 0) {
        snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void ae_destroy(struct ae_loop *ae)
{
    if (ae->epfd >= 0)
        close(ae->epfd);
    ae->epfd = -1;
}

int ae_add(struct ae_loop *ae, struct ae_file *f, int fd, uint32_t events, ae_proc *proc)
{
    f->fd = fd;
    f->proc = proc;
    struct epoll_event ev = {.events = events, .data.ptr = f};
    return epoll_ctl(ae->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int ae_mod(struct ae_loop *ae, struct ae_file *f, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = f};
    return epoll_ctl(ae->epfd, EPOLL_CTL_MOD, f->fd, &ev);
}

int ae_del(struct ae_loop *ae, struct ae_file *f)
{
    /* A non-NULL event for kernels before 2.6.9, as epoll_ctl(2) advises. */
    struct epoll_event ev = {0};
    return epoll_ctl(ae->epfd, EPOLL_CTL_DEL, f->fd, &ev);
}

int ae_run_once(struct ae_loop *ae, int timeout_ms)
{
    struct epoll_event evs[AE_MAX_EVENTS];
    int n = epoll_wait(ae->epfd, evs, AE_MAX_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        struct ae_file *f = evs[i].data.ptr;
        f->proc(ae, f, evs[i].events);
    }
    return n;
}
