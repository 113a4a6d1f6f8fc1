/* store_redis.c -- the distributed store backend on hiredis: Lua for atomic steps, reconnects on its own. */
#include "store_impl.h"
#include "mindroom/sigpipe.h"
#include "mindroom/clock.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#define RD_CONNECT_TIMEOUT_MS 2000
/* A command that gets no answer within this long fails with MR_EUNAVAIL. */
#define RD_COMMAND_TIMEOUT_MS 5000
/* Waits before each connection attempt of one call: a restarting server gets ~750 ms. */
static const int RD_BACKOFF_MS[] = {0, 50, 100, 200, 400};


#define RD_MAX_ARGS (2 + 2 * MR_STORE_HSET_MAX)

/* ARGV: 1 "1" when a current value is expected (else "0": must be absent), 2 expected value,
 * 3 new value, 4 TTL in ms ("0": none). */
static const char RD_CAS_LUA[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if ARGV[1] == '1' then\n"
    "  if cur ~= ARGV[2] then return 0 end\n"
    "elseif cur then\n"
    "  return 0\n"
    "end\n"
    "if ARGV[4] ~= '0' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])\n"
    "else redis.call('SET', KEYS[1], ARGV[3]) end\n"
    "return 1\n";

/* ARGV: 1 increment, 2 TTL in ms for a counter this call creates ("0": none). */
static const char RD_INCR_LUA[] =
    "local created = redis.call('EXISTS', KEYS[1]) == 0\n"
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1])\n"
    "if created and ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
    "return v\n";

typedef struct rd_script {
    const char *text;
    char sha[41];
} rd_script;

typedef struct rd {
    redisContext *c; /* NULL while disconnected */
    char *host, *user, *password;
    int port, db;
    char addr[300]; /* host:port, for messages */
    rd_script cas, incr;
} rd;

/* One command's arguments; numbers are formatted into num. */
typedef struct rd_args {
    int n, nnum;
    const char *v[RD_MAX_ARGS];
    size_t len[RD_MAX_ARGS];
    char num[3][24];
} rd_args;

static void arg_bytes(rd_args *a, const void *p, size_t n)
{
    a->v[a->n] = n ? p : "";
    a->len[a->n++] = n;
}

static void arg_str(rd_args *a, const char *s)
{
    arg_bytes(a, s, strlen(s));
}

static void arg_ll(rd_args *a, long long x)
{
    char *b = a->num[a->nnum++];
    arg_bytes(a, b, (size_t)snprintf(b, sizeof a->num[0], "%lld", x));
}

/* redisCommandArgv with SIGPIPE held back: a write to a connection the server just closed
 * must become an error here, not kill the process. */
static redisReply *rd_command(redisContext *c, const rd_args *a)
{
    mr_sigpipe_guard g;
    mr_sigpipe_hold(&g);
    redisReply *rep = redisCommandArgv(c, a->n, (const char **)a->v, a->len);
    mr_sigpipe_release(&g);
    return rep;
}

static void rd_drop(rd *r)
{
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Turns an error reply into an mr_err. Redis error texts name the problem, never a value. */
static mr_code rd_reply_error(const rd *r, const redisReply *rep, mr_err *err)
{
    const char *s = rep->str ? rep->str : "";
    mr_code code = MR_EINVAL;
    if (starts_with(s, "LOADING") || starts_with(s, "BUSY") || starts_with(s, "MASTERDOWN") ||
        starts_with(s, "TRYAGAIN") || starts_with(s, "READONLY"))
        code = MR_EUNAVAIL;
    else if (starts_with(s, "NOAUTH") || starts_with(s, "WRONGPASS"))
        code = MR_EAUTH;
    return mr_err_set(err, code, "redis at %s: %s", r->addr, s);
}

static mr_code rd_unexpected(const rd *r, const redisReply *rep, mr_err *err)
{
    return mr_err_set(err, MR_EINTERNAL, "redis at %s: unexpected reply of type %d", r->addr, rep->type);
}

/* AUTH and SELECT on a fresh connection. */
static mr_code rd_handshake(rd *r, const rd_args *a, const char *what, mr_err *err)
{
    redisReply *rep = rd_command(r->c, a);
    if (!rep)
        return mr_err_set(err, MR_EUNAVAIL, "redis at %s: %s: %s", r->addr, what, r->c->errstr);
    mr_code rc = MR_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        rc = rd_reply_error(r, rep, err);
        mr_err_prefix(err, "%s", what);
    }
    freeReplyObject(rep);
    return rc;
}

