/* Fuzz target: the C server's request scanner (services/c-server/src/request.c) over a byte
 * stream received in pieces. Every prefix a connection can hold is scanned, as the server does
 * after each read; the verdicts must follow the rules of design.md section 1.2:
 *   - a decision (request, unknown command, too long) never changes as more bytes arrive;
 *   - GRACE only for exactly the command, with or without one '\r';
 *   - at EOF there is always a decision, EMPTY only for no bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

static int decided(enum verdict v)
{
    return v == VERDICT_REQUEST || v == VERDICT_UNKNOWN || v == VERDICT_TOO_LONG;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap = size < REQUEST_BUF_CAP ? size : REQUEST_BUF_CAP;
    /* A copy of exactly the bytes held, so ASan sees any read past them. */
    char *buf = malloc(cap ? cap : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, cap);
    enum verdict first = VERDICT_MORE;
    for (size_t len = 0; len <= cap; len++) {
        enum verdict v = request_scan(buf, len);
        if (decided(first) && v != first)
            abort(); /* a decision changed with more bytes */
        if (!decided(first) && decided(v))
            first = v;
        if (v == VERDICT_GRACE && !(len == strlen(PTS_COMMAND)
                                    || (len == strlen(PTS_COMMAND) + 1 && buf[len - 1] == '\r')))
            abort();
        if (v == VERDICT_EMPTY)
            abort(); /* only at EOF */
        enum verdict e = request_scan_eof(buf, len);
        if (e == VERDICT_MORE || e == VERDICT_GRACE || (e == VERDICT_EMPTY) != (len == 0))
            abort();
        if (decided(v) && e != v)
            abort(); /* EOF changes nothing once decided */
        if (decided(first))
            break; /* the server stops reading the request here */
    }
    free(buf);
    return 0;
}
