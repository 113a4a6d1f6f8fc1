/* engine_harness.h -- what the crypto fuzz targets that drive the engine share: the engine on a
 * SQLite store in a temporary directory, kept across inputs as in service and removed at exit,
 * and the check every input ends with. */
#ifndef MR_CRYPTO_ENGINE_HARNESS_H
#define MR_CRYPTO_ENGINE_HARNESS_H

#include "crypto_internal.h"

typedef struct fuzz_engine {
    crypto_engine engine;
    mr_store *store;
} fuzz_engine;

/* The engine of this run, opened once by fuzz_engine_open. */
extern fuzz_engine FZ;

/* Opens the store in a new /tmp/mr-fuzz-<name>-XXXXXX and the engine on it, logging errors only;
 * aborts when it cannot. The store and its directory go at exit. */
void fuzz_engine_open(const char *name);
/* After one input's call returned rc: a refusal always says why, and what was produced is
 * committed as the service would; aborts otherwise. Frees out. */
void fuzz_engine_settle(mr_code rc, json_t *out, mr_err *err);

#endif
