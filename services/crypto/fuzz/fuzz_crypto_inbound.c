/* fuzz_crypto_inbound.c -- libFuzzer target: what mindroom-crypto reads on its decrypt path
 * (inbound_event, todevice_event, keys_reply) never crashes or leaks, and bad input changes
 * nothing but the store. The first byte picks the message type; the store is SQLite in a
 * temporary directory, so waiting events and devices build up across inputs as in service. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto_internal.h"
#include "mindroom/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char SECRET[32] = "instance secret for the fuzzer!";
static crypto_engine engine;
static mr_store *store;
static char dir[] = "/tmp/mr-fuzz-crypto-XXXXXX";
static bool started;

/* Removes the store at exit, SQLite's side files included. */
static void finish(void)
{
    crypto_engine_free(&engine);
    mr_store_close(store);
    static const char *const files[] = {"state.db", "state.db-wal", "state.db-shm", "state.db-journal"};
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void start(void)
{
    char url[64];
    mr_err err = {0};
    mr_log_configure(MR_LOG_ERROR, MR_LOG_HUMAN, stderr);
    if (!mkdtemp(dir))
        abort();
    snprintf(url, sizeof url, "sqlite://%s/state.db", dir);
    const mr_store_options o = {.secret = SECRET, .secret_len = sizeof SECRET};
    if (mr_store_open(url, &o, &store, &err) != MR_OK ||
        crypto_engine_init(&engine, store, SECRET, sizeof SECRET, &err) != MR_OK)
        abort();
    atexit(finish);
    started = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!started)
        start();
    if (size < 1)
        return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    json_t *out = json_array();
    mr_err err = {0};
    mr_code rc = MR_OK;
    switch (data[0] % 3) {
    case 0: {
        crypto_inbound in;
        if (crypto_inbound_parse(text, len, &in, &err) != MR_OK)
            break;
        if (in.encrypted)
            rc = crypto_engine_room_event(&engine, &in, text, len, out, &err);
        crypto_inbound_free(&in);
        break;
    }
    case 1:
        rc = crypto_engine_todevice(&engine, text, len, out, &err);
        break;
    default:
        rc = crypto_engine_keys_reply(&engine, text, len, out, &err);
        break;
    }
    /* A refusal always says why; what was produced is settled as the service would. */
    if (rc != MR_OK && !err.msg[0])
        abort();
    if (rc == MR_OK && crypto_engine_commit(&engine, out, &err) != MR_OK && !err.msg[0])
        abort();
    json_decref(out);
    return 0;
}
