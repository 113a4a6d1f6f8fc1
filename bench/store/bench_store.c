/* bench_store.c -- operations per second of the store's set, get and set_nx on one handle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/store.h"

/* The same 3-byte value redis-benchmark writes by default, so the baseline compares like for like. */
#define VALUE "xxx"

typedef enum bench_op { OP_SET, OP_GET, OP_SET_NX } bench_op;

static mr_code run_one(mr_store *s, bench_op op, long i, mr_err *err)
{
    char key[48];
    snprintf(key, sizeof key, "%s:%ld", op == OP_SET_NX ? "claim" : "key", i);
    if (op == OP_SET)
        return mr_store_set(s, key, VALUE, sizeof VALUE - 1, 0, err);
    if (op == OP_SET_NX) {
        bool won;
        return mr_store_set_nx(s, key, VALUE, sizeof VALUE - 1, 0, &won, err);
    }
    char *v = NULL;
    size_t len;
    mr_code rc = mr_store_get(s, key, &v, &len, err);
    free(v);
    return rc;
}

/* Runs n calls of op and prints "name,ops_per_second". */
static int bench(mr_store *s, bench_op op, const char *name, long n)
{
    mr_err err = {0};
    double start = mr_clock_mono_s();
    for (long i = 0; i < n; i++) {
        if (run_one(s, op, i, &err) != MR_OK) {
            fprintf(stderr, "bench_store %s: %s\n", name, err.msg);
            return 1;
        }
    }
    printf("%s,%.0f\n", name, (double)n / (mr_clock_mono_s() - start));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench_store STORE_URL [OPS]\n");
        return 2;
    }
    long n = argc == 3 ? strtol(argv[2], NULL, 10) : 20000;
    if (n <= 0) {
        fprintf(stderr, "bench_store: OPS must be a positive number\n");
        return 2;
    }
    mr_err err = {0};
    mr_store *s;
    if (mr_store_open(argv[1], NULL, &s, &err) != MR_OK) {
        fprintf(stderr, "bench_store: %s\n", err.msg);
        return 1;
    }
    int failed = bench(s, OP_SET, "set", n) || bench(s, OP_GET, "get", n) || bench(s, OP_SET_NX, "set_nx", n);
    mr_store_close(s);
    return failed;
}
