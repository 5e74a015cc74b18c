/* Connections per source address (docs/design.md section 10), for MAX_CONNECTIONS_PER_SOURCE:
 * an open-addressing hash table (linear probing, backward-shift deletion) of the addresses
 * holding a connection in the server's table, with their count. Sized at start for the table,
 * so it never fills; an address leaves it when its count drops to zero. Mirror: the Python
 * server's Server.sources, a dict (opened and closed in server.py). Used by the loop's thread
 * only. */
#ifndef PTS_SOURCES_H
#define PTS_SOURCES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct source {
    unsigned char addr[16]; /* IPv6, or IPv4 as ::ffff:a.b.c.d */
    uint32_t count;         /* 0: a free slot */
};

struct sources {
    struct source *slots;
    size_t mask; /* slots - 1 (a power of two) */
};

/* Room for the addresses of up to max connections; 0, or -1 when out of memory. */
int sources_init(struct sources *t, size_t max);
void sources_destroy(struct sources *t);
/* The connections sa's address holds now. */
uint32_t sources_count(const struct sources *t, const struct sockaddr *sa);
/* One more (the table has room: sized for every connection) / one fewer for sa's address. */
void sources_add(struct sources *t, const struct sockaddr *sa);
void sources_remove(struct sources *t, const struct sockaddr *sa);

#endif
