/* Test driver: reads "<%a double>\t<text>" lines and prints the db_error log line with that
 * retry_in and error text, at a fixed time. tests/unit/test_log_format.py compares the lines with
 * the Python server's Logger. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int main(void)
{
    char in[2048], line[LOG_LINE_MAX];
    struct timespec t = {.tv_sec = 1767607200, .tv_nsec = 123456789};
    while (fgets(in, sizeof in, stdin)) {
        in[strcspn(in, "\n")] = '\0';
        char *tab = strchr(in, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        struct log_val v[] = {LV_S("reader"), LV_S("read"), LV_S(tab + 1),
                              LV_D(strtod(in, NULL))};
        fputs(log_format(line, sizeof line, &t, "row-1", PTS_EV_DB_ERROR, v, 4) ? line : "\n",
              stdout);
    }
    return 0;
}
