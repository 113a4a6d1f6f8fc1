/* engine_harness.c -- the crypto engine of the fuzz targets, over a SQLite store that outlives
 * each input. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine_harness.h"
#include "mindroom/log.h"

static const unsigned char SECRET[32] = "instance secret for the fuzzer!";

fuzz_engine FZ;
static char dir[64];

/* Removes the store, SQLite's side files included. */
static void finish(void)
{
    crypto_engine_free(&FZ.engine);
    mr_store_close(FZ.store);
    static const char *const files[] = {"state.db", "state.db-wal", "state.db-shm", "state.db-journal"};
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

void fuzz_engine_open(const char *name)
{
    char url[128];
    mr_err err = {0};
    mr_log_configure(MR_LOG_ERROR, MR_LOG_HUMAN, stderr);
    snprintf(dir, sizeof dir, "/tmp/mr-fuzz-%s-XXXXXX", name);
    if (!mkdtemp(dir))
        abort();
    snprintf(url, sizeof url, "sqlite://%s/state.db", dir);
    const mr_store_options o = {.secret = SECRET, .secret_len = sizeof SECRET};
    if (mr_store_open(url, &o, &FZ.store, &err) != MR_OK ||
        crypto_engine_init(&FZ.engine, FZ.store, SECRET, sizeof SECRET, &err) != MR_OK)
        abort();
    atexit(finish);
}

void fuzz_engine_settle(mr_code rc, json_t *out, mr_err *err)
{
    if (rc != MR_OK && !err->msg[0])
        abort();
    if (rc == MR_OK && crypto_engine_commit(&FZ.engine, out, err) != MR_OK && !err->msg[0])
        abort();
    json_decref(out);
}
