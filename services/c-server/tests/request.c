/* The request line parser: terminators, "\r\n", over-long lines, partial commands, EOF. */
#include "request.h"

#include <string.h>

#include "unit.h"

static enum verdict parse(const char *s)
{
    return request_scan(s, strlen(s));
}

static enum verdict parse_eof(const char *s)
{
    return request_scan_eof(s, strlen(s));
}

void test_request(struct unit *u)
{
    /* Terminators */
    CHECK(u, parse("REQUEST_LATEST_POINTS\n") == VERDICT_REQUEST);
    CHECK(u, parse("REQUEST_LATEST_POINTS\r\n") == VERDICT_REQUEST);
    CHECK(u, parse("REQUEST_LATEST_POINTS\r\r\n") == VERDICT_UNKNOWN);
    CHECK(u, parse("REQUEST_LATEST_POINTS\nGARBAGE") == VERDICT_REQUEST);
    CHECK(u, parse("REQUEST_LATEST_POINTS\nX\n") == VERDICT_REQUEST);
    /* Other lines */
    CHECK(u, parse("\n") == VERDICT_UNKNOWN);
    CHECK(u, parse("\r\n") == VERDICT_UNKNOWN);
    CHECK(u, parse("HELLO\n") == VERDICT_UNKNOWN);
    CHECK(u, parse("request_latest_points\n") == VERDICT_UNKNOWN);
    CHECK(u, parse("REQUEST_LATEST_POINTS \n") == VERDICT_UNKNOWN);
    CHECK(u, parse(" REQUEST_LATEST_POINTS\n") == VERDICT_UNKNOWN);
    CHECK(u, parse("REQUEST_LATEST\n") == VERDICT_UNKNOWN);
    CHECK(u, parse("REQUEST_LATEST_POINTSX\n") == VERDICT_UNKNOWN);
    CHECK(u, request_scan("REQUEST_LATEST_POINTS\0\n", 23) == VERDICT_UNKNOWN);
    /* Partial input */
    CHECK(u, request_scan("", 0) == VERDICT_MORE);
    CHECK(u, parse("REQ") == VERDICT_MORE);
    CHECK(u, parse("REQUEST_LATEST_POINTS") == VERDICT_GRACE);
    CHECK(u, parse("REQUEST_LATEST_POINTS\r") == VERDICT_GRACE);
    CHECK(u, parse("REQUEST_LATEST_POINTSX") == VERDICT_MORE);
    CHECK(u, parse("REQUEST_LATEST_POINTS\r\r") == VERDICT_MORE);
    CHECK(u, parse("HELLO") == VERDICT_MORE);
    /* EOF */
    CHECK(u, request_scan_eof("", 0) == VERDICT_EMPTY);
    CHECK(u, parse_eof("REQUEST_LATEST_POINTS") == VERDICT_REQUEST);
    CHECK(u, parse_eof("REQUEST_LATEST_POINTS\r") == VERDICT_REQUEST);
    CHECK(u, parse_eof("REQUEST_LATEST") == VERDICT_UNKNOWN);
    CHECK(u, parse_eof("HELLO") == VERDICT_UNKNOWN);
    CHECK(u, parse_eof("\r") == VERDICT_UNKNOWN);
    CHECK(u, parse_eof("HELLO\n") == VERDICT_UNKNOWN);
    CHECK(u, parse_eof("REQUEST_LATEST_POINTS\n") == VERDICT_REQUEST);

    /* Over-long lines: decided at the 1025th byte; a 1024-byte line (+ "\r") is a line. */
    char buf[REQUEST_BUF_CAP + 8];
    memset(buf, 'A', sizeof buf);
    CHECK(u, request_scan(buf, PTS_MAX_LINE_BYTES) == VERDICT_MORE);
    CHECK(u, request_scan(buf, PTS_MAX_LINE_BYTES + 1) == VERDICT_TOO_LONG);
    CHECK(u, request_scan(buf, REQUEST_BUF_CAP) == VERDICT_TOO_LONG);
    buf[PTS_MAX_LINE_BYTES] = '\n';
    CHECK(u, request_scan(buf, PTS_MAX_LINE_BYTES + 1) == VERDICT_UNKNOWN);
    buf[PTS_MAX_LINE_BYTES] = '\r';
    CHECK(u, request_scan(buf, PTS_MAX_LINE_BYTES + 1) == VERDICT_MORE);
    CHECK(u, request_scan_eof(buf, PTS_MAX_LINE_BYTES + 1) == VERDICT_UNKNOWN);
    buf[PTS_MAX_LINE_BYTES + 1] = '\n';
    CHECK(u, request_scan(buf, PTS_MAX_LINE_BYTES + 2) == VERDICT_UNKNOWN);
    buf[PTS_MAX_LINE_BYTES + 1] = 'A';
    CHECK(u, request_scan(buf, PTS_MAX_LINE_BYTES + 2) == VERDICT_TOO_LONG);
    memset(buf, 'A', sizeof buf);
    buf[PTS_MAX_LINE_BYTES + 1] = '\n'; /* 1025 bytes then '\n': too long */
    CHECK(u, request_scan(buf, PTS_MAX_LINE_BYTES + 2) == VERDICT_TOO_LONG);
}
