/* Runs every unit test group; exit status 0 when all checks pass. */
#include <stdio.h>

#include "unit.h"

int main(void)
{
    struct unit u = {0, 0};
    struct {
        const char *name;
        void (*fn)(struct unit *);
    } groups[] = {
        {"request", test_request}, {"config", test_config}, {"metrics", test_metrics},
        {"log", test_log},       {"health", test_health},     {"util", test_util},
        {"updater", test_updater}, {"tls", test_tls},       {"sources", test_sources},
    };
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        int before = u.failures;
        groups[i].fn(&u);
        printf("%-8s %s\n", groups[i].name, u.failures == before ? "ok" : "FAILED");
    }
    printf("%d checks, %d failures\n", u.checks, u.failures);
    return u.failures == 0 ? 0 : 1;
}
