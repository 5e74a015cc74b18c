/* The request line parser: terminators, "\r\n", over-long lines, partial commands, EOF. */
#include "parser.h"

#include <string.h>

#include "unit.h"

static enum req_result parse(const char *s)
{
    return req_parse(s, strlen(s));
}

static enum req_result parse_eof(const char *s)
{
    return req_parse_eof(s, strlen(s));
}

void test_parser(struct unit *u)
{
    /* Terminators */
    CHECK(u, parse("REQUEST_LATEST_POINTS\n") == REQ_OK);
    CHECK(u, parse("REQUEST_LATEST_POINTS\r\n") == REQ_OK);
    CHECK(u, parse("REQUEST_LATEST_POINTS\r\r\n") == REQ_UNKNOWN);
    CHECK(u, parse("REQUEST_LATEST_POINTS\nGARBAGE") == REQ_OK);
    CHECK(u, parse("REQUEST_LATEST_POINTS\nX\n") == REQ_OK);
    /* Other lines */
    CHECK(u, parse("\n") == REQ_UNKNOWN);
    CHECK(u, parse("\r\n") == REQ_UNKNOWN);
    CHECK(u, parse("HELLO\n") == REQ_UNKNOWN);
    CHECK(u, parse("request_latest_points\n") == REQ_UNKNOWN);
    CHECK(u, parse("REQUEST_LATEST_POINTS \n") == REQ_UNKNOWN);
    CHECK(u, parse(" REQUEST_LATEST_POINTS\n") == REQ_UNKNOWN);
    CHECK(u, parse("REQUEST_LATEST\n") == REQ_UNKNOWN);
    CHECK(u, parse("REQUEST_LATEST_POINTSX\n") == REQ_UNKNOWN);
    CHECK(u, req_parse("REQUEST_LATEST_POINTS\0\n", 23) == REQ_UNKNOWN);
    /* Partial input */
    CHECK(u, req_parse("", 0) == REQ_NEED_MORE);
    CHECK(u, parse("REQ") == REQ_NEED_MORE);
    CHECK(u, parse("REQUEST_LATEST_POINTS") == REQ_CANDIDATE);
    CHECK(u, parse("REQUEST_LATEST_POINTS\r") == REQ_CANDIDATE);
    CHECK(u, parse("REQUEST_LATEST_POINTSX") == REQ_NEED_MORE);
    CHECK(u, parse("REQUEST_LATEST_POINTS\r\r") == REQ_NEED_MORE);
    CHECK(u, parse("HELLO") == REQ_NEED_MORE);
    /* EOF */
    CHECK(u, req_parse_eof("", 0) == REQ_EMPTY);
    CHECK(u, parse_eof("REQUEST_LATEST_POINTS") == REQ_OK);
    CHECK(u, parse_eof("REQUEST_LATEST_POINTS\r") == REQ_OK);
    CHECK(u, parse_eof("REQUEST_LATEST") == REQ_UNKNOWN);
    CHECK(u, parse_eof("HELLO") == REQ_UNKNOWN);
    CHECK(u, parse_eof("\r") == REQ_UNKNOWN);
    CHECK(u, parse_eof("HELLO\n") == REQ_UNKNOWN);
    CHECK(u, parse_eof("REQUEST_LATEST_POINTS\n") == REQ_OK);

    /* Over-long lines: decided at the 1025th byte; a 1024-byte line (+ "\r") is a line. */
    char buf[REQ_BUF_CAP + 8];
    memset(buf, 'A', sizeof buf);
    CHECK(u, req_parse(buf, PTS_MAX_LINE_BYTES) == REQ_NEED_MORE);
    CHECK(u, req_parse(buf, PTS_MAX_LINE_BYTES + 1) == REQ_TOO_LONG);
    CHECK(u, req_parse(buf, REQ_BUF_CAP) == REQ_TOO_LONG);
    buf[PTS_MAX_LINE_BYTES] = '\n';
    CHECK(u, req_parse(buf, PTS_MAX_LINE_BYTES + 1) == REQ_UNKNOWN);
    buf[PTS_MAX_LINE_BYTES] = '\r';
    CHECK(u, req_parse(buf, PTS_MAX_LINE_BYTES + 1) == REQ_NEED_MORE);
    CHECK(u, req_parse_eof(buf, PTS_MAX_LINE_BYTES + 1) == REQ_UNKNOWN);
    buf[PTS_MAX_LINE_BYTES + 1] = '\n';
    CHECK(u, req_parse(buf, PTS_MAX_LINE_BYTES + 2) == REQ_UNKNOWN);
    buf[PTS_MAX_LINE_BYTES + 1] = 'A';
    CHECK(u, req_parse(buf, PTS_MAX_LINE_BYTES + 2) == REQ_TOO_LONG);
    memset(buf, 'A', sizeof buf);
    buf[PTS_MAX_LINE_BYTES + 1] = '\n'; /* 1025 bytes then '\n': too long */
    CHECK(u, req_parse(buf, PTS_MAX_LINE_BYTES + 2) == REQ_TOO_LONG);
}
