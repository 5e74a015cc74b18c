/* JSON log lines. The only shared state is the logger passed in by the caller. */
#include "log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return LOG_WARN;
    return -1;
}

int log_event_level(enum pts_log_event_id ev)
{
    int l = log_level_parse(pts_log_events[ev].level);
    return l < 0 ? LOG_INFO : l;
}

void logger_init(struct logger *lg, int fd, int min_level, const char *user)
{
    lg->fd = fd;
    lg->min_level = min_level;
    snprintf(lg->user, sizeof lg->user, "%s", user);
    pthread_mutex_init(&lg->mu, NULL);
}

void logger_destroy(struct logger *lg)
{
    pthread_mutex_destroy(&lg->mu);
}

int log_enabled(const struct logger *lg, enum pts_log_event_id ev)
{
    return log_event_level(ev) >= lg->min_level;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned int cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))
        || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

size_t json_escape(char *dst, size_t cap, const char *s)
{
    size_t o = 0;
    if (cap == 0)
        return 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        char tmp[8];
        const char *out = tmp;
        size_t olen;
        size_t adv = 1;
        switch (*p) {
        case '"': out = "\\\""; olen = 2; break;
        case '\\': out = "\\\\"; olen = 2; break;
        case '\n': out = "\\n"; olen = 2; break;
        case '\r': out = "\\r"; olen = 2; break;
        case '\t': out = "\\t"; olen = 2; break;
        case '\b': out = "\\b"; olen = 2; break;
        case '\f': out = "\\f"; olen = 2; break;
        default:
            if (*p < 0x20) { /* as JSON requires and Python writes: DEL stays */
                olen = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", *p);
            } else {
                adv = utf8_len(p);
                if (adv == 0) {
                    out = "\\ufffd";
                    olen = 6;
                    adv = 1;
                } else {
                    out = (const char *)p;
                    olen = adv;
                }
            }
        }
        if (o + olen + 1 > cap)
            break;
        memcpy(dst + o, out, olen);
        o += olen;
        p += adv;
    }
    dst[o] = '\0';
    return o;
}

/* Append formatted text; the position saturates at cap - 1 (the line is then cut). */
struct sbuf {
    char *b;
    size_t cap, len;
};

static void sb_put(struct sbuf *sb, const char *s, size_t n)
{
    if (sb->len + n + 1 > sb->cap)
        n = sb->cap - sb->len - 1;
    memcpy(sb->b + sb->len, s, n);
    sb->len += n;
    sb->b[sb->len] = '\0';
}

static void sb_str(struct sbuf *sb, const char *s)
{
    sb_put(sb, s, strlen(s));
}

static void sb_json_string(struct sbuf *sb, const char *s)
{
    sb_put(sb, "\"", 1);
    /* Keep room for the closing quote and the rest of a short line. */
    size_t room = sb->cap - sb->len;
    room = room > 64 ? room - 48 : 1;
    sb->len += json_escape(sb->b + sb->len, room, s ? s : "");
    sb_put(sb, "\"", 1);
}

static void sb_num(struct sbuf *sb, double d)
{
    char tmp[64];
    int n = snprintf(tmp, sizeof tmp, "%.3f", d);
    if (n < 0 || (size_t)n >= sizeof tmp || !isfinite(d)) {
        sb_str(sb, "0");
        return;
    }
    /* Trim trailing zeros: 0.100 -> 0.1, 30.000 -> 30 */
    while (n > 0 && tmp[n - 1] == '0')
        n--;
    if (n > 0 && tmp[n - 1] == '.')
        n--;
    if (n == 2 && tmp[0] == '-' && tmp[1] == '0')
        n = 1, tmp[0] = '0';
    sb_put(sb, tmp, (size_t)n);
}

size_t log_format(char *buf, size_t cap, const struct timespec *wall, const char *user,
                  enum pts_log_event_id ev, const struct log_val *vals, size_t n)
{
    struct sbuf sb = {buf, cap - 1, 0}; /* one byte kept for the newline */
    struct tm tm;
    char ts[40], date[24];
    time_t secs = wall->tv_sec;
    gmtime_r(&secs, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts, sizeof ts, "%s.%03dZ", date, (int)((wall->tv_nsec / 1000000) % 1000));
    buf[0] = '\0';
    sb_str(&sb, "{\"ts\":\"");
    sb_str(&sb, ts);
    sb_str(&sb, "\",\"level\":\"");
    sb_str(&sb, pts_log_events[ev].level);
    sb_str(&sb, "\",\"service\":\"" LOG_SERVICE "\",\"user\":");
    sb_json_string(&sb, user);
    sb_str(&sb, ",\"event\":\"");
    sb_str(&sb, pts_log_events[ev].name);
    sb_str(&sb, "\"");
    /* n is the event's field count: the typed log_<event>() functions pass exactly those. */
    for (size_t i = 0; i < n && i < (size_t)pts_log_events[ev].nfields; i++) {
        sb_str(&sb, ",\"");
        sb_str(&sb, pts_log_events[ev].fields[i]);
        sb_str(&sb, "\":");
        switch (vals[i].kind) {
        case LV_STR:
            sb_json_string(&sb, vals[i].s);
            break;
        case LV_INT: {
            char tmp[32];
            int k = snprintf(tmp, sizeof tmp, "%lld", vals[i].i);
            sb_put(&sb, tmp, (size_t)k);
            break;
        }
        case LV_NUM:
            sb_num(&sb, vals[i].d);
            break;
        }
    }
    sb_str(&sb, "}");
    buf[sb.len++] = '\n';
    buf[sb.len] = '\0';
    return sb.len;
}

void log_event(struct logger *lg, enum pts_log_event_id ev, const struct log_val *vals, size_t n)
{
    if (!log_enabled(lg, ev))
        return;
    char line[LOG_LINE_MAX];
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    size_t len = log_format(line, sizeof line, &wall, lg->user, ev, vals, n);
    pthread_mutex_lock(&lg->mu);
    (void)write_all(lg->fd, line, len); /* nothing sensible to do if stdout is gone */
    pthread_mutex_unlock(&lg->mu);
}
