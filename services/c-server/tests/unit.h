/* A very small test harness: CHECK records failures and keeps going. */
#ifndef PTS_UNIT_H
#define PTS_UNIT_H

#include <stdio.h>

struct unit {
    int checks;
    int failures;
};

#define CHECK(u, cond)                                                                        \
    do {                                                                                      \
        (u)->checks++;                                                                        \
        if (!(cond)) {                                                                        \
            (u)->failures++;                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                                     \
    } while (0)

#define CHECK_STR(u, a, b)                                                                    \
    do {                                                                                      \
        const char *a_ = (a), *b_ = (b);                                                      \
        (u)->checks++;                                                                        \
        if (strcmp(a_, b_) != 0) {                                                            \
            (u)->failures++;                                                                  \
            fprintf(stderr, "%s:%d: %s\n  got:      \"%s\"\n  expected: \"%s\"\n", __FILE__, \
                    __LINE__, #a, a_, b_);                                                    \
        }                                                                                     \
    } while (0)

void test_request(struct unit *u);
void test_config(struct unit *u);
void test_metrics(struct unit *u);
void test_log(struct unit *u);
void test_health(struct unit *u);
void test_util(struct unit *u);
void test_sources(struct unit *u);
void test_updater(struct unit *u);
void test_tls(struct unit *u);

#endif
