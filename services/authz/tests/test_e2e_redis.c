/* test_e2e_redis.c -- mindroom-authz end to end on Redis Streams, with the store in Redis. */
#include <stdio.h>

#include "e2e_suite.h"
#include "peers.h"

int main(void)
{
    mr_tp_redis redis;
    mr_err err = {0};
    if (mr_tp_redis_start(&redis, &err) != MR_OK) {
        fprintf(stderr, "starting redis-server: %s\n", err.msg);
        return 1;
    }
    /* The bus in db 0, the store in db 1: one server, as a small cluster would run them. */
    char store[96];
    snprintf(store, sizeof store, "redis://127.0.0.1:%d/1", redis.port);
    int failed = e2e_run("authz_e2e_redis", redis.url, store);
    mr_tp_redis_destroy(&redis);
    return failed;
}
