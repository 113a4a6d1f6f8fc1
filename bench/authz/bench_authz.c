/* bench_authz.c -- authorization decisions per second vs. a plain hash lookup of the same users. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/authz.h"
#include "mindroom/clock.h"
#include "mindroom/config.h"

#define N_USERS 10000
#define N_ROOMS 1000
#define N_GLOBS 100
#define N_AGENTS 10
#define USERS_PER_ROOM 20
#define N_QUERIES 65536 /* a power of two: the loops index with a mask */
#define ROUNDS 3

typedef struct strbuf {
    char *p;
    size_t len, cap;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
}

/* Room i is keyed by its room ID, full alias or managed key, in turn. */
static void room_key(size_t i, char *out, size_t cap)
{
    switch (i % 3) {
    case 0: snprintf(out, cap, "!room%zu:example.com", i); break;
    case 1: snprintf(out, cap, "#room%zu:example.com", i); break;
    default: snprintf(out, cap, "room%zu", i); break;
    }
}

/* 10,000 users, 1,000 listed rooms, 100 glob rules over 10 agents and "*". */
static char *make_config(void)
{
    strbuf b = {malloc(1 << 20), 0, 1 << 20};
    if (!b.p)
        abort();
    sb_printf(&b, "models:\n  default: {provider: openai, id: gpt-5}\nagents:\n");
    for (int a = 0; a < N_AGENTS; a++)
        sb_printf(&b, "  a%d: {}\n", a);
    sb_printf(&b, "teams:\n  t0: {agents: [a0, a1, a2]}\nauthorization:\n  global_users:\n");
    for (int u = 0; u < N_USERS / 10; u++)
        sb_printf(&b, "    - \"@u%d:example.com\"\n", u * 10);
    sb_printf(&b, "  room_permissions:\n");
    for (size_t r = 0; r < N_ROOMS; r++) {
        char key[64];
        room_key(r, key, sizeof key);
        sb_printf(&b, "    \"%s\":\n", key);
        for (size_t j = 0; j < USERS_PER_ROOM; j++)
            sb_printf(&b, "      - \"@u%zu:example.com\"\n", (r * 37 + j * 101) % N_USERS);
    }
    sb_printf(&b, "  aliases:\n");
    for (int u = 0; u < 500; u++)
        sb_printf(&b, "    \"@u%d:example.com\": [\"@telegram_%d:example.com\"]\n", u * 7 + 1, u);
    /* 100 globs: 10 on "*", 9 on each agent, none of them a bare "*". */
    sb_printf(&b, "  agent_reply_permissions:\n    \"*\":\n");
    for (int g = 0; g < 10; g++)
        sb_printf(&b, "      - \"@u%d?:example.com\"\n", g);
    for (int a = 0; a < N_AGENTS; a++) {
        sb_printf(&b, "    a%d:\n      - \"@admin:example.com\"\n", a);
        for (int g = 0; g < 9; g++)
            sb_printf(&b, "      - \"@[a-%c]*%d:team%d.org\"\n", 'b' + g, a * 10 + g, g);
    }
    return b.p;
}

/* The baseline: the plainest open-addressing set of the same 10,000 user IDs. */
typedef struct plain_set {
    const char **slots;
    size_t mask;
} plain_set;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static void plain_add(plain_set *set, const char *s)
{
    size_t i = (size_t)fnv1a(s) & set->mask;
    while (set->slots[i])
        i = (i + 1) & set->mask;
    set->slots[i] = s;
}

static bool plain_has(const plain_set *set, const char *s)
{
    for (size_t i = (size_t)fnv1a(s) & set->mask; set->slots[i]; i = (i + 1) & set->mask)
        if (strcmp(set->slots[i], s) == 0)
            return true;
    return false;
}

typedef struct query {
    char sender[64];
    char room_id[64], alias[64], key[64];
    mr_authz_room room;
    const char *entity;
} query;

static const char *const entities[] = {"a0", "a3", "a7", "t0", "router"};

/* Senders: listed users, unlisted users, aliases and strangers; rooms in all three forms. */
static void make_queries(query *q)
{
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < N_QUERIES; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t r = (size_t)(x % N_ROOMS), kind = (size_t)(x >> 20) % 4;
        memset(&q[i], 0, sizeof q[i]);
        if (kind == 0)
            snprintf(q[i].sender, sizeof q[i].sender, "@telegram_%u:example.com", (unsigned)((x >> 32) % 500));
        else if (kind == 1)
            snprintf(q[i].sender, sizeof q[i].sender, "@stranger%u:other.org", (unsigned)((x >> 32) % 1000));
        else
            snprintf(q[i].sender, sizeof q[i].sender, "@u%u:example.com", (unsigned)((x >> 32) % N_USERS));
        /* Ask about rooms with every identifier the instance would know. */
        snprintf(q[i].room_id, sizeof q[i].room_id, "!room%zu:example.com", r);
        snprintf(q[i].alias, sizeof q[i].alias, "#room%zu:example.com", r);
        snprintf(q[i].key, sizeof q[i].key, "room%zu", r);
        q[i].room = (mr_authz_room){q[i].room_id, q[i].alias, q[i].key};
        q[i].entity = entities[(x >> 40) % (sizeof entities / sizeof entities[0])];
    }
}

