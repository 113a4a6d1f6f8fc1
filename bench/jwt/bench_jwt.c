/* bench_jwt.c -- mr_jwt_verify per second on RS256 and ES256 tokens (keys cached, no token
 * cache), beside libjwt's jwt_decode on the same token and key (the verifier before it moved to
 * OpenSSL keys parsed once: libjwt reads the PEM key on every call). run.sh prints them beside
 * `openssl speed`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jwt.h>

#include "mindroom/clock.h"
#include "mindroom/jwt.h"
#include "testkeys.h"

static mr_code mem_fetch(void *ctx, const char *url, long timeout_ms, char **body, size_t *len, mr_err *err)
{
    (void)url;
    (void)timeout_ms;
    *body = strdup(ctx);
    *len = strlen(ctx);
    return *body ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory");
}

/* The CPU time this thread has used, in seconds. */
static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Calls one() for `seconds` and returns calls per second of this thread's CPU time, the divisor
 * `openssl speed` uses too (unless -elapsed): on a machine other work loads, calls per second of
 * wall clock would fall with the share of a core this thread gets. Exits if a call fails. */
static double rate(double seconds, int (*one)(const void *arg), const void *arg)
{
    double start = mr_clock_mono_s(), cpu0 = thread_cpu_s();
    long n = 0;
    while (mr_clock_mono_s() - start < seconds) {
        for (int i = 0; i < 64; i++, n++)
            if (one(arg) != 0) {
                fprintf(stderr, "bench_jwt: a call failed\n");
                exit(1);
            }
    }
    return (double)n / (thread_cpu_s() - cpu0);
}

typedef struct job {
    mr_jwt_verifier *v;
    const char *token;
    const char *pem;
} job;

static int verify_one(const void *arg)
{
    const job *j = arg;
    mr_err err = {0};
    return mr_jwt_verify(j->v, j->token, NULL, &err) == MR_OK ? 0 : -1;
}

static int libjwt_one(const void *arg)
{
    const job *j = arg;
    jwt_t *jwt = NULL;
    int rc = jwt_decode(&jwt, j->token, (const unsigned char *)j->pem, (int)strlen(j->pem));
    jwt_free(jwt);
    return rc;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    tk_key keys[2];
    tk_rsa(&keys[0], "r1", 2048);
    tk_ec(&keys[1], "e1", "P-256");
    char *jwks[] = {tk_jwk(&keys[0], NULL), tk_jwk(&keys[1], NULL)};
    char *doc = tk_jwks((const char *const *)jwks, 2);

    mr_jwt_options o;
    mr_jwt_options_init(&o);
    o.jwks_url = "https://gw.example/jwks.json";
    o.issuer = "https://gw.example";
    o.audience = "mindroom-dashboard";
    o.fetch = mem_fetch;
    o.fetch_ctx = doc;
    mr_jwt_verifier *v = NULL;
    mr_err err = {0};
    if (mr_jwt_verifier_new(&o, &v, &err) != MR_OK) {
        fprintf(stderr, "bench_jwt: %s\n", err.msg);
        return 1;
    }
    char *payload = tk_printf("{\"iss\":\"https://gw.example\",\"aud\":\"mindroom-dashboard\",\"exp\":%lld,"
                              "\"email\":\"alice@example.org\",\"sub\":\"u-123\"}",
                              (long long)time(NULL) + 3600);
    printf("alg,mr_jwt_verify_per_s,libjwt_decode_per_s\n");
    for (int i = 0; i < 2; i++) {
        char *header = tk_printf("{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", keys[i].alg, keys[i].kid);
        char *token = tk_sign(&keys[i], header, payload);
        char *pem = tk_pem(&keys[i]);
        job j = {v, token, pem};
        double ours = rate(seconds, verify_one, &j);
        double bare = rate(seconds, libjwt_one, &j);
        printf("%s,%.0f,%.0f\n", keys[i].alg, ours, bare);
        free(pem);
        free(token);
        free(header);
    }
    free(payload);
    mr_jwt_verifier_free(v);
    free(doc);
    for (int i = 0; i < 2; i++) {
        free(jwks[i]);
        tk_free(&keys[i]);
    }
    return 0;
}
