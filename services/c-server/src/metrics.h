/* Process metrics: one atomic value slot per series of protocol.toml's counters and gauges
 * (enum pts_metric_slot), the duration histogram, and their Prometheus text exposition
 * (format 0.0.4), rendered from the pts_metrics table. Mirror: points_server/metrics.py. */
#ifndef PTS_METRICS_H
#define PTS_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "points_protocol.h"

/* The labels of "info" metrics (points_build_info): name and value, as the program knows them. */
struct metrics_info {
    const char *label;
    const char *value;
};

struct metrics {
    atomic_llong value[PTS_SLOTS_COUNT];
    atomic_ullong duration_bucket[PTS_DURATION_BUCKETS_COUNT + 1]; /* not cumulative; last +Inf */
    atomic_ullong duration_sum_ns;
    atomic_llong loop_heartbeat_ns; /* monotonic time of the event loop's last turn */
    const struct metrics_info *info; /* terminated by a NULL label */
};

void metrics_init(struct metrics *m, const struct metrics_info *info);
/* One reply written: counts it (and its error code, err < 0 for none) and its duration. */
void metrics_reply(struct metrics *m, int err, int64_t duration_ns);
void metrics_observe_duration(struct metrics *m, int64_t ns);

/* slot: PTS_S_<METRIC> (+ the series' index for a labelled one). Relaxed atomics: every slot is
 * a count or a flag read on its own, never with another one. */
static inline void metrics_add(struct metrics *m, int slot, long long v)
{
    atomic_fetch_add_explicit(&m->value[slot], v, memory_order_relaxed);
}

static inline void metrics_set(struct metrics *m, int slot, long long v)
{
    atomic_store_explicit(&m->value[slot], v, memory_order_relaxed);
}

static inline long long metrics_get(struct metrics *m, int slot)
{
    return atomic_load_explicit(&m->value[slot], memory_order_relaxed);
}

/* Render the exposition text into buf; returns its length, or 0 if cap is too small. */
size_t metrics_render(struct metrics *m, char *buf, size_t cap);
#define METRICS_TEXT_MAX 16384

/* A sample value or bucket bound as the Python server writes it (prometheus_client's
 * floatToGoString): Python's repr ("1.0", "0.0005", "1e-07"), but an exponent from 1e+07 on
 * as Go does ("12345678.0" is "1.2345678e+07"), "+Inf", "-Inf", "NaN". */
void format_float(char *buf, size_t cap, double d);

#endif
