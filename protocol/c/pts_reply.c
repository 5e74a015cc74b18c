/* Checking what a server sent (see pts_reply.h). The reply's shape is PTS_REPLY_ERE, rendered
 * from protocol.toml's format and field patterns, the same definition the Python programs'
 * REPLY_RE comes from: every program accepts exactly the same replies. */
#include "pts_reply.h"

#include <regex.h>
#include <string.h>

/* Compiled on first use. The C programs that check replies are single-threaded (the client)
 * or one thread per process (the load generator); a multi-threaded caller calls
 * pts_reply_shape_ok once before starting its threads. */
static regex_t reply_re;
static int reply_re_state; /* 0 not compiled, 1 ready, -1 failed (rejects every line) */

int pts_reply_shape_ok(const char *line, size_t len)
{
    if (reply_re_state == 0)
        reply_re_state = regcomp(&reply_re, PTS_REPLY_ERE, REG_EXTENDED | REG_NOSUB) == 0 ? 1 : -1;
    if (reply_re_state < 0)
        return 0;
    /* REG_STARTEND (glibc, BSD): match line[0..len) without a terminating NUL; a NUL byte in
     * the line matches no field pattern, so it is rejected as it should be. */
    if (memchr(line, '\0', len) != NULL)
        return 0;
    regmatch_t whole = {.rm_so = 0, .rm_eo = (regoff_t)len};
    return regexec(&reply_re, line, 1, &whole, REG_STARTEND) == 0;
}

int pts_reply_error(const char *line, size_t len)
{
    size_t prefix = strlen(PTS_ERROR_PREFIX);
    if (len < prefix || memcmp(line, PTS_ERROR_PREFIX, prefix) != 0)
        return -1;
    const char *code = line + prefix;
    size_t rest = len - prefix, code_len = 0;
    while (code_len < rest && code[code_len] != ' ' && code[code_len] != '\r')
        code_len++;
    for (int i = 0; i < PTS_ERR_COUNT; i++)
        if (strlen(pts_error_code[i]) == code_len && memcmp(pts_error_code[i], code, code_len) == 0)
            return i;
    return PTS_ERR_COUNT;
}
