/* Metrics: lock-free value slots and their Prometheus text exposition (see metrics.h). */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void metrics_init(struct metrics *m, const struct metrics_info *info)
{
    for (int i = 0; i < PTS_SLOTS_COUNT; i++)
        atomic_init(&m->value[i], 0);
    for (int i = 0; i <= PTS_DURATION_BUCKETS_COUNT; i++)
        atomic_init(&m->duration_bucket[i], 0);
    atomic_init(&m->duration_sum_ns, 0);
    atomic_init(&m->loop_heartbeat_ns, 0);
    m->info = info;
}

void metrics_observe_duration(struct metrics *m, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < PTS_DURATION_BUCKETS_COUNT && s > pts_duration_buckets[i])
        i++;
    atomic_fetch_add_explicit(&m->duration_bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->duration_sum_ns, (unsigned long long)ns, memory_order_relaxed);
}

void metrics_reply(struct metrics *m, int err, int64_t duration_ns)
{
    metrics_add(m, PTS_S_REQUESTS_TOTAL, 1);
    if (err >= 0 && err < PTS_ERR_COUNT)
        metrics_add(m, PTS_S_ERRORS_TOTAL + err, 1);
    metrics_observe_duration(m, duration_ns);
}

/* Python's repr of a finite double: the shortest digits that read back as d; positional when
 * the decimal exponent is in [-4, 16), else "d.ddde+XX" / "de-XX". */
static void python_repr(char *buf, size_t cap, double d)
{
    char e[40];
    int prec;
    for (prec = 0; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e is "[-]D[.DDD]e[+-]XX": split into sign, digits and exponent. */
    const char *p = e;
    int neg = *p == '-';
    if (neg)
        p++;
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.' && nd + 1 < sizeof digits)
            digits[nd++] = *p;
    digits[nd] = '\0';
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') /* "1.000e+01": digits "1" */
        digits[--nd] = '\0';

    char out[64];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (exp < -4 || exp >= 16) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, nd - 1);
            o += nd - 1;
        }
        o += (size_t)snprintf(out + o, sizeof out - o, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
    } else if (exp < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int z = -1; z > exp; z--)
            out[o++] = '0';
        memcpy(out + o, digits, nd);
        o += nd;
    } else {
        for (int i = 0; i <= exp; i++)
            out[o++] = (size_t)i < nd ? digits[i] : '0';
        out[o++] = '.';
        if ((size_t)exp + 1 < nd) {
            memcpy(out + o, digits + exp + 1, nd - (size_t)exp - 1);
            o += nd - (size_t)exp - 1;
        } else {
            out[o++] = '0';
        }
    }
    out[o] = '\0';
    snprintf(buf, cap, "%s", out);
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
    char s[64];
    python_repr(s, sizeof s, d);
    /* Go switches to exponents sooner than Python: from 7 digits before the point (positive
     * values only, as prometheus_client does). */
    const char *dot = strchr(s, '.');
    if (d > 0 && dot != NULL && dot - s > 6 && !strchr(s, 'e')) {
        int before = (int)(dot - s);
        char mant[64];
        size_t n = 0;
        mant[n++] = s[0];
        mant[n++] = '.';
        for (const char *q = s + 1; *q; q++)
            if (*q != '.')
                mant[n++] = *q;
        while (n > 0 && (mant[n - 1] == '0' || mant[n - 1] == '.')) /* rstrip('0.') */
            n--;
        mant[n] = '\0';
        snprintf(buf, cap, "%se+%02d", mant, before - 1);
        return;
    }
    snprintf(buf, cap, "%s", s);
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

static void sample(struct out *o, const char *name, const char *suffix, const char *labels,
                   double v)
{
    char num[64];
    format_float(num, sizeof num, v);
    out_printf(o, "%s%s%s %s\n", name, suffix, labels, num);
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

static const char *info_value(const struct metrics *m, const char *label)
{
    for (const struct metrics_info *i = m->info; i && i->label; i++)
        if (strcmp(i->label, label) == 0)
            return i->value;
    return "";
}

static void render_histogram(struct out *o, struct metrics *m, const struct pts_metric *pm)
{
    char labels[96], le[64];
    unsigned long long cum = 0;
    for (int i = 0; i <= PTS_DURATION_BUCKETS_COUNT; i++) {
        cum += atomic_load_explicit(&m->duration_bucket[i], memory_order_relaxed);
        format_float(le, sizeof le,
                     i < PTS_DURATION_BUCKETS_COUNT ? pts_duration_buckets[i] : INFINITY);
        snprintf(labels, sizeof labels, "{le=\"%s\"}", le);
        sample(o, pm->name, "_bucket", labels, (double)cum);
    }
    sample(o, pm->name, "_count", "", (double)cum);
    double sum_ns = (double)atomic_load_explicit(&m->duration_sum_ns, memory_order_relaxed);
    sample(o, pm->name, "_sum", "", sum_ns / 1e9);
}

static void render_info(struct out *o, struct metrics *m, const struct pts_metric *pm)
{
    char labels[512], value[128];
    size_t n = 0;
    labels[n++] = '{';
    for (int i = 0; pm->labels[i] && n < sizeof labels - 1; i++) {
        label_escape(value, sizeof value, info_value(m, pm->labels[i]));
        int k = snprintf(labels + n, sizeof labels - n, "%s%s=\"%s\"", i ? "," : "",
                         pm->labels[i], value);
        n = k < 0 || (size_t)k >= sizeof labels - n ? sizeof labels - 2 : n + (size_t)k;
    }
    snprintf(labels + n, sizeof labels - n, "}");
    sample(o, pm->name, "", labels, 1.0);
}

static void render_values(struct out *o, struct metrics *m, const struct pts_metric *pm)
{
    char labels[160];
    for (int i = 0; i < pm->nseries; i++) {
        labels[0] = '\0';
        if (pm->series)
            snprintf(labels, sizeof labels, "{%s=\"%s\"}", pm->labels[0], pm->series[i]);
        sample(o, pm->name, "", labels, (double)metrics_get(m, pm->slot + i));
    }
}

size_t metrics_render(struct metrics *m, char *buf, size_t cap)
{
    struct out o = {buf, cap, 0, 0};
    for (int id = 0; id < PTS_M_COUNT; id++) {
        const struct pts_metric *pm = &pts_metrics[id];
        out_printf(&o, "# HELP %s %s\n# TYPE %s %s\n", pm->name, pm->help, pm->name, pm->type);
        switch (pm->shape) {
        case PTS_MS_HISTOGRAM:
            render_histogram(&o, m, pm);
            break;
        case PTS_MS_INFO:
            render_info(&o, m, pm);
            break;
        case PTS_MS_VALUE:
            render_values(&o, m, pm);
            break;
        }
    }
    return o.overflow ? 0 : o.len;
}
