/* updater: the updater session's wait_timeout derived from UPDATE_INTERVAL. */
#include "updater.h"

#include <math.h>

#include "unit.h"

void test_updater(struct unit *u)
{
    /* max(5, ceil(2 x interval)), at most a year: the same table as the Python unit test. */
    CHECK(u, updater_wait_timeout(0.05) == 5);
    CHECK(u, updater_wait_timeout(1) == 5);
    CHECK(u, updater_wait_timeout(2) == 5);
    CHECK(u, updater_wait_timeout(2.5) == 5);
    CHECK(u, updater_wait_timeout(2.6) == 6);
    CHECK(u, updater_wait_timeout(3) == 6);
    CHECK(u, updater_wait_timeout(30) == 60);
    CHECK(u, updater_wait_timeout(30.2) == 61);
    CHECK(u, updater_wait_timeout(3600) == 7200);
    CHECK(u, updater_wait_timeout(15768000) == 31536000);
    CHECK(u, updater_wait_timeout(31536000) == 31536000);
    CHECK(u, updater_wait_timeout(HUGE_VAL) == 31536000);
}
