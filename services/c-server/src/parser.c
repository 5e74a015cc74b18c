/* Request line parsing (docs/design.md section 1.2). */
#include "parser.h"

#include <string.h>

#define CMD_LEN (sizeof(PTS_COMMAND) - 1)

static enum req_result classify_line(const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > PTS_MAX_LINE_BYTES)
        return REQ_TOO_LONG;
    if (len == CMD_LEN && memcmp(line, PTS_COMMAND, CMD_LEN) == 0)
        return REQ_OK;
    return REQ_UNKNOWN;
}

enum req_result req_parse(const char *buf, size_t len)
{
    const char *nl = memchr(buf, '\n', len);
    if (nl)
        return classify_line(buf, (size_t)(nl - buf));
    /* No terminator yet. A trailing '\r' may still be followed by '\n'. */
    if (len > PTS_MAX_LINE_BYTES + 1)
        return REQ_TOO_LONG;
    if (len == PTS_MAX_LINE_BYTES + 1 && buf[PTS_MAX_LINE_BYTES] != '\r')
        return REQ_TOO_LONG;
    if ((len == CMD_LEN || (len == CMD_LEN + 1 && buf[CMD_LEN] == '\r'))
        && memcmp(buf, PTS_COMMAND, CMD_LEN) == 0)
        return REQ_CANDIDATE;
    return REQ_NEED_MORE;
}

enum req_result req_parse_eof(const char *buf, size_t len)
{
    if (len == 0)
        return REQ_EMPTY;
    enum req_result r = req_parse(buf, len);
    if (r == REQ_NEED_MORE || r == REQ_CANDIDATE)
        return classify_line(buf, len);
    return r;
}
