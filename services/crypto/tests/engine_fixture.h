/* engine_fixture.h -- the crypto engine over a real SQLite store in a private temp dir, as the
 * engine tests (test_decrypt.c, test_encrypt.c) drive it: messages fed as the bus would hand
 * them over and what they produce committed as the service does once it is published. */
#ifndef MR_CRYPTO_ENGINE_FIXTURE_H
#define MR_CRYPTO_ENGINE_FIXTURE_H

#include <stdbool.h>
#include <jansson.h>

#include "crypto_internal.h"

typedef struct engine_fixture {
    char dir[512];
    mr_store *store;
    crypto_engine engine;
    bool crash_before_commit; /* the next output is not committed, as after a crash */
} engine_fixture;

typedef mr_code (*engine_input)(crypto_engine *e, const char *value, size_t len, json_t *out, mr_err *err);

/* Fails the test with what and err's message unless rc is MR_OK. */
void fx_check(mr_code rc, const mr_err *err, const char *what);
/* A temp dir named after prefix, the store in it and the engine on it; -1 (said on stderr) when
 * the dir or the store cannot be made. */
int fx_open(engine_fixture *f, const char *prefix);
/* Starts the engine on the open store again (after crypto_engine_free: a restart). */
void fx_engine_start(engine_fixture *f);
void fx_close(engine_fixture *f);
/* Commits out, unless a crash is played (which it then clears). */
void fx_commit(engine_fixture *f, json_t *out);
/* Feeds msg (taken) to input and commits what it produced; returns the outputs. */
json_t *fx_feed(engine_fixture *f, engine_input input, json_t *msg, const char *what);
/* A successful keys_reply to account's request txn of kind, with response (taken); returns the
 * outputs. */
json_t *fx_keys_reply(engine_fixture *f, const char *account, const char *kind, const char *txn,
                      json_t *response);
/* One outbound sweep at now_ms, committed; returns the outputs. */
json_t *fx_outbound_sweep(engine_fixture *f, long long now_ms);

#endif
