/* util: lists, backoff, timeouts. */
#include "util.h"

#include <string.h>

#include "unit.h"

void test_util(struct unit *u)
{
    struct dlist a, b, n1, n2, n3;
    dlist_init(&a);
    dlist_init(&b);
    dlist_init(&n1);
    dlist_init(&n2);
    dlist_init(&n3);
    dlist_push_back(&a, &n1);
    dlist_push_back(&a, &n2);
    dlist_push_back(&b, &n3);
    dlist_splice(&b, &a);
    CHECK(u, dlist_empty(&a));
    CHECK(u, b.next == &n3 && n3.next == &n1 && n1.next == &n2 && n2.next == &b);
    CHECK(u, b.prev == &n2 && n2.prev == &n1 && n1.prev == &n3 && n3.prev == &b);
    dlist_remove(&n1);
    CHECK(u, n3.next == &n2 && n2.prev == &n3 && n1.next == &n1);
    dlist_remove(&n1); /* removing an unlinked node is harmless */
    CHECK(u, n3.next == &n2);

    struct backoff bo;
    backoff_init(&bo, 42);
    double expect = 0.1;
    for (int i = 0; i < 10; i++) {
        double d = backoff_next(&bo);
        CHECK(u, d >= expect * 0.8 - 1e-9 && d <= expect * 1.2 + 1e-9);
        expect = expect * 2 > 5.0 ? 5.0 : expect * 2;
    }
    backoff_reset(&bo);
    double d = backoff_next(&bo);
    CHECK(u, d >= 0.08 - 1e-9 && d <= 0.12 + 1e-9);

    CHECK(u, ms_until(100, 200, 1000) == 0);
    CHECK(u, ms_until(NS_PER_MS + 1, 0, 1000) == 2); /* rounded up */
    CHECK(u, ms_until(10 * NS_PER_SEC, 0, 1000) == 1000);
    CHECK(u, secs_to_ns(0.05) == 50 * NS_PER_MS);
    CHECK(u, secs_to_ns(-1) == 0);
}
