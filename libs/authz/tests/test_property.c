/* test_property.c -- random configs against a plain model of the seed's rules: with
 * default_room_access false nobody outside global_users, the room's list and the system
 * identities is ever let in. MR_AUTHZ_SEED=<n> replays a run; failures print the seed. */
#include "authz_test_util.h"

#include <stdbool.h>
#include <stdlib.h>

#define N_CONFIGS 3000
#define N_QUERIES 40
#define NS "ab3k9xyz"
#define MAX_LIST 6
#define MAX_PERMS 6
#define MAX_ALIAS_USERS 3

static uint64_t rng_state;

static size_t pick(size_t n)
{
    return (size_t)(test_rng(&rng_state) % n);
}

static const char *const users[] = {
    "@u0:example.com", "@u1:example.com", "@u2:example.com", "@u3:example.com", "@u4:example.com",
    "@u5:example.com", "@u0:other.org", "@u1:other.org", MR_CONFIG_OWNER_PLACEHOLDER,
};
#define N_USERS (sizeof users / sizeof users[0])
static const char *const bridged[] = {
    "@tg0:example.com", "@tg1:example.com", "@tg2:example.com", "@tg3:example.com",
};
#define N_BRIDGED (sizeof bridged / sizeof bridged[0])
/* Every form a room_permissions key or a room identifier can take. */
static const char *const room_ids[] = {"!id0:example.com", "!id1:example.com", "!id2:example.com"};
static const char *const room_aliases[] = {
    "#r0:example.com", "#r1:example.com", ("#r0_" NS ":example.com"), ("#r1_" NS ":example.com"),
    "#r2_zzzz1111:example.com",
};
static const char *const room_keys[] = {"r0", "r1", "r2", ("r0_" NS)};
static const char *const agent_names[] = {"a0", "a1", "Mixed"};
static const char *const usernames[] = {"mindroom_user", "owner_x"};
/* Senders that are or look like system identities. */
static const char *const system_like[] = {
    "@mindroom_user:example.com", "@mindroom_user:other.org", "@owner_x:example.com",
    "@mindroom_a0:example.com", ("@mindroom_a0_" NS ":example.com"), "@mindroom_mixed:example.com",
    ("@mindroom_mixed_" NS ":example.com"), "@mindroom_t0:example.com", ("@mindroom_t0_" NS ":example.com"),
    "@mindroom_router:example.com", ("@mindroom_router_" NS ":example.com"),
    "@mindroom_router:other.org",
};

typedef struct perm {
    const char *key;
    const char *users[MAX_LIST];
    size_t n_users;
} perm;

typedef struct model {
    const char *ns;
    const char *username;
    bool agents[3];
    bool team;                  /* t0, made of a0 */
    const char *global[MAX_LIST];
    size_t n_global;
    perm perms[MAX_PERMS];
    size_t n_perms;
    const char *alias_of[N_BRIDGED]; /* canonical for bridged[i], or NULL */
    bool default_access;
} model;

static bool in_list(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* n distinct entries of pool (n <= pool size). */
static size_t pick_distinct(const char *const *pool, size_t n_pool, size_t n, const char **out)
{
    size_t got = 0;
    while (got < n) {
        const char *s = pool[pick(n_pool)];
        if (!in_list(out, got, s))
            out[got++] = s;
    }
    return got;
}

static void model_random(model *m)
{
    memset(m, 0, sizeof *m);
    m->ns = pick(2) ? NS : NULL;
    m->username = usernames[pick(2)];
    for (size_t i = 0; i < 3; i++)
        m->agents[i] = pick(2);
    m->team = m->agents[0] && pick(2);
    m->n_global = pick_distinct(users, N_USERS, pick(3), m->global);
    m->n_perms = pick(MAX_PERMS + 1);
    const char *keys[MAX_PERMS];
    for (size_t i = 0; i < m->n_perms; i++) {
        const char *key;
        do {
            switch (pick(3)) {
            case 0: key = room_ids[pick(3)]; break;
            case 1: key = room_aliases[pick(5)]; break;
            default: key = room_keys[pick(4)]; break;
            }
        } while (in_list(keys, i, key));
        keys[i] = key;
        m->perms[i].key = key;
        m->perms[i].n_users = pick_distinct(users, N_USERS, pick(4), m->perms[i].users);
    }
    for (size_t i = 0; i < N_BRIDGED; i++)
        m->alias_of[i] = pick(2) ? users[pick(N_USERS - 1)] : NULL;
    m->default_access = pick(2);
}

static void append(char **p, size_t *left, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char **p, size_t *left, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*p, *left, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < *left);
    *p += n;
    *left -= (size_t)n;
}

