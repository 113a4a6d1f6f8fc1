/* engine_fixture.c -- the crypto engine over a real SQLite store for the engine tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "engine_fixture.h"
#include "peers.h"

static const unsigned char SECRET[32] = "instance secret of crypto tests";

void fx_check(mr_code rc, const mr_err *err, const char *what)
{
    if (rc != MR_OK)
        fail_msg("%s: %s", what, err->msg);
}

void fx_engine_start(engine_fixture *f)
{
    mr_err err = {0};
    fx_check(crypto_engine_init(&f->engine, f->store, SECRET, sizeof SECRET, &err), &err, "engine");
}

int fx_open(engine_fixture *f, const char *prefix)
{
    mr_err err = {0};
    if (mr_tp_mkdtemp(prefix, f->dir, sizeof f->dir, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    char url[600];
    snprintf(url, sizeof url, "sqlite://%s/state.db", f->dir);
    const mr_store_options o = {.secret = SECRET, .secret_len = sizeof SECRET};
    if (mr_store_open(url, &o, &f->store, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    fx_engine_start(f);
    return 0;
}

void fx_close(engine_fixture *f)
{
    crypto_engine_free(&f->engine);
    mr_store_close(f->store);
    mr_tp_cleanup_dir(f->dir);
}

void fx_commit(engine_fixture *f, json_t *out)
{
    mr_err err = {0};
    if (f->crash_before_commit)
        f->crash_before_commit = false;
    else
        fx_check(crypto_engine_commit(&f->engine, out, &err), &err, "commit");
}

json_t *fx_feed(engine_fixture *f, engine_input input, json_t *msg, const char *what)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    json_t *out = json_array();
    mr_err err = {0};
    fx_check(input(&f->engine, text, strlen(text), out, &err), &err, what);
    free(text);
    fx_commit(f, out);
    return out;
}

json_t *fx_keys_reply(engine_fixture *f, const char *account, const char *kind, const char *txn,
                      json_t *response)
{
    return fx_feed(f, crypto_engine_keys_reply,
                   json_pack("{s:i, s:s, s:s, s:s, s:s, s:b, s:o}", "v", 1, "type", "keys_reply", "account",
                             account, "kind", kind, "txn_id", txn, "ok", 1, "response", response),
                   "keys_reply");
}

json_t *fx_outbound_sweep(engine_fixture *f, long long now_ms)
{
    json_t *out = json_array();
    mr_err err = {0};
    fx_check(crypto_outbound_sweep(&f->engine, now_ms, out, &err), &err, "sweep");
    fx_commit(f, out);
    return out;
}
