/* Metrics: lock-free counters and their Prometheus text exposition. */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void metrics_init(struct metrics *m, const char *version)
{
    memset(m, 0, sizeof *m);
    atomic_init(&m->connections_total, 0);
    atomic_init(&m->connections_active, 0);
    atomic_init(&m->requests_total, 0);
    for (int i = 0; i < PTS_ERR_COUNT; i++)
        atomic_init(&m->errors[i], 0);
    for (int i = 0; i <= PTS_DURATION_BUCKETS_COUNT; i++)
        atomic_init(&m->duration_bucket[i], 0);
    atomic_init(&m->duration_sum_ns, 0);
    atomic_init(&m->db_reads_total, 0);
    for (int i = 0; i < PTS_OP_COUNT; i++)
        atomic_init(&m->db_errors[i], 0);
    atomic_init(&m->db_up, 0);
    atomic_init(&m->updates_total, 0);
    atomic_init(&m->lock_held, 0);
    atomic_init(&m->loop_heartbeat_ns, 0);
    m->version = version;
}

void metrics_observe_duration(struct metrics *m, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < PTS_DURATION_BUCKETS_COUNT && s > pts_duration_buckets[i])
        i++;
    metrics_add(&m->duration_bucket[i], 1);
    metrics_add(&m->duration_sum_ns, (unsigned long long)ns);
}

void metrics_reply(struct metrics *m, int err, int64_t duration_ns)
{
    metrics_add(&m->requests_total, 1);
    if (err >= 0 && err < PTS_ERR_COUNT)
        metrics_add(&m->errors[err], 1);
    metrics_observe_duration(m, duration_ns);
}

void format_float(char *buf, size_t cap, double d)
{
    if (isinf(d)) {
        snprintf(buf, cap, "%s", d > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (isnan(d)) {
        snprintf(buf, cap, "NaN");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (!strpbrk(buf, ".eE")) {
        size_t n = strlen(buf);
        if (n + 3 <= cap)
            memcpy(buf + n, ".0", 3);
    }
}

struct out {
    char *b;
    size_t cap, len;
    int overflow;
};

__attribute__((format(printf, 2, 3))) static void out_printf(struct out *o, const char *fmt, ...)
{
    if (o->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->b + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->overflow = 1;
        return;
    }
    o->len += (size_t)n;
}

static void header(struct out *o, enum pts_metric_id id)
{
    out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", pts_metrics[id].name, pts_metrics[id].help,
               pts_metrics[id].name, pts_metrics[id].type);
}

static void sample(struct out *o, const char *name, const char *labels, double v)
{
    char num[40];
    format_float(num, sizeof num, v);
    out_printf(o, "%s%s %s\n", name, labels, num);
}

static double load_u(atomic_ullong *a)
{
    return (double)atomic_load_explicit(a, memory_order_relaxed);
}

/* Label value escaping: backslash, double quote and newline. */
static void label_escape(char *dst, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            dst[o++] = '\\';
            dst[o++] = *s;
        } else if (*s == '\n') {
            dst[o++] = '\\';
            dst[o++] = 'n';
        } else {
            dst[o++] = *s;
        }
    }
    dst[o] = '\0';
}

size_t metrics_render(struct metrics *m, char *buf, size_t cap)
{
    struct out o = {buf, cap, 0, 0};
    char labels[160];

    header(&o, PTS_M_CONNECTIONS_TOTAL);
    sample(&o, PTS_METRIC_CONNECTIONS_TOTAL, "", load_u(&m->connections_total));
    header(&o, PTS_M_CONNECTIONS_ACTIVE);
    sample(&o, PTS_METRIC_CONNECTIONS_ACTIVE, "",
           (double)atomic_load_explicit(&m->connections_active, memory_order_relaxed));
    header(&o, PTS_M_REQUESTS_TOTAL);
    sample(&o, PTS_METRIC_REQUESTS_TOTAL, "", load_u(&m->requests_total));
    header(&o, PTS_M_ERRORS_TOTAL);
    for (int i = 0; i < PTS_ERR_COUNT; i++) {
        snprintf(labels, sizeof labels, "{code=\"%s\"}", pts_error_code[i]);
        sample(&o, PTS_METRIC_ERRORS_TOTAL, labels, load_u(&m->errors[i]));
    }

    header(&o, PTS_M_REQUEST_DURATION_SECONDS);
    unsigned long long cum = 0;
    for (int i = 0; i <= PTS_DURATION_BUCKETS_COUNT; i++) {
        char le[40];
        cum += atomic_load_explicit(&m->duration_bucket[i], memory_order_relaxed);
        format_float(le, sizeof le, i < PTS_DURATION_BUCKETS_COUNT ? pts_duration_buckets[i]
                                                                   : INFINITY);
        snprintf(labels, sizeof labels, "{le=\"%s\"}", le);
        sample(&o, PTS_METRIC_REQUEST_DURATION_SECONDS "_bucket", labels, (double)cum);
    }
    sample(&o, PTS_METRIC_REQUEST_DURATION_SECONDS "_count", "", (double)cum);
    sample(&o, PTS_METRIC_REQUEST_DURATION_SECONDS "_sum", "",
           load_u(&m->duration_sum_ns) / 1e9);

    header(&o, PTS_M_DB_READS_TOTAL);
    sample(&o, PTS_METRIC_DB_READS_TOTAL, "", load_u(&m->db_reads_total));
    header(&o, PTS_M_DB_ERRORS_TOTAL);
    for (int i = 0; i < PTS_OP_COUNT; i++) {
        snprintf(labels, sizeof labels, "{op=\"%s\"}", pts_db_op_name[i]);
        sample(&o, PTS_METRIC_DB_ERRORS_TOTAL, labels, load_u(&m->db_errors[i]));
    }
    header(&o, PTS_M_DB_UP);
    sample(&o, PTS_METRIC_DB_UP, "", atomic_load_explicit(&m->db_up, memory_order_relaxed));
    header(&o, PTS_M_UPDATES_TOTAL);
    sample(&o, PTS_METRIC_UPDATES_TOTAL, "", load_u(&m->updates_total));
    header(&o, PTS_M_UPDATE_LOCK_HELD);
    sample(&o, PTS_METRIC_UPDATE_LOCK_HELD, "",
           atomic_load_explicit(&m->lock_held, memory_order_relaxed));
    header(&o, PTS_M_BUILD_INFO);
    char ver[96];
    label_escape(ver, sizeof ver, m->version ? m->version : "");
    snprintf(labels, sizeof labels, "{language=\"c\",version=\"%s\"}", ver);
    sample(&o, PTS_METRIC_BUILD_INFO, labels, 1.0);

    return o.overflow ? 0 : o.len;
}
