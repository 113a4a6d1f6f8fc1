/* bench_ua_jwks.c -- the JWKS side of bench/upstream-auth: makes an RSA 2048 or EC P-256 key with
 * OpenSSL, serves its JWKS on loopback, writes "<jwks url> <token>" (a token valid for an hour)
 * to a file, and serves until SIGTERM or SIGINT. */
#include <setjmp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "jwks_server.h"
#include "testkeys.h"
#include "bench_stop.h"

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "RS256") != 0 && strcmp(argv[1], "ES256") != 0)) {
        fprintf(stderr, "usage: %s RS256|ES256 OUTFILE\n", argv[0]);
        return 2;
    }
    sigset_t stop;
    if (!bench_stop_block(&stop))
        return 1;

    tk_key k;
    if (argv[1][0] == 'R')
        tk_rsa(&k, "bench-rsa", 2048);
    else
        tk_ec(&k, "bench-ec", "P-256");
    char *jwk = tk_jwk(&k, NULL);
    const char *keys[] = {jwk};
    char *set = tk_jwks(keys, 1);
    jwks_server *js = js_start();
    js_set(js, 200, set);
    long long now = (long long)time(NULL);
    char *claims = tk_printf("{\"iss\":\"https://gateway.example.com\",\"aud\":\"mindroom-dashboard\",\"iat\":%lld,"
                             "\"exp\":%lld,\"email\":\"alice@example.com\"}", now, now + 3600);
    char *header = tk_printf("{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", k.alg, k.kid);
    char *token = tk_sign(&k, header, claims);
    FILE *out = fopen(argv[2], "w");
    if (!out || fprintf(out, "%s %s\n", js_url(js), token) < 0 || fclose(out) != 0) {
        perror(argv[2]);
        return 1;
    }
    bench_stop_wait(&stop);
    js_free(js);
    free(token);
    free(header);
    free(claims);
    free(set);
    free(jwk);
    tk_free(&k);
    return 0;
}
