/* JSON log lines: field order, escaping, numbers, timestamps, level filter. */
#include "log.h"

#include "generated/log_events.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

static const char *esc(char *buf, size_t cap, const char *s)
{
    json_escape(buf, cap, s);
    return buf;
}

void test_log(struct unit *u)
{
    char b[256];
    CHECK_STR(u, esc(b, sizeof b, "plain"), "plain");
    CHECK_STR(u, esc(b, sizeof b, "q\"b\\s/"), "q\\\"b\\\\s/");
    CHECK_STR(u, esc(b, sizeof b, "a\nb\rc\td\be\ff"), "a\\nb\\rc\\td\\be\\ff");
    CHECK_STR(u, esc(b, sizeof b, "\x01\x1f\x7f"), "\\u0001\\u001f\x7f");
    CHECK_STR(u, esc(b, sizeof b, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
              "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    CHECK_STR(u, esc(b, sizeof b, "bad\xff\xfe"), "bad\\ufffd\\ufffd");
    CHECK_STR(u, esc(b, sizeof b, "\xc3"), "\\ufffd");          /* truncated sequence */
    CHECK_STR(u, esc(b, sizeof b, "\xc0\xaf"), "\\ufffd\\ufffd"); /* overlong */
    CHECK_STR(u, esc(b, sizeof b, "\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd"); /* surrogate */
    /* Truncation stops at a whole escape, never mid-sequence. */
    CHECK_STR(u, esc(b, 4, "ab\"c"), "ab");
    CHECK_STR(u, esc(b, 3, "\xc3\xa9\xc3\xa9"), "\xc3\xa9");
    CHECK(u, json_escape(b, 1, "abc") == 0 && b[0] == '\0');

    struct timespec t = {.tv_sec = 1767607200, .tv_nsec = 123456789}; /* 2026-01-05T10:00:00 */
    char line[LOG_LINE_MAX];
    size_t n = log_format(line, sizeof line, &t, "c_user-akmal", PTS_EV_DB_ERROR,
                          (struct log_val[]){LV_S("reader"), LV_S("read"),
                                             LV_S("Lost connection \"x\"\n"), LV_D(0.1)},
                          4);
    CHECK_STR(u, line,
              "{\"ts\":\"2026-01-05T10:00:00.123Z\",\"level\":\"warn\",\"service\":\"c-server\","
              "\"user\":\"c_user-akmal\",\"event\":\"db_error\",\"role\":\"reader\","
              "\"op\":\"read\",\"error\":\"Lost connection \\\"x\\\"\\n\",\"retry_in\":0.1}\n");
    CHECK(u, n == strlen(line));

    n = log_format(line, sizeof line, &t, "u", PTS_EV_LISTENING,
                   (struct log_val[]){LV_S("0.0.0.0"), LV_I(5003), LV_I(8080)}, 3);
    CHECK(u, strstr(line, ",\"addr\":\"0.0.0.0\",\"port\":5003,\"health_port\":8080}\n") != NULL);
    n = log_format(line, sizeof line, &t, "u", PTS_EV_ROW_CREATED, NULL, 0);
    CHECK(u, strstr(line, "\"event\":\"row_created\"}\n") != NULL);
    n = log_format(line, sizeof line, &t, "u", PTS_EV_REQUEST,
                   (struct log_val[]){LV_S("127.0.0.1:4000"), LV_S("ok"), LV_D(1.23456)}, 3);
    CHECK(u, strstr(line, "\"duration_ms\":1.235}") != NULL);
    n = log_format(line, sizeof line, &t, "u", PTS_EV_LOCK_ACQUIRED,
                   (struct log_val[]){LV_S("points:u"), LV_D(30.0)}, 2);
    CHECK(u, strstr(line, "\"first_update_in\":30}") != NULL);

    /* A huge value is cut, the line stays one valid object ending in "}\n". */
    char *big = malloc(3 * LOG_LINE_MAX);
    CHECK(u, big != NULL);
    if (big) {
        memset(big, '"', 3 * LOG_LINE_MAX - 1);
        big[3 * LOG_LINE_MAX - 1] = '\0';
        n = log_format(line, sizeof line, &t, "u", PTS_EV_CONFIG_ERROR,
                       (struct log_val[]){LV_S(big)}, 1);
        CHECK(u, n < sizeof line && n > 100);
        CHECK(u, line[n - 1] == '\n' && line[n - 2] == '}' && line[n - 3] == '"');
        CHECK(u, line[n - 4] == '"' && line[n - 5] == '\\'); /* a whole escape before the end */
        free(big);
    }

    /* Levels and the filter */
    CHECK(u, log_level_parse("debug") == LOG_DEBUG && log_level_parse("WARN") == LOG_WARN);
    CHECK(u, log_level_parse("loud") == -1);
    struct logger lg;
    int fds[2];
    CHECK(u, pipe(fds) == 0);
    logger_init(&lg, fds[1], LOG_INFO, "row");
    CHECK(u, !log_enabled(&lg, PTS_EV_REQUEST));
    CHECK(u, log_enabled(&lg, PTS_EV_UPDATED));
    log_request(&lg, "p", "ok", 1);
    log_updated(&lg, 7);
    close(fds[1]);
    char out[1024];
    ssize_t got = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    out[got > 0 ? got : 0] = '\0';
    CHECK(u, strstr(out, "\"event\":\"updated\",\"points\":7}\n") != NULL);
    CHECK(u, strstr(out, "request") == NULL);
    logger_destroy(&lg);
}
