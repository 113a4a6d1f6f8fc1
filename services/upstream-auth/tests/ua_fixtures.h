/* ua_fixtures.h -- what the tests of mindroom-upstream-auth share: variable and header tables for
 * the modules, signed tokens, and the service run as a process against real peers. Failures abort
 * the test. */
#ifndef MINDROOM_UA_FIXTURES_H
#define MINDROOM_UA_FIXTURES_H

#include <stddef.h>
#include <sys/types.h>

#include "mindroom/http.h"
#include "testkeys.h"
#include "ua_internal.h"

/* ---- variables (a ua_getenv_fn) and headers (a ua_header_fn) ------------------------------ */

#define UA_TPAIRS_MAX 48

/* Names and values, borrowed. */
typedef struct ua_tpairs {
    const char *names[UA_TPAIRS_MAX];
    const char *values[UA_TPAIRS_MAX];
    size_t n;
} ua_tpairs;

typedef ua_tpairs ua_tenv;
typedef ua_tpairs ua_thdrs;

/* Sets or replaces a variable; NULL unsets it. Strings are borrowed. */
void ua_tenv_set(ua_tenv *e, const char *name, const char *value);
const char *ua_tenv_get(void *ctx, const char *name);

/* Appends a header line (a second line with the same name is a duplicate). */
void ua_thdrs_add(ua_thdrs *h, const char *name, const char *value);
const char *ua_thdrs_get(void *ctx, const char *name, size_t *count);

/* ---- the authenticator on a table of variables ------------------------------------------ */

#define UA_TU "MINDROOM_TRUSTED_UPSTREAM_"
#define UA_H_USER "X-MindRoom-User-Id"
#define UA_H_EMAIL "X-MindRoom-User-Email"
#define UA_H_MXID "X-MindRoom-Matrix-User-Id"

typedef struct ua_tauth {
    ua_tenv env;
    ua_settings settings;
    ua_auth *auth;
} ua_tauth;

/* The variables of header-only trusted upstream auth: on, the UA_H_* identity headers, and the
 * template that derives @localpart:example.org from the email. */
void ua_tenv_trusted_headers(ua_tenv *e);
/* Loads the settings from t->env and makes the authenticator with o (may be NULL), dropping the
 * ones before; fails the test when either is refused. */
void ua_tauth_open(ua_tauth *t, const ua_auth_options *o);
void ua_tauth_close(ua_tauth *t);
/* The request with headers h is refused with code and the sentence msg, and no identity. */
void ua_tauth_expect_refused(const ua_tauth *t, const ua_thdrs *h, mr_code code, const char *msg);
/* The same with MR_EAUTH, the 401 of the service. */
void ua_tauth_expect_401(const ua_tauth *t, const ua_thdrs *h, const char *msg);
/* The request with headers h is accepted as user_id, with email and mxid (NULL: none), by method. */
void ua_tauth_expect_identity(const ua_tauth *t, const ua_thdrs *h, const char *user_id, const char *email,
                              const char *mxid, ua_method method);

/* ---- tokens ----------------------------------------------------------------------------- */

/* A compact JWS signed by k with {"alg": k->alg, "kid": k->kid, "typ": "JWT"}. Caller frees. */
char *ua_token(const tk_key *k, const char *payload);
/* Seconds since the epoch. */
long long ua_now_s(void);

/* ---- the service as a process ----------------------------------------------------------- */

typedef struct ua_proc {
    pid_t pid;
    int port;
    char dir[512];    /* the storage path and the log live here */
    char log[600];
} ua_proc;

/* Makes a temp dir (the storage path and the log live there) and spawns mindroom-upstream-auth on a free loopback
 * port with the current environment and MINDROOM_PUBLIC_URL set to http://127.0.0.1:<port>;
 * waits until the port accepts connections. */
void ua_proc_start(ua_proc *p);
/* Runs the binary with the current environment until it exits (killed after 20 s); returns its
 * exit status (128 + signal when killed) and what it printed (caller frees). */
int ua_proc_run(char **output);
/* SIGTERM, wait (must exit 0), remove the dir. */
void ua_proc_stop(ua_proc *p);
/* For teardown: SIGKILL when still running, remove the dir; no assertions. */
void ua_proc_kill(ua_proc *p);
/* The process log, for assertions on what was or was not logged. Caller frees. */
char *ua_proc_log(const ua_proc *p);

/* method on path (on 127.0.0.1:port, or an absolute http:// URL) with extra header lines
 * ("Name: value", NULL-ended); redirects are not followed. out must be cleared with
 * mr_http_result_clear. */
void ua_http(const char *method, int port, const char *path, const char *const *headers, mr_http_result *out);

/* The common environment of a process test: the redis store URL and the instance secret
 * (UA_TEST_SECRET_HEX), nothing else the runtime reads (no bus, config or server name), and
 * every MINDROOM_TRUSTED_UPSTREAM_*, MINDROOM_OAUTH_* (of the github provider the tests use),
 * MINDROOM_API_KEY and MINDROOM_OWNER_USER_ID variable unset. */
#define UA_TEST_SECRET_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
void ua_proc_env(const char *redis_url);

#endif
