/* Request line parsing (docs/design.md section 1.2). */
#include "request.h"

#include <string.h>

#define CMD_LEN (sizeof(PTS_COMMAND) - 1)

static enum verdict classify_line(const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > PTS_MAX_LINE_BYTES)
        return VERDICT_TOO_LONG;
    if (len == CMD_LEN && memcmp(line, PTS_COMMAND, CMD_LEN) == 0)
        return VERDICT_REQUEST;
    return VERDICT_UNKNOWN;
}

enum verdict request_scan(const char *buf, size_t len)
{
    const char *nl = memchr(buf, '\n', len);
    if (nl)
        return classify_line(buf, (size_t)(nl - buf));
    /* No terminator yet. A trailing '\r' may still be followed by '\n'. */
    if (len > PTS_MAX_LINE_BYTES + 1)
        return VERDICT_TOO_LONG;
    if (len == PTS_MAX_LINE_BYTES + 1 && buf[PTS_MAX_LINE_BYTES] != '\r')
        return VERDICT_TOO_LONG;
    if ((len == CMD_LEN || (len == CMD_LEN + 1 && buf[CMD_LEN] == '\r'))
        && memcmp(buf, PTS_COMMAND, CMD_LEN) == 0)
        return VERDICT_GRACE;
    return VERDICT_MORE;
}

enum verdict request_scan_eof(const char *buf, size_t len)
{
    if (len == 0)
        return VERDICT_EMPTY;
    enum verdict r = request_scan(buf, len);
    if (r == VERDICT_MORE || r == VERDICT_GRACE)
        return classify_line(buf, len);
    return r;
}
