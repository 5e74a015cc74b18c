/* sources.c: counts per address, against a plain array model, through many adds and removes
 * (the backward-shift deletion must keep every other address findable). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "sources.h"
#include "unit.h"

static struct sockaddr_in v4(uint32_t host_order)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(host_order);
    return a;
}

void test_sources(struct unit *u)
{
    struct sources t;
    CHECK(u, sources_init(&t, 64) == 0);
    enum { N = 200 };
    uint32_t model[N] = {0};
    uint32_t seed = 12345;
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 8) % N);
        struct sockaddr_in a = v4(0x0a000000u + (uint32_t)i * 7919u);
        /* At most 64 connections in all: the table's size. */
        uint32_t total = 0;
        for (int k = 0; k < N; k++)
            total += model[k];
        if (((seed >> 20) & 1) && total < 64) {
            sources_add(&t, (struct sockaddr *)&a);
            model[i]++;
        } else if (model[i] > 0) {
            sources_remove(&t, (struct sockaddr *)&a);
            model[i]--;
        }
        if (step % 97 == 0) {
            int wrong = 0;
            for (int k = 0; k < N; k++) {
                struct sockaddr_in b = v4(0x0a000000u + (uint32_t)k * 7919u);
                wrong += sources_count(&t, (struct sockaddr *)&b) != model[k];
            }
            CHECK(u, wrong == 0);
        }
    }
    /* IPv4 and IPv6 addresses are different sources; ::1 counts apart from 127.0.0.1. */
    struct sockaddr_in lo = v4(0x7f000001u);
    struct sockaddr_in6 lo6;
    memset(&lo6, 0, sizeof lo6);
    lo6.sin6_family = AF_INET6;
    lo6.sin6_addr = in6addr_loopback;
    uint32_t before = sources_count(&t, (struct sockaddr *)&lo);
    sources_add(&t, (struct sockaddr *)&lo6);
    CHECK(u, sources_count(&t, (struct sockaddr *)&lo6) == 1);
    CHECK(u, sources_count(&t, (struct sockaddr *)&lo) == before);
    sources_remove(&t, (struct sockaddr *)&lo6);
    CHECK(u, sources_count(&t, (struct sockaddr *)&lo6) == 0);
    sources_destroy(&t);
}
