/* Fuzz target: the settings reader of the C server and client (protocol/c/pts_settings.c) with
 * any environment and command line. The input is split at NUL bytes: the first byte picks the
 * table (even: the server's, odd: the client's); then one value per setting, in the table's
 * order, is that setting's environment variable (an empty piece: unset); the pieces left are
 * argv. A bad value is an error with a message, never a crash; a good one can be described. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pts_settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PIECES 64

struct env {
    const struct pts_setting *table;
    int count;
    char **values; /* one per setting, NULL: unset */
};

static const char *fuzz_env(const char *name, void *ud)
{
    const struct env *e = ud;
    for (int i = 0; i < e->count; i++)
        if (strcmp(e->table[i].env, name) == 0)
            return e->values[i];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink)
        sink = fopen("/dev/null", "w");
    if (size < 1 || !sink)
        return 0;
    int client = data[0] & 1;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *pieces[MAX_PIECES];
    int n = 0;
    for (char *p = text; n < MAX_PIECES && p <= text + size - 1;) {
        pieces[n++] = p;
        p += strlen(p) + 1;
    }
    struct env e = {client ? pts_client_settings : pts_server_settings,
                    client ? PTS_CSET_COUNT : PTS_SET_COUNT, NULL};
    char *values[PTS_SET_COUNT > PTS_CSET_COUNT ? PTS_SET_COUNT : PTS_CSET_COUNT] = {0};
    int used = 0;
    for (; used < e.count && used < n; used++)
        values[used] = pieces[used][0] ? pieces[used] : NULL;
    e.values = values;
    char *argv[MAX_PIECES + 1];
    int argc = 0;
    argv[argc++] = "fuzz";
    for (int i = used; i < n; i++)
        argv[argc++] = pieces[i];
    argv[argc] = NULL;
    union {
        struct pts_server_config s;
        struct pts_client_config c;
    } config;
    char err[512];
    err[0] = '\0';
    enum pts_action a = pts_settings_load(e.table, e.count, &config, argc, argv, fuzz_env, &e,
                                          err, sizeof err);
    if (a == PTS_ACTION_ERROR && (err[0] == '\0' || strnlen(err, sizeof err) == sizeof err))
        abort(); /* an error always says what */
    if (a == PTS_ACTION_RUN || a == PTS_ACTION_CHECK)
        pts_settings_describe(sink, e.table, e.count, &config);
    free(text);
    return 0;
}