static void list_yaml(char **p, size_t *left, const char *const *v, size_t n)
{
    append(p, left, "[");
    for (size_t i = 0; i < n; i++)
        append(p, left, "%s\"%s\"", i ? ", " : "", v[i]);
    append(p, left, "]\n");
}

static void model_yaml(const model *m, char *buf, size_t cap)
{
    char *p = buf;
    size_t left = cap;
    append(&p, &left, "models:\n  default: {provider: openai, id: gpt-5}\n");
    append(&p, &left, "mindroom_user: {username: %s}\n", m->username);
    bool any_agent = m->agents[0] || m->agents[1] || m->agents[2];
    if (any_agent) {
        append(&p, &left, "agents:\n");
        for (size_t i = 0; i < 3; i++)
            if (m->agents[i])
                append(&p, &left, "  %s: {}\n", agent_names[i]);
    }
    if (m->team)
        append(&p, &left, "teams:\n  t0: {agents: [a0]}\n");
    append(&p, &left, "authorization:\n  default_room_access: %s\n  global_users: ",
           m->default_access ? "true" : "false");
    list_yaml(&p, &left, m->global, m->n_global);
    append(&p, &left, "  room_permissions:%s\n", m->n_perms ? "" : " {}");
    for (size_t i = 0; i < m->n_perms; i++) {
        append(&p, &left, "    \"%s\": ", m->perms[i].key);
        list_yaml(&p, &left, m->perms[i].users, m->perms[i].n_users);
    }
    bool any_alias = false;
    for (size_t c = 0; c < N_USERS - 1; c++) {
        const char *mine[N_BRIDGED];
        size_t n = 0;
        for (size_t i = 0; i < N_BRIDGED; i++)
            if (m->alias_of[i] == users[c])
                mine[n++] = bridged[i];
        if (!n)
            continue;
        if (!any_alias)
            append(&p, &left, "  aliases:\n");
        any_alias = true;
        append(&p, &left, "    \"%s\": ", users[c]);
        list_yaml(&p, &left, mine, n);
    }
}

/* --- the model: the seed's rules written as plainly as possible --- */

/* The step that lets a system identity in (1 or 2), or 0 for everybody else. */
static int model_internal(const model *m, const char *sender)
{
    char id[300];
    snprintf(id, sizeof id, "@%s:example.com", m->username);
    if (strcmp(id, sender) == 0)
        return MR_AUTHZ_STEP_INTERNAL_USER;
    const char *names[5];
    size_t n = 0;
    static const char *const lower[] = {"a0", "a1", "mixed"};
    for (size_t i = 0; i < 3; i++)
        if (m->agents[i])
            names[n++] = lower[i];
    if (m->team)
        names[n++] = "t0";
    names[n++] = "router";
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "@mindroom_%s%s%s:example.com", names[i], m->ns ? "_" : "",
                 m->ns ? m->ns : "");
        if (strcmp(id, sender) == 0)
            return MR_AUTHZ_STEP_MANAGED_ENTITY;
    }
    return 0;
}

static const char *model_canonical(const model *m, const char *sender)
{
    for (size_t i = 0; i < N_BRIDGED; i++)
        if (m->alias_of[i] && strcmp(bridged[i], sender) == 0)
            return m->alias_of[i];
    return sender;
}

static bool listed(const char *const *v, size_t n, const char *user)
{
    return strcmp(user, MR_CONFIG_OWNER_PLACEHOLDER) != 0 && in_list(v, n, user);
}

static const perm *model_perm(const model *m, const char *key)
{
    for (size_t i = 0; key && i < m->n_perms; i++)
        if (strcmp(m->perms[i].key, key) == 0)
            return &m->perms[i];
    return NULL;
}

