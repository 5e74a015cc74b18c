/* Test driver: reads one C double per line (as "%la" hex floats, exact) and prints
 * format_float's text for it. tests/unit/test_number_format.py compares the output with the
 * Python server's formatting (prometheus_client's floatToGoString). */
#include <stdio.h>
#include <stdlib.h>

#include "metrics.h"

int main(void)
{
    char line[128], out[64];
    while (fgets(line, sizeof line, stdin)) {
        format_float(out, sizeof out, strtod(line, NULL));
        puts(out);
    }
    return 0;
}