static mr_code rd_connect_once(rd *r, mr_err *err)
{
    struct timeval ct = {RD_CONNECT_TIMEOUT_MS / 1000, (RD_CONNECT_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(r->host, r->port, ct);
    if (!c)
        return mr_err_set(err, MR_ENOMEM, "redis at %s: out of memory", r->addr);
    if (c->err) {
        mr_code rc = mr_err_set(err, MR_EUNAVAIL, "redis at %s: %s", r->addr, c->errstr);
        redisFree(c);
        return rc;
    }
    struct timeval cmd = {RD_COMMAND_TIMEOUT_MS / 1000, (RD_COMMAND_TIMEOUT_MS % 1000) * 1000};
    redisSetTimeout(c, cmd);
    redisEnableKeepAlive(c);
    r->c = c;
    mr_code rc = MR_OK;
    if (r->password) {
        rd_args a = {0};
        arg_str(&a, "AUTH");
        if (r->user)
            arg_str(&a, r->user);
        arg_str(&a, r->password);
        rc = rd_handshake(r, &a, "authenticating", err);
    }
    if (rc == MR_OK && r->db != 0) {
        rd_args a = {0};
        arg_str(&a, "SELECT");
        arg_ll(&a, r->db);
        rc = rd_handshake(r, &a, "selecting the database", err);
    }
    if (rc != MR_OK)
        rd_drop(r);
    return rc;
}

/* Connects with a bounded backoff; only an unreachable server is worth another attempt. */
static mr_code rd_connect(rd *r, mr_err *err)
{
    mr_code rc = MR_EUNAVAIL;
    for (size_t i = 0; i < sizeof RD_BACKOFF_MS / sizeof RD_BACKOFF_MS[0] && rc == MR_EUNAVAIL; i++) {
        mr_clock_sleep_ms(RD_BACKOFF_MS[i]);
        rc = rd_connect_once(r, err);
    }
    return rc;
}

/* Between commands a healthy connection has nothing to read: anything there is the server's
 * EOF (a restart, an idle timeout) or an error, found before a command is sent into it. */
static bool rd_alive(const rd *r)
{
    struct pollfd p = {.fd = r->c->fd, .events = POLLIN};
    int n = poll(&p, 1, 0);
    return n == 0 || (n < 0 && errno == EINTR);
}

/* Sends one command and returns its reply, error replies included. A broken connection is
 * replaced; an idempotent command that failed on the wire is sent once more, any other
 * fails with MR_EUNAVAIL since it may have taken effect. */
static mr_code rd_run(rd *r, bool idempotent, const rd_args *a, redisReply **out, mr_err *err)
{
    for (int attempt = 0;; attempt++) {
        if (r->c && !rd_alive(r))
            rd_drop(r);
        if (!r->c) {
            mr_code rc = rd_connect(r, err);
            if (rc != MR_OK)
                return rc;
        }
        redisReply *rep = rd_command(r->c, a);
        if (rep) {
            *out = rep;
            return MR_OK;
        }
        char why[sizeof r->c->errstr];
        memcpy(why, r->c->errstr, sizeof why);
        rd_drop(r);
        if (!idempotent || attempt > 0)
            return mr_err_set(err, MR_EUNAVAIL, "redis at %s: %s%s", r->addr, why,
                              idempotent ? "" : " (the command may or may not have taken effect)");
    }
}

/* rd_run, with an error reply turned into an mr_err. */
static mr_code rd_call(rd *r, bool idempotent, const rd_args *a, redisReply **out, mr_err *err)
{
    mr_code rc = rd_run(r, idempotent, a, out, err);
    if (rc == MR_OK && (*out)->type == REDIS_REPLY_ERROR) {
        rc = rd_reply_error(r, *out, err);
        freeReplyObject(*out);
    }
    return rc;
}

/* EVALSHA of a script on one key with args, loading it by EVAL when the server lacks it (a
 * restarted server has an empty script cache). NOSCRIPT means it did not run: no harm in
 * sending it again. */
static mr_code rd_eval(rd *r, const rd_script *s, const char *key, const rd_args *args, redisReply **out,
                       mr_err *err)
{
    rd_args a = {0};
    arg_str(&a, "EVALSHA");
    arg_str(&a, s->sha);
    arg_str(&a, "1");
    arg_str(&a, key);
    for (int i = 0; i < args->n; i++)
        arg_bytes(&a, args->v[i], args->len[i]);
    mr_code rc = rd_run(r, false, &a, out, err);
    if (rc == MR_OK && (*out)->type == REDIS_REPLY_ERROR && starts_with((*out)->str, "NOSCRIPT")) {
        freeReplyObject(*out);
        a.v[0] = "EVAL";
        a.len[0] = 4;
        a.v[1] = s->text;
        a.len[1] = strlen(s->text);
        rc = rd_run(r, false, &a, out, err);
    }
    if (rc == MR_OK && (*out)->type == REDIS_REPLY_ERROR) {
        rc = rd_reply_error(r, *out, err);
        freeReplyObject(*out);
    }
    return rc;
}

/* Runs a command answering one string (GET, HGET); nil is MR_ENOTFOUND. */
static mr_code rd_fetch(rd *r, const rd_args *a, char **v, size_t *len, mr_err *err)
{
    redisReply *rep;
    mr_code rc = rd_call(r, true, a, &rep, err);
    if (rc != MR_OK)
        return rc;
    if (rep->type == REDIS_REPLY_NIL) {
        rc = mr_err_set(err, MR_ENOTFOUND, "not found");
    } else if (rep->type != REDIS_REPLY_STRING) {
        rc = rd_unexpected(r, rep, err);
    } else if (!(*v = Mr_store_dup_bytes(rep->str, rep->len))) {
        rc = mr_err_set(err, MR_ENOMEM, "out of memory for a %zu-byte value", rep->len);
    } else {
        *len = rep->len;
    }
    freeReplyObject(rep);
    return rc;
}

/* Runs a command and checks the reply's type; *integer (may be NULL) gets an integer reply. */
static mr_code rd_expect(rd *r, bool idempotent, const rd_args *a, int type, long long *integer, mr_err *err)
{
    redisReply *rep;
    mr_code rc = rd_call(r, idempotent, a, &rep, err);
    if (rc != MR_OK)
        return rc;
    if (rep->type != type)
        rc = rd_unexpected(r, rep, err);
    else if (integer)
        *integer = rep->integer;
    freeReplyObject(rep);
    return rc;
}

static mr_code rd_get(void *b, const char *key, char **v, size_t *len, mr_err *err)
{
    rd_args a = {0};
    arg_str(&a, "GET");
    arg_str(&a, key);
    return rd_fetch(b, &a, v, len, err);
}

static mr_code rd_get_many(void *b, const char *const *keys, size_t n, char **values, size_t *lens,
                           mr_err *err)
{
    rd *r = b;
    rd_args a = {0};
    arg_str(&a, "MGET");
    for (size_t i = 0; i < n; i++)
        arg_str(&a, keys[i]);
    redisReply *rep;
    mr_code rc = rd_call(r, true, &a, &rep, err);
    if (rc != MR_OK)
        return rc;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n)
        rc = rd_unexpected(r, rep, err);
    for (size_t i = 0; rc == MR_OK && i < n; i++) {
        const redisReply *e = rep->element[i];
        if (e->type == REDIS_REPLY_NIL)
            continue;
        if (e->type != REDIS_REPLY_STRING)
            rc = rd_unexpected(r, e, err);
        else if (!(values[i] = Mr_store_dup_bytes(e->str, e->len)))
            rc = mr_err_set(err, MR_ENOMEM, "out of memory for a %zu-byte value", e->len);
        else if (lens)
            lens[i] = e->len;
    }
    for (size_t i = 0; rc != MR_OK && i < n; i++) {
        free(values[i]);
        values[i] = NULL;
    }
    freeReplyObject(rep);
    return rc;
}

static void args_set(rd_args *a, const char *key, const void *v, size_t len, long ttl_ms, bool nx)
{
    arg_str(a, "SET");
    arg_str(a, key);
    arg_bytes(a, v, len);
    if (nx)
        arg_str(a, "NX");
    if (ttl_ms > 0) {
        arg_str(a, "PX");
        arg_ll(a, ttl_ms);
    }
}

static mr_code rd_set(void *b, const char *key, const void *v, size_t len, long ttl_ms, mr_err *err)
{
    rd_args a = {0};
    args_set(&a, key, v, len, ttl_ms, false);
    return rd_expect(b, true, &a, REDIS_REPLY_STATUS, NULL, err);
}

static mr_code rd_set_nx(void *b, const char *key, const void *v, size_t len, long ttl_ms, bool *won,
                         mr_err *err)
{
    rd *r = b;
    rd_args a = {0};
    args_set(&a, key, v, len, ttl_ms, true);
    redisReply *rep;
    mr_code rc = rd_call(r, false, &a, &rep, err);
    if (rc != MR_OK)
        return rc;
    if (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_NIL)
        *won = rep->type == REDIS_REPLY_STATUS;
    else
        rc = rd_unexpected(r, rep, err);
    freeReplyObject(rep);
    return rc;
}

/* Runs a script that answers an integer. */
static mr_code rd_eval_integer(rd *r, const rd_script *s, const char *key, const rd_args *args, long long *out,
                               mr_err *err)
{
    redisReply *rep;
    mr_code rc = rd_eval(r, s, key, args, &rep, err);
    if (rc != MR_OK)
        return rc;
    if (rep->type == REDIS_REPLY_INTEGER)
        *out = rep->integer;
    else
        rc = rd_unexpected(r, rep, err);
    freeReplyObject(rep);
    return rc;
}

/* The compare-and-set script's arguments, after its key. */
static void args_cas(rd_args *a, const void *expect, size_t expect_len, const void *v, size_t len, long ttl_ms)
{
    arg_str(a, expect ? "1" : "0");
    arg_bytes(a, expect, expect ? expect_len : 0);
    arg_bytes(a, v, len);
    arg_ll(a, ttl_ms);
}

static mr_code rd_cas(void *b, const char *key, const void *expect, size_t expect_len, const void *v,
                      size_t len, long ttl_ms, bool *swapped, mr_err *err)
{
    rd *r = b;
    rd_args a = {0};
    args_cas(&a, expect, expect_len, v, len, ttl_ms);
    long long done = 0;
    mr_code rc = rd_eval_integer(r, &r->cas, key, &a, &done, err);
    *swapped = rc == MR_OK && done == 1;
    return rc;
}

static mr_code rd_incr(void *b, const char *key, long long by, long ttl_ms_on_create, long long *value,
                       mr_err *err)
{
    rd *r = b;
    rd_args a = {0};
    arg_ll(&a, by);
    arg_ll(&a, ttl_ms_on_create);
    return rd_eval_integer(r, &r->incr, key, &a, value, err);
}

static mr_code rd_del(void *b, const char *key, mr_err *err)
{
    rd_args a = {0};
    arg_str(&a, "DEL");
    arg_str(&a, key);
    return rd_expect(b, true, &a, REDIS_REPLY_INTEGER, NULL, err);
}

static mr_code rd_ttl(void *b, const char *key, long *ttl_ms, mr_err *err)
{
    rd_args a = {0};
    arg_str(&a, "PTTL");
    arg_str(&a, key);
    long long left = 0;
    mr_code rc = rd_expect(b, true, &a, REDIS_REPLY_INTEGER, &left, err);
    if (rc != MR_OK)
        return rc;
    /* PTTL: -2 for an absent key, -1 for one without expiry. */
    if (left == -2)
        return mr_err_set(err, MR_ENOTFOUND, "not found");
    *ttl_ms = (long)left;
    return MR_OK;
}

static void args_field(rd_args *a, const char *cmd, const char *key, const char *field)
{
    arg_str(a, cmd);
    arg_str(a, key);
    arg_str(a, field);
}

static mr_code rd_hset(void *b, const char *key, const mr_store_field *fields, size_t n, mr_err *err)
{
    rd_args a = {0};
    arg_str(&a, "HSET");
    arg_str(&a, key);
    for (size_t i = 0; i < n; i++) {
        arg_str(&a, fields[i].name);
        arg_bytes(&a, fields[i].value, fields[i].len);
    }
    return rd_expect(b, true, &a, REDIS_REPLY_INTEGER, NULL, err);
}

static mr_code rd_hget(void *b, const char *key, const char *field, char **v, size_t *len, mr_err *err)
{
    rd_args a = {0};
    args_field(&a, "HGET", key, field);
    return rd_fetch(b, &a, v, len, err);
}

static mr_code rd_hdel(void *b, const char *key, const char *field, mr_err *err)
{
    rd_args a = {0};
    args_field(&a, "HDEL", key, field);
    return rd_expect(b, true, &a, REDIS_REPLY_INTEGER, NULL, err);
}

static mr_code rd_hash_fill(const rd *r, const redisReply *rep, mr_store_hash *out, mr_err *err)
{
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % 2 != 0)
        return rd_unexpected(r, rep, err);
    size_t n = rep->elements / 2;
    if (n == 0)
        return MR_OK;
    out->entries = calloc(n, sizeof *out->entries);
    if (!out->entries)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading a hash of %zu fields", n);
    for (size_t i = 0; i < n; i++) {
        const redisReply *f = rep->element[2 * i], *v = rep->element[2 * i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return rd_unexpected(r, f->type != REDIS_REPLY_STRING ? f : v, err);
        mr_store_hash_entry *e = &out->entries[i];
        e->field = Mr_store_dup_bytes(f->str, f->len);
        e->value = Mr_store_dup_bytes(v->str, v->len);
        e->value_len = v->len;
        out->count++;
        if (!e->field || !e->value)
            return mr_err_set(err, MR_ENOMEM, "out of memory reading a hash of %zu fields", n);
    }
    return MR_OK;
}

static mr_code rd_hgetall(void *b, const char *key, mr_store_hash *out, mr_err *err)
{
    rd *r = b;
    rd_args a = {0};
    arg_str(&a, "HGETALL");
    arg_str(&a, key);
    redisReply *rep;
    mr_code rc = rd_call(r, true, &a, &rep, err);
    if (rc != MR_OK)
        return rc;
    rc = rd_hash_fill(r, rep, out, err);
    freeReplyObject(rep);
    if (rc != MR_OK)
        mr_store_hash_free(out);
    return rc;
}

static mr_code rd_ping(void *b, mr_err *err)
{
    rd_args a = {0};
    arg_str(&a, "PING");
    return rd_expect(b, true, &a, REDIS_REPLY_STATUS, NULL, err);
}

/* The command of one write of a batch. */
static void batch_args(const rd *r, const char *key, const mr_store_op *op, rd_args *a)
{
    switch (op->kind) {
    case MR_STORE_OP_SET:
    case MR_STORE_OP_SET_NX:
        args_set(a, key, op->value, op->len, op->ttl_ms, op->kind == MR_STORE_OP_SET_NX);
        return;
    case MR_STORE_OP_CAS:
        arg_str(a, "EVALSHA");
        arg_str(a, r->cas.sha);
        arg_str(a, "1");
        arg_str(a, key);
        args_cas(a, op->expect, op->expect_len, op->value, op->len, op->ttl_ms);
        return;
    case MR_STORE_OP_DEL:
        arg_str(a, "DEL");
        arg_str(a, key);
        return;
    }
}

/* One write's reply inside EXEC's answer. */
static mr_code batch_reply(const rd *r, const redisReply *rep, mr_store_op *op, mr_err *err)
{
    if (rep->type == REDIS_REPLY_ERROR)
        return rd_reply_error(r, rep, err);
    bool ok = op->kind == MR_STORE_OP_SET      ? rep->type == REDIS_REPLY_STATUS
              : op->kind == MR_STORE_OP_SET_NX ? rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_NIL
                                               : rep->type == REDIS_REPLY_INTEGER;
    if (!ok)
        return rd_unexpected(r, rep, err);
    op->done = op->kind == MR_STORE_OP_SET_NX ? rep->type == REDIS_REPLY_STATUS
               : op->kind == MR_STORE_OP_CAS  ? rep->integer == 1
                                              : true;
    return MR_OK;
}

/* MULTI, the writes and EXEC, written at once and answered in one round trip; *exec gets
 * EXEC's reply. Not sent again on a broken connection: some writes may have taken effect. */
static mr_code batch_send(rd *r, const char *const *keys, const mr_store_op *ops, size_t n, redisReply **exec,
                          mr_err *err)
{
    if (r->c && !rd_alive(r))
        rd_drop(r);
    mr_code rc = r->c ? MR_OK : rd_connect(r, err);
    if (rc != MR_OK)
        return rc;
    static const char *const multi[] = {"MULTI"}, *const exec_cmd[] = {"EXEC"};
    bool appended = redisAppendCommandArgv(r->c, 1, (const char **)multi, NULL) == REDIS_OK;
    for (size_t i = 0; appended && i < n; i++) {
        rd_args a = {0};
        batch_args(r, keys[i], &ops[i], &a);
        appended = redisAppendCommandArgv(r->c, a.n, (const char **)a.v, a.len) == REDIS_OK;
    }
    appended = appended && redisAppendCommandArgv(r->c, 1, (const char **)exec_cmd, NULL) == REDIS_OK;
    if (!appended) {
        rd_drop(r);
        return mr_err_set(err, MR_ENOMEM, "redis at %s: out of memory writing a batch", r->addr);
    }
    mr_sigpipe_guard g;
    mr_sigpipe_hold(&g);
    /* MULTI's OK and each write's QUEUED (or the error that makes EXEC abort), then EXEC's. */
    void *rep = NULL;
    for (size_t i = 0; i < n + 2 && rc == MR_OK; i++) {
        if (redisGetReply(r->c, &rep) != REDIS_OK) {
            rc = mr_err_set(err, MR_EUNAVAIL, "redis at %s: %s (the batch may or may not have taken effect)", r->addr,
                            r->c->errstr);
            rd_drop(r);
        } else if (i < n + 1) {
            freeReplyObject(rep);
            rep = NULL;
        }
    }
    mr_sigpipe_release(&g);
    *exec = rep;
    return rc;
}

static mr_code rd_batch(void *b, const char *const *keys, mr_store_op *ops, size_t n, size_t *failed, mr_err *err)
{
    rd *r = b;
    *failed = n;
    redisReply *exec = NULL;
    mr_code rc = batch_send(r, keys, ops, n, &exec, err);
    if (rc == MR_OK && exec->type == REDIS_REPLY_ERROR)
        rc = rd_reply_error(r, exec, err);
    else if (rc == MR_OK && (exec->type != REDIS_REPLY_ARRAY || exec->elements != n))
        rc = rd_unexpected(r, exec, err);
    if (rc != MR_OK) {
        for (size_t i = 0; i < n; i++)
            ops[i].rc = rc;
        freeReplyObject(exec);
        return rc;
    }
    mr_code first = MR_OK;
    for (size_t i = 0; i < n; i++) {
        mr_err one = {0};
        const redisReply *rep = exec->element[i];
        /* A restarted server has no scripts: that write did not run, so it runs alone now. */
        if (rep->type == REDIS_REPLY_ERROR && ops[i].kind == MR_STORE_OP_CAS && starts_with(rep->str, "NOSCRIPT"))
            ops[i].rc = rd_cas(r, keys[i], ops[i].expect, ops[i].expect_len, ops[i].value, ops[i].len, ops[i].ttl_ms,
                               &ops[i].done, &one);
        else
            ops[i].rc = batch_reply(r, rep, &ops[i], &one);
        if (ops[i].rc != MR_OK && first == MR_OK) {
            first = ops[i].rc;
            *failed = i;
            *err = one;
        }
    }
    freeReplyObject(exec);
    return first;
}

static void rd_close(void *b)
{
    rd *r = b;
    rd_drop(r);
    if (r->password) {
        OPENSSL_cleanse(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->host);
    free(r->user);
    free(r);
}

static const mr_store_ops RD_OPS = {
    .get = rd_get,
    .get_many = rd_get_many,
    .set = rd_set,
    .set_nx = rd_set_nx,
    .cas = rd_cas,
    .del = rd_del,
    .ttl = rd_ttl,
    .hset = rd_hset,
    .hget = rd_hget,
    .hdel = rd_hdel,
    .hgetall = rd_hgetall,
    .incr = rd_incr,
    .ping = rd_ping,
    .batch = rd_batch,
    .close = rd_close,
};

/* EVALSHA names a script by the hex SHA-1 of its text. */
static bool script_init(rd_script *s, const char *text)
{
    unsigned char md[20];
    unsigned int n = 0;
    s->text = text;
    if (EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL) != 1 || n != sizeof md)
        return false;
    for (unsigned i = 0; i < n; i++)
        snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    return true;
}

static char *dup_opt(const char *s, bool *failed)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *failed = true;
    return d;
}

