/* The request line parser: pure functions over the bytes received so far. */
#ifndef PTS_PARSER_H
#define PTS_PARSER_H

#include <stddef.h>

#include "points_protocol.h"

/* Bytes a connection needs to buffer to decide: a line of PTS_MAX_LINE_BYTES, one '\r', and
 * one more byte (with no '\n' among them the line is too long). */
#define REQ_BUF_CAP (PTS_MAX_LINE_BYTES + 2)

enum req_result {
    REQ_NEED_MORE,      /* no decision yet */
    REQ_CANDIDATE,      /* exactly the command (maybe + '\r') and no terminator: grace timer */
    REQ_OK,             /* a complete request */
    REQ_UNKNOWN,        /* a complete line that is not the command */
    REQ_TOO_LONG,       /* more than PTS_MAX_LINE_BYTES without a terminator */
    REQ_EMPTY           /* EOF with nothing received: close silently */
};

/* Classify the first len bytes received on a connection (len <= REQ_BUF_CAP). */
enum req_result req_parse(const char *buf, size_t len);
/* The same after the peer half-closed: a partial line is the line. Never NEED_MORE. */
enum req_result req_parse_eof(const char *buf, size_t len);

#endif
