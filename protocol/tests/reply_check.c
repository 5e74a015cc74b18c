/* Test driver for pts_reply.c: reads lines from stdin ("\n"-separated, each may hold any byte
 * but "\n") and prints, per line, "<shape ok 0/1> <error index>" (pts_reply_shape_ok,
 * pts_reply_error). tests/unit/test_reply_shape.py compares it with the Python programs' check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pts_reply.h"

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) != -1) {
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        printf("%d %d\n", pts_reply_shape_ok(line, len), pts_reply_error(line, len));
    }
    free(line);
    return 0;
}
