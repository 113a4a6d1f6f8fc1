/* test_noalloc.c -- proves the decision path never allocates: every malloc-family call made by
 * this program's code and the static libraries it links is routed (ld --wrap) through a
 * counter. */
#include "authz_test_util.h"

#include <stdbool.h>
#include <stdlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static size_t alloc_calls;
static size_t free_calls;

void *__wrap_malloc(size_t n) { alloc_calls++; return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { alloc_calls++; return __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { alloc_calls++; return __real_realloc(p, n); }
void __wrap_free(void *p) { free_calls++; __real_free(p); }
char *__wrap_strdup(const char *s) { alloc_calls++; return __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { alloc_calls++; return __real_strndup(s, n); }

/* Every kind of rule at once, so each decision branch runs below. */
static const char CFG[] = TEST_DEVTEAM
    "authorization:\n"
    "  global_users: [\"@admin:example.com\"]\n"
    "  room_permissions:\n"
    "    \"!abc:example.com\": [\"@user1:example.com\"]\n"
    "    \"#lobby_ab3k9xyz:example.com\": [\"@user3:example.com\"]\n"
    "    ops: [\"@user4:example.com\"]\n"
    "  aliases:\n"
    "    \"@user1:example.com\": [\"@telegram_1:example.com\"]\n"
    "  agent_reply_permissions:\n"
    "    \"*\": [\"@admin:example.com\"]\n"
    "    code: {users: [\"*:example.com\", \"@[abc]?x:*\"], joined_rooms: [lobby]}\n"
    "    research: [\"@user1:example.com\"]\n"
    "    router: [\"*\"]\n";

static bool never_member(void *ctx, const char *room, const char *user)
{
    (void)ctx;
    (void)room;
    (void)user;
    return false;
}

static const char *const senders[] = {
    "@admin:example.com", "@user1:example.com", "@telegram_1:example.com", "@user3:example.com",
    "@user4:example.com", "@stranger:other.org", "@mindroom_user:example.com",
    "@mindroom_code_ab3k9xyz:example.com", "@mindroom_router_ab3k9xyz:example.com",
    "@mindroom_user:other.org",
};
static const mr_authz_room rooms[] = {
    {"!abc:example.com", NULL, NULL},
    {NULL, "#lobby_ab3k9xyz:example.com", NULL},
    {NULL, "#ops_ab3k9xyz:example.com", NULL},
    {"!new:example.com", NULL, "ops"},
    {NULL, NULL, "lobby"},
    {"!unlisted:example.com", NULL, NULL},
};
static const char *const entities[] = {"code", "research", "devteam", "router", "nobody"};

static void test_decisions_do_not_allocate(void **state)
{
    (void)state;
    size_t before = alloc_calls;
    mr_authz *az = test_authz_build(CFG, "ab3k9xyz");
    /* The counter sees the compile step, so a zero below means something. */
    assert_true(alloc_calls > before);

    size_t allowed = 0;
    char line[512];
    alloc_calls = free_calls = 0;
    for (size_t s = 0; s < sizeof senders / sizeof senders[0]; s++) {
        for (size_t r = 0; r < sizeof rooms / sizeof rooms[0]; r++) {
            mr_authz_decision d;
            allowed += mr_authz_check_room(az, senders[s], &rooms[r], &d);
            mr_authz_describe(&d, line, sizeof line);
        }
        for (size_t e = 0; e < sizeof entities / sizeof entities[0]; e++) {
            mr_authz_reply_query q = {entities[e], senders[s], "@user1:example.com", never_member, NULL};
            mr_authz_decision d;
            allowed += mr_authz_check_reply(az, &q, &d);
            mr_authz_describe(&d, line, sizeof line);
        }
        allowed += mr_authz_is_internal(az, senders[s]);
    }
    size_t decision_allocs = alloc_calls, decision_frees = free_calls;
    mr_authz_free(az);
    assert_int_equal(decision_allocs, 0);
    assert_int_equal(decision_frees, 0);
    /* 120 questions: 30 room, 23 reply and 3 internal answers are yes under the rules above. */
    assert_int_equal(allowed, 56);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decisions_do_not_allocate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
