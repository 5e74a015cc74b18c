/* Settings: the C programs' one validator (see pts_settings.h and protocol/python/settings.py,
 * its mirror: same rules, same messages). */
#include "pts_settings.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SHOWN_MAX 200   /* bytes of a bad value repeated in a message */
#define SETTINGS_MAX 64 /* rows of a table at most */

const char *pts_getenv(const char *name, void *ud)
{
    (void)ud;
    return getenv(name);
}

static int invalid(const struct pts_setting *s, const char *text, char *err, size_t errlen)
{
    const struct pts_setting_kind *k = &pts_setting_kinds[s->kind];
    if (k->secret)
        snprintf(err, errlen, "%s (%s): invalid value (expected %s)", s->env, s->flag, k->expect);
    else
        snprintf(err, errlen, "%s (%s): invalid value '%.*s' (expected %s)", s->env, s->flag,
                 SHOWN_MAX, text, k->expect);
    return -1;
}

static int all_digits(const char *t)
{
    if (*t == '\0')
        return 0;
    for (; *t; t++)
        if (*t < '0' || *t > '9')
            return 0;
    return 1;
}

/* "5", "0.5", "5.", ".25": digits with at most one dot, at least one digit. */
static int plain_decimal(const char *t)
{
    int digits = 0, dots = 0;
    for (; *t; t++) {
        if (*t >= '0' && *t <= '9')
            digits++;
        else if (*t == '.' && dots++ == 0)
            continue;
        else
            return 0;
    }
    return digits > 0;
}

/* Length of one well-formed UTF-8 sequence at p (at most n bytes), 0 if malformed. Overlong
 * forms, surrogates and values above U+10FFFF are malformed, as Python's codec has them. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if ((p[0] & 0xE0) == 0xC0) {
        len = 2;
        cp = p[0] & 0x1F;
    } else if ((p[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = p[0] & 0x0F;
    } else if ((p[0] & 0xF8) == 0xF0) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Check text against a text kind; on success the value (brackets removed) is copied to dst. */
static int parse_text(const struct pts_setting_kind *k, const char *text, char *dst, size_t cap)
{
    size_t len = strlen(text);
    if (k->brackets && len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text++;
        len -= 2;
    }
    if (len < k->min_bytes || len > k->max_bytes || len + 1 > cap)
        return -1;
    const unsigned char *p = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x20 || p[i] == 0x7F || (k->no_space && p[i] == ' ')
            || (k->no_comma && p[i] == ','))
            return -1;
        size_t step = utf8_seq(p + i, len - i);
        if (step == 0)
            return -1;
        i += step;
    }
    memcpy(dst, text, len);
    dst[len] = '\0';
    return 0;
}

static int parse_choice(const struct pts_setting_kind *k, const char *text, int *out)
{
    for (const char *const *a = k->aliases; a && *a; a += 2)
        if (strcasecmp(text, a[0]) == 0) {
            text = a[1];
            break;
        }
    for (int i = 0; k->choices[i]; i++)
        if (strcasecmp(text, k->choices[i]) == 0) {
            *out = i;
            return 0;
        }
    return -1;
}

