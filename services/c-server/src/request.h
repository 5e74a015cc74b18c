/* The request line parser: pure functions over the bytes received so far. */
#ifndef PTS_REQUEST_H
#define PTS_REQUEST_H

#include <stddef.h>

#include "points_protocol.h"

/* Bytes a connection needs to buffer to decide: a line of PTS_MAX_LINE_BYTES, one '\r', and
 * one more byte (with no '\n' among them the line is too long). */
#define REQUEST_BUF_CAP (PTS_MAX_LINE_BYTES + 2)

enum verdict {
    VERDICT_MORE,      /* no decision yet */
    VERDICT_GRACE,      /* exactly the command (maybe + '\r') and no terminator: grace timer */
    VERDICT_REQUEST,             /* a complete request */
    VERDICT_UNKNOWN,        /* a complete line that is not the command */
    VERDICT_TOO_LONG,       /* more than PTS_MAX_LINE_BYTES without a terminator */
    VERDICT_EMPTY           /* EOF with nothing received: close silently */
};

/* Classify the first len bytes received on a connection (len <= REQUEST_BUF_CAP). */
enum verdict request_scan(const char *buf, size_t len);
/* The same after the peer half-closed: a partial line is the line. Never NEED_MORE. */
enum verdict request_scan_eof(const char *buf, size_t len);

#endif