mr_code Mr_store_redis_open(const mr_store_url *u, const mr_store_ops **ops, void **impl, mr_err *err)
{
    rd *r = calloc(1, sizeof *r);
    if (!r)
        return mr_err_set(err, MR_ENOMEM, "out of memory");
    bool failed = false;
    r->host = dup_opt(u->host, &failed);
    r->user = dup_opt(u->user, &failed);
    r->password = dup_opt(u->password, &failed);
    r->port = u->port;
    r->db = u->db;
    /* An IPv6 literal is bracketed so the port stays readable. */
    if (strchr(u->host, ':'))
        snprintf(r->addr, sizeof r->addr, "[%s]:%d", u->host, u->port);
    else
        snprintf(r->addr, sizeof r->addr, "%s:%d", u->host, u->port);
    mr_code rc = failed ? mr_err_set(err, MR_ENOMEM, "out of memory") : MR_OK;
    if (rc == MR_OK && (!script_init(&r->cas, RD_CAS_LUA) || !script_init(&r->incr, RD_INCR_LUA)))
        rc = mr_err_set(err, MR_EINTERNAL, "OpenSSL has no SHA-1 for Lua script names");
    /* Connect now, so a wrong password or database stops start-up with a clear message. A
     * server not up yet is not an error: the runtime waits for it (readiness says so). */
    if (rc == MR_OK && (rc = rd_connect(r, err)) == MR_EUNAVAIL) {
        mr_err_clear(err);
        rc = MR_OK;
    }
    if (rc != MR_OK) {
        rd_close(r);
        return rc;
    }
    *ops = &RD_OPS;
    *impl = r;
    return MR_OK;
}