int pts_setting_parse(const struct pts_setting *s, const char *text, void *config, char *err,
                      size_t errlen)
{
    const struct pts_setting_kind *k = &pts_setting_kinds[s->kind];
    char *field = (char *)config + s->offset;
    char *end;

    switch (k->type) {
    case PTS_KT_INT: {
        if (!all_digits(text))
            return invalid(s, text, err, errlen);
        errno = 0;
        long v = strtol(text, &end, 10);
        if (errno != 0 || *end != '\0' || v < k->min || v > k->max)
            return invalid(s, text, err, errlen);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case PTS_KT_SECONDS: {
        if (!plain_decimal(text))
            return invalid(s, text, err, errlen);
        /* No errno check: an overflow is HUGE_VAL (> max), an underflow 0 or tiny, the same
         * values Python's float() gives. */
        double v = strtod(text, &end);
        int low_ok = k->min_exclusive ? v > k->min : v >= k->min;
        if (*end != '\0' || !low_ok || !(v <= k->max))
            return invalid(s, text, err, errlen);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case PTS_KT_TEXT:
        if (parse_text(k, text, field, s->size) != 0)
            return invalid(s, text, err, errlen);
        return 0;
    case PTS_KT_CHOICE: {
        int v;
        if (parse_choice(k, text, &v) != 0)
            return invalid(s, text, err, errlen);
        memcpy(field, &v, sizeof v);
        return 0;
    }
    }
    return invalid(s, text, err, errlen);
}

static int find_flag(const struct pts_setting *table, int count, const char *name, size_t len)
{
    for (int i = 0; i < count; i++)
        if (strlen(table[i].flag) == len && memcmp(table[i].flag, name, len) == 0)
            return i;
    return -1;
}

static const char *env_text(const struct pts_setting *s, pts_env_fn env, void *env_ud)
{
    const char *v = env(s->env, env_ud);
    /* An empty variable counts as unset (e.g. "${X:-}" in Compose files). */
    return (v && *v) ? v : s->def;
}

enum pts_action pts_settings_load(const struct pts_setting *table, int count, void *config,
                                  int argc, char **argv, pts_env_fn env, void *env_ud,
                                  char *err, size_t errlen)
{
    const char *raw[SETTINGS_MAX];
    enum pts_action action = PTS_ACTION_RUN;
    size_t size = 0;

    err[0] = '\0';
    if (count > SETTINGS_MAX) {
        snprintf(err, errlen, "more than %d settings", SETTINGS_MAX);
        return PTS_ACTION_ERROR;
    }
    for (int i = 0; i < count; i++)
        if (table[i].offset + table[i].size > size)
            size = table[i].offset + table[i].size;
    memset(config, 0, size);
    for (int i = 0; i < count; i++)
        raw[i] = env_text(&table[i], env, env_ud);
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return PTS_ACTION_HELP;
        if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0)
            return PTS_ACTION_VERSION;
        if (strcmp(arg, "--check-config") == 0) {
            action = PTS_ACTION_CHECK;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%.*s' (see --help)", SHOWN_MAX, arg);
            return PTS_ACTION_ERROR;
        }
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        int id = find_flag(table, count, arg, nlen);
        if (id < 0) {
            snprintf(err, errlen, "unknown option '%.*s' (see --help)",
                     (int)(nlen > SHOWN_MAX ? SHOWN_MAX : nlen), arg);
            return PTS_ACTION_ERROR;
        }
        if (eq) {
            raw[id] = eq + 1;
        } else if (a + 1 < argc) {
            raw[id] = argv[++a];
        } else {
            snprintf(err, errlen, "option %s needs a value", table[id].flag);
            return PTS_ACTION_ERROR;
        }
    }
    for (int i = 0; i < count; i++)
        if (pts_setting_parse(&table[i], raw[i], config, err, errlen) != 0)
            return PTS_ACTION_ERROR;
    /* Settings that need others (a certificate its key): checked once every value is valid. */
    for (int i = 0; i < count; i++) {
        if (!raw[i][0])
            continue;
        for (size_t r = 0; r < sizeof table[i].requires / sizeof table[i].requires[0]; r++) {
            int other = table[i].requires[r];
            if (other >= 0 && other < count && !raw[other][0]) {
                snprintf(err, errlen, "%s (%s): required with %s", table[other].env,
                         table[other].flag, table[i].env);
                return PTS_ACTION_ERROR;
            }
        }
    }
    return action;
}

const char *pts_settings_hint(const struct pts_setting *table, int count, int id, int argc,
                              char **argv, pts_env_fn env, void *env_ud)
{
    (void)count;
    const char *flag = table[id].flag;
    size_t flen = strlen(flag);
    const char *text = NULL;
    for (int a = 1; a < argc; a++) {
        if (strncmp(argv[a], flag, flen) != 0)
            continue;
        if (argv[a][flen] == '=')
            text = argv[a] + flen + 1;
        else if (argv[a][flen] == '\0' && a + 1 < argc)
            text = argv[a + 1];
    }
    return text ? text : env_text(&table[id], env, env_ud);
}

void pts_settings_describe(FILE *out, const struct pts_setting *table, int count,
                           const void *config)
{
    for (int i = 0; i < count; i++) {
        const struct pts_setting *s = &table[i];
        const struct pts_setting_kind *k = &pts_setting_kinds[s->kind];
        const char *field = (const char *)config + s->offset;
        long l;
        double d;
        int c;
        switch (k->type) {
        case PTS_KT_INT:
            memcpy(&l, field, sizeof l);
            fprintf(out, "%s=%ld\n", s->env, l);
            break;
        case PTS_KT_SECONDS:
            memcpy(&d, field, sizeof d);
            fprintf(out, "%s=%.6g\n", s->env, d);
            break;
        case PTS_KT_TEXT:
            fprintf(out, "%s=%s\n", s->env, k->secret ? (*field ? "(hidden)" : "") : field);
            break;
        case PTS_KT_CHOICE:
            memcpy(&c, field, sizeof c);
            fprintf(out, "%s=%s\n", s->env, k->choices[c]);
            break;
        }
    }
}

void pts_settings_help(FILE *out, const struct pts_setting *table, int count)
{
    for (int i = 0; i < count; i++)
        fprintf(out, "  %-26s %-24s %s (default: \"%s\")\n", table[i].flag, table[i].env,
                table[i].help, table[i].def);
    fprintf(out, "\n"
                 "  --check-config             print the settings as read, then exit\n"
                 "  --help                     show this text\n"
                 "  --version                  print the version\n");
}