/* The first room_permissions entry the room's identifiers hit, in the documented order. */
static const perm *model_room(const model *m, const mr_authz_room *room)
{
    char alias[300] = "", localpart[300] = "", key[300] = "";
    const char *ns = m->ns ? m->ns : "";
    if (room->alias)
        snprintf(alias, sizeof alias, "%s", room->alias);
    else if (room->room_key)
        snprintf(alias, sizeof alias, "#%s%s%s:example.com", room->room_key, *ns ? "_" : "", ns);
    if (*alias) {
        snprintf(localpart, sizeof localpart, "%.*s", (int)(strchr(alias, ':') - alias - 1), alias + 1);
        size_t n = strlen(localpart), k = strlen(ns);
        if (!k)
            snprintf(key, sizeof key, "%s", localpart);
        else if (n > k + 1 && localpart[n - k - 1] == '_' && strcmp(localpart + n - k, ns) == 0)
            snprintf(key, sizeof key, "%.*s", (int)(n - k - 1), localpart);
    }
    const char *order[] = {room->room_id, room->room_key, *alias ? alias : NULL,
                           *localpart ? localpart : NULL, *key ? key : NULL};
    for (size_t i = 0; i < 5; i++) {
        const perm *p = model_perm(m, order[i]);
        if (p)
            return p;
    }
    return NULL;
}

static const char *random_sender(void)
{
    switch (pick(3)) {
    case 0: return users[pick(N_USERS)];
    case 1: return bridged[pick(N_BRIDGED)];
    default: return system_like[pick(sizeof system_like / sizeof system_like[0])];
    }
}

static void random_room(mr_authz_room *r)
{
    r->room_id = pick(2) ? room_ids[pick(3)] : NULL;
    r->alias = pick(3) == 0 ? room_aliases[pick(5)] : NULL;
    r->room_key = pick(3) == 0 ? room_keys[pick(4)] : NULL;
}

static void test_random_configs(void **state)
{
    (void)state;
    uint64_t base = test_seed();
    size_t checked = 0, allowed_by_list = 0;
    for (size_t c = 0; c < N_CONFIGS; c++) {
        uint64_t seed = base + c;
        rng_state = seed;
        model m;
        model_random(&m);
        char yaml[8192];
        model_yaml(&m, yaml, sizeof yaml);
        mr_authz *az = test_authz_build(yaml, m.ns);
        for (size_t q = 0; q < N_QUERIES; q++) {
            const char *sender = random_sender();
            mr_authz_room room;
            random_room(&room);
            mr_authz_decision d;
            bool got = mr_authz_check_room(az, sender, &room, &d);

            int internal_step = model_internal(&m, sender);
            bool internal = internal_step != 0;
            const char *canonical = model_canonical(&m, sender);
            bool global = !internal && listed(m.global, m.n_global, canonical);
            const perm *p = internal || global ? NULL : model_room(&m, &room);
            bool in_room_list = p && listed(p->users, p->n_users, canonical);
            bool want = internal || global || in_room_list || (!p && m.default_access);
            mr_authz_step want_step = internal ? (mr_authz_step)internal_step
                                      : global ? MR_AUTHZ_STEP_GLOBAL_USERS
                                      : p      ? MR_AUTHZ_STEP_ROOM_PERMISSIONS
                                               : MR_AUTHZ_STEP_DEFAULT_ACCESS;
            const char *want_matched = global ? canonical : p ? p->key : NULL;
            bool matched_ok = want_matched ? d.matched && strcmp(d.matched, want_matched) == 0
                                           : internal || !d.matched;
            if (got != want || d.step != want_step || !matched_ok ||
                (!m.default_access && got && !internal && !global && !in_room_list)) {
                char says[512];
                mr_authz_describe(&d, says, sizeof says);
                fail_msg("MR_AUTHZ_SEED=%llu (config %zu, seed %llu), query %zu: %s in "
                         "{%s, %s, %s}: got %s at %s, want %s at %s\n%s\nconfig:\n%s",
                         (unsigned long long)base, c, (unsigned long long)seed, q, sender,
                         room.room_id ? room.room_id : "-", room.alias ? room.alias : "-",
                         room.room_key ? room.room_key : "-", got ? "allowed" : "denied",
                         mr_authz_step_name(d.step), want ? "allowed" : "denied",
                         mr_authz_step_name(want_step), says, yaml);
            }
            assert_string_equal(d.canonical, internal ? sender : canonical);
            allowed_by_list += in_room_list;
            checked++;
        }
        mr_authz_free(az);
    }
    assert_int_equal(checked, (size_t)N_CONFIGS * N_QUERIES);
    /* The generator must reach the interesting branch, or the property says little. */
    assert_true(allowed_by_list > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_configs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
