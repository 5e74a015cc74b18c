/* Metrics exposition: text format, families, label series from the start, histogram. */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "unit.h"

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

void test_metrics(struct unit *u)
{
    char f[64];
    format_float(f, sizeof f, 1.0);
    CHECK_STR(u, f, "1.0");
    format_float(f, sizeof f, 0.0005);
    CHECK_STR(u, f, "0.0005");
    format_float(f, sizeof f, 2.5);
    CHECK_STR(u, f, "2.5");
    format_float(f, sizeof f, 0.1);
    CHECK_STR(u, f, "0.1");
    format_float(f, sizeof f, 123456.0);
    CHECK_STR(u, f, "123456.0");
    format_float(f, sizeof f, 1.0 / 0.0);
    CHECK_STR(u, f, "+Inf");
    format_float(f, sizeof f, 10.0); /* was "1e+01": the shortest %g, not Python's repr */
    CHECK_STR(u, f, "10.0");
    format_float(f, sizeof f, 12345678.0); /* Go's exponent from 1e+07 on */
    CHECK_STR(u, f, "1.2345678e+07");
    format_float(f, sizeof f, 1e-7);
    CHECK_STR(u, f, "1e-07");

    struct metrics m;
    static const struct metrics_info info[] = {{"language", "c"}, {"version", "1.2.3"}, {0, 0}};
    metrics_init(&m, info);
    char *text = malloc(METRICS_TEXT_MAX);
    CHECK(u, text != NULL);
    if (!text)
        return;
    size_t len = metrics_render(&m, text, METRICS_TEXT_MAX);
    CHECK(u, len > 0 && len == strlen(text) && text[len - 1] == '\n');
    for (int i = 0; i < PTS_M_COUNT; i++) {
        char l[1024];
        snprintf(l, sizeof l, "# HELP %s %s", pts_metrics[i].name, pts_metrics[i].help);
        CHECK(u, has_line(text, l));
        snprintf(l, sizeof l, "# TYPE %s %s", pts_metrics[i].name, pts_metrics[i].type);
        CHECK(u, has_line(text, l));
    }
    for (int i = 0; i < PTS_ERR_COUNT; i++) {
        char l[128];
        snprintf(l, sizeof l, "points_errors_total{code=\"%s\"} 0.0", pts_error_code[i]);
        CHECK(u, has_line(text, l));
    }
    CHECK(u, has_line(text, "points_db_errors_total{op=\"connect\"} 0.0"));
    CHECK(u, has_line(text, "points_db_errors_total{op=\"read\"} 0.0"));
    CHECK(u, has_line(text, "points_db_errors_total{op=\"update\"} 0.0"));
    CHECK(u, has_line(text, "points_db_errors_total{op=\"lock\"} 0.0"));
    CHECK(u, has_line(text, "points_build_info{language=\"c\",version=\"1.2.3\"} 1.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_bucket{le=\"0.0005\"} 0.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_bucket{le=\"1.0\"} 0.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_bucket{le=\"+Inf\"} 0.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_count 0.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_sum 0.0"));
    CHECK(u, has_line(text, "points_db_up 0.0"));

    /* Every sample line is "name{labels} value"; every line ends in '\n'. */
    int samples = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        CHECK(u, nl != NULL);
        if (!nl)
            break;
        if (*line != '#') {
            samples++;
            char *sp = memchr(line, ' ', (size_t)(nl - line));
            CHECK(u, sp != NULL && strncmp(line, "points_", 7) == 0);
            if (sp) {
                char *end;
                strtod(sp + 1, &end);
                CHECK(u, end == nl);
            }
        }
        line = nl + 1;
    }
    /* + 2 + 2: points_connections_shed_total{state}, points_connections_refused_total{reason} */
    CHECK(u, samples == 3 + 2 + 2 + PTS_ERR_COUNT + PTS_TLS_RESULTS_COUNT + 2 +
                            PTS_DURATION_BUCKETS_COUNT + 3 + 1 + PTS_OP_COUNT + 4);

    /* Counting: replies, error codes, cumulative buckets, sum. */
    metrics_reply(&m, -1, 300000);                      /* 0.3 ms */
    metrics_reply(&m, PTS_ERR_UNKNOWN_COMMAND, 2000000); /* 2 ms */
    metrics_reply(&m, -1, 10000000);                    /* exactly 0.01 s: le="0.01" */
    metrics_reply(&m, -1, 9000000000LL);                /* 9 s: +Inf only */
    metrics_add(&m, PTS_S_DB_ERRORS_TOTAL + PTS_OP_LOCK, 3);
    metrics_set(&m, PTS_S_DB_UP, 1);
    len = metrics_render(&m, text, METRICS_TEXT_MAX);
    CHECK(u, len > 0);
    CHECK(u, has_line(text, "points_requests_total 4.0"));
    CHECK(u, has_line(text, "points_errors_total{code=\"unknown-command\"} 1.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_bucket{le=\"0.0005\"} 1.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_bucket{le=\"0.0025\"} 2.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_bucket{le=\"0.01\"} 3.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_bucket{le=\"5.0\"} 3.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_bucket{le=\"+Inf\"} 4.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_count 4.0"));
    CHECK(u, has_line(text, "points_request_duration_seconds_sum 9.0123"));
    CHECK(u, has_line(text, "points_db_errors_total{op=\"lock\"} 3.0"));
    CHECK(u, has_line(text, "points_db_up 1.0"));

    /* Too small a buffer is reported, not overrun. */
    CHECK(u, metrics_render(&m, text, 100) == 0);
    free(text);
}
