/* Socket helpers in the style of anet.c: every error path reported, nothing hidden. */
#ifndef PTS_NET_H
#define PTS_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* A non-blocking, close-on-exec TCP listener with SO_REUSEADDR; -1 and err on failure. */
int net_listen_tcp(const char *host, int port, int backlog, char *err, size_t errlen);
/* "a.b.c.d:port" or "[v6]:port". */
void net_format_peer(const struct sockaddr *sa, char *buf, size_t cap);

#endif
