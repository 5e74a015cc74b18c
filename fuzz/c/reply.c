/* Fuzz target: the reply checks every C program that reads replies uses
 * (protocol/c/pts_reply.c): the shape of a reply line and the code of an error line. A line is
 * never both; an error code is -1, a known code's index, or PTS_ERR_COUNT. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pts_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* As the callers hold it: the line inside a NUL-terminated buffer (pts_reply.h). */
    char *line = malloc(size + 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    int shape = pts_reply_shape_ok(line, size);
    int err = pts_reply_error(line, size);
    if (shape != 0 && shape != 1)
        abort();
    if (err < -1 || err > PTS_ERR_COUNT)
        abort();
    if (shape && err != -1)
        abort();
    free(line);
    return 0;
}
