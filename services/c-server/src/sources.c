/* Connections per source address: see sources.h. */
#include "sources.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static void key_of(const struct sockaddr *sa, unsigned char key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    } else {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    }
}

/* FNV-1a: cheap, and the table's load stays at or below a half. */
static size_t hash_key(const unsigned char key[16])
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 32));
}

/* The slot holding key, or the free slot where it would go. */
static size_t find(const struct sources *t, const unsigned char key[16])
{
    size_t i = hash_key(key) & t->mask;
    while (t->slots[i].count != 0 && memcmp(t->slots[i].addr, key, 16) != 0)
        i = (i + 1) & t->mask;
    return i;
}

int sources_init(struct sources *t, size_t max)
{
    size_t n = 16;
    while (n < 2 * max)
        n <<= 1;
    t->slots = calloc(n, sizeof *t->slots);
    t->mask = n - 1;
    return t->slots ? 0 : -1;
}

void sources_destroy(struct sources *t)
{
    free(t->slots);
    t->slots = NULL;
}

uint32_t sources_count(const struct sources *t, const struct sockaddr *sa)
{
    unsigned char key[16];
    key_of(sa, key);
    return t->slots[find(t, key)].count;
}

void sources_add(struct sources *t, const struct sockaddr *sa)
{
    unsigned char key[16];
    key_of(sa, key);
    struct source *e = &t->slots[find(t, key)];
    if (e->count == 0)
        memcpy(e->addr, key, 16);
    e->count++;
}

void sources_remove(struct sources *t, const struct sockaddr *sa)
{
    unsigned char key[16];
    key_of(sa, key);
    size_t i = find(t, key);
    if (t->slots[i].count == 0 || --t->slots[i].count > 0)
        return;
    /* Backward-shift deletion: pull later entries of the probe run into the hole, so that
     * lookups need no tombstones. */
    size_t hole = i;
    for (size_t j = (i + 1) & t->mask; t->slots[j].count != 0; j = (j + 1) & t->mask) {
        size_t home = hash_key(t->slots[j].addr) & t->mask;
        /* j's entry may move to the hole unless its home lies cyclically in (hole, j]. */
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole].count = 0;
}
