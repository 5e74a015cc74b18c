/* Process metrics as C11 atomics, rendered in the Prometheus text format 0.0.4. */
#ifndef PTS_METRICS_H
#define PTS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "points_protocol.h"

struct metrics {
    atomic_ullong connections_total;
    atomic_llong connections_active;
    atomic_ullong requests_total;
    atomic_ullong errors[PTS_ERR_COUNT];
    atomic_ullong duration_bucket[PTS_DURATION_BUCKETS_COUNT + 1]; /* not cumulative; last +Inf */
    atomic_ullong duration_sum_ns;
    atomic_ullong db_reads_total;
    atomic_ullong db_errors[PTS_OP_COUNT];
    atomic_int db_up;
    atomic_ullong updates_total;
    atomic_int lock_held;
    atomic_llong loop_heartbeat_ns; /* monotonic time of the event loop's last turn */
    const char *version;
};

void metrics_init(struct metrics *m, const char *version);
/* One reply written: counts it (and its error code, err < 0 for none) and its duration. */
void metrics_reply(struct metrics *m, int err, int64_t duration_ns);
void metrics_observe_duration(struct metrics *m, int64_t ns);

static inline void metrics_add(atomic_ullong *c, unsigned long long v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* Render the exposition text into buf; returns its length, or 0 if cap is too small. */
size_t metrics_render(struct metrics *m, char *buf, size_t cap);
#define METRICS_TEXT_MAX 16384

/* Shortest round-trip decimal of d, Python repr style ("1.0", "0.0005", "+Inf"). */
void format_float(char *buf, size_t cap, double d);

#endif