typedef struct bench_ctx {
    const mr_authz *az;
    const plain_set *set;
} bench_ctx;

/* One query's work: whether it hit (found, allowed). Every kind is timed by the same loop. */
typedef bool (*query_fn)(const bench_ctx *c, const query *x);

static bool query_lookup(const bench_ctx *c, const query *x)
{
    return plain_has(c->set, x->sender);
}

static bool query_room(const bench_ctx *c, const query *x)
{
    mr_authz_decision d;
    return mr_authz_check_room(c->az, x->sender, &x->room, &d);
}

static bool query_reply(const bench_ctx *c, const query *x)
{
    mr_authz_decision d;
    mr_authz_reply_query rq = {x->entity, x->sender, NULL, NULL, NULL};
    return mr_authz_check_reply(c->az, &rq, &d);
}

/* Best of ROUNDS, in operations per second; *hits keeps the work observable. Inlined at each
 * call, so the loop calls its query directly, as a loop written for it would: an indirect call
 * a query would weigh on the cheap baseline more than on the decisions. */
static inline __attribute__((always_inline)) double measure(query_fn fn, const bench_ctx *c, const query *q, size_t n, size_t *hits)
{
    double best = 0;
    for (int r = 0; r < ROUNDS; r++) {
        size_t h = 0;
        double t0 = mr_clock_mono_s();
        for (size_t i = 0; i < n; i++)
            h += fn(c, &q[i & (N_QUERIES - 1)]);
        double rate = (double)n / (mr_clock_mono_s() - t0);
        *hits = h;
        if (rate > best)
            best = rate;
    }
    return best;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    char *yaml = make_config();
    mr_config *cfg = NULL;
    mr_err err = {0};
    double t0 = mr_clock_mono_s();
    if (mr_config_parse(yaml, strlen(yaml), "bench.yaml", &cfg, NULL, &err) != MR_OK) {
        fprintf(stderr, "bench config: %s\n", err.msg);
        return 1;
    }
    double t1 = mr_clock_mono_s();
    mr_authz *az = NULL;
    if (mr_authz_new(cfg, "example.com", NULL, &az, &err) != MR_OK) {
        fprintf(stderr, "mr_authz_new: %s\n", err.msg);
        return 1;
    }
    double t2 = mr_clock_mono_s();
    mr_config_release(cfg);

    char (*names)[32] = malloc(N_USERS * sizeof *names);
    size_t cap = 1;
    while (cap < N_USERS * 2)
        cap *= 2;
    plain_set set = {calloc(cap, sizeof(char *)), cap - 1};
    query *q = malloc(N_QUERIES * sizeof *q);
    if (!names || !set.slots || !q)
        return 1;
    for (size_t u = 0; u < N_USERS; u++) {
        snprintf(names[u], sizeof names[u], "@u%zu:example.com", u);
        plain_add(&set, names[u]);
    }
    make_queries(q);

    bench_ctx ctx = {az, &set};
    size_t h_base, h_room, h_reply;
    double base = measure(query_lookup, &ctx, q, n, &h_base);
    double room = measure(query_room, &ctx, q, n, &h_room);
    double reply = measure(query_reply, &ctx, q, n, &h_reply);

    printf("config: %d users, %d rooms, %d globs; parse %.1f ms, compile %.1f ms\n", N_USERS, N_ROOMS,
           N_GLOBS, (t1 - t0) * 1e3, (t2 - t1) * 1e3);
    printf("%-28s %12.0f /s  (%zu of %zu hit)\n", "baseline hash lookup", base, h_base, n);
    printf("%-28s %12.0f /s  (%zu of %zu allowed)  %.2fx the time of one lookup\n",
           "room access decisions", room, h_room, n, base / room);
    printf("%-28s %12.0f /s  (%zu of %zu allowed)  %.2fx the time of one lookup\n", "reply decisions",
           reply, h_reply, n, base / reply);

    mr_authz_free(az);
    free(q);
    free(set.slots);
    free(names);
    free(yaml);
    return 0;
}
