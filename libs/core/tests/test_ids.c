/* test_ids.c -- Matrix identifier grammar (users, rooms, aliases, server names) and the managed
 * naming rules (namespaces, usernames, aliases, room keys), table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mindroom/ids.h"

typedef enum id_kind { K_SERVER, K_USER, K_ROOM_ID, K_ALIAS } id_kind;

typedef struct id_case {
    id_kind kind;
    const char *in;
    /* Valid: the parsed parts. Invalid: part of the message, after "is not a valid <what>: ". */
    bool ok;
    const char *a;  /* server: host; ids: localpart */
    const char *b;  /* ids: server */
    int port;       /* server only */
} id_case;

static const id_case id_cases[] = {
    /* server names */
    {K_SERVER, "example.com", true, "example.com", NULL, 0},
    {K_SERVER, "example.com:8448", true, "example.com", NULL, 8448},
    {K_SERVER, "localhost", true, "localhost", NULL, 0},
    {K_SERVER, "1.2.3.4", true, "1.2.3.4", NULL, 0},
    {K_SERVER, "1.2.3.4:1234", true, "1.2.3.4", NULL, 1234},
    {K_SERVER, "[::1]", true, "[::1]", NULL, 0},
    {K_SERVER, "[::1]:8448", true, "[::1]", NULL, 8448},
    {K_SERVER, "[1234:5678::abcd]:5678", true, "[1234:5678::abcd]", NULL, 5678},
    {K_SERVER, "my-host.example.org:1", true, "my-host.example.org", NULL, 1},
    {K_SERVER, "", false, "it is empty", NULL, 0},
    {K_SERVER, "example.com:", false, "a port is 1 to 5 digits", NULL, 0},
    {K_SERVER, "example.com:123456", false, "a port is 1 to 5 digits", NULL, 0},
    {K_SERVER, "example.com:80a", false, "a port is 1 to 5 digits", NULL, 0},
    {K_SERVER, "example.com:0", false, "the port must be between 1 and 65535", NULL, 0},
    {K_SERVER, "example.com:65536", false, "the port must be between 1 and 65535", NULL, 0},
    {K_SERVER, "exa_mple.com", false, "a host name holds only letters, digits, '-' and '.'", NULL, 0},
    {K_SERVER, ":8448", false, "the host is empty", NULL, 0},
    {K_SERVER, "[::1", false, "an IPv6 literal must be closed with ']'", NULL, 0},
    {K_SERVER, "[]", false, "an IPv6 literal holds 2 to 45 characters", NULL, 0},
    {K_SERVER, "[::g]", false, "an IPv6 literal holds only hex digits, ':' and '.'", NULL, 0},
    {K_SERVER, "[::1]8448", false, "expected ':' and a port after the IPv6 literal", NULL, 0},
    /* user IDs */
    {K_USER, "@alice:example.com", true, "alice", "example.com", 0},
    {K_USER, "@mindroom_router_ab3k9xyz:mindroom.chat", true, "mindroom_router_ab3k9xyz", "mindroom.chat", 0},
    {K_USER, "@a.b=c/d+e-f:[::1]:8448", true, "a.b=c/d+e-f", "[::1]:8448", 0},
    {K_USER, "@Alice!:example.com", true, "Alice!", "example.com", 0}, /* historical grammar */
    {K_USER, "@telegram_123:localhost:8008", true, "telegram_123", "localhost:8008", 0},
    {K_USER, "alice:example.com", false, "it must start with '@'", NULL, 0},
    {K_USER, "@alice", false, "expected ':' and a server name after the localpart", NULL, 0},
    {K_USER, "@:example.com", false, "the part before the server is empty", NULL, 0},
    {K_USER, "@al ice:example.com", false, "it may only hold printable ASCII characters without spaces", NULL, 0},
    {K_USER, "@alice:", false, "'' is not a valid server name: it is empty", NULL, 0},
    {K_USER, "@alice:exa mple.com", false, "a host name holds only letters", NULL, 0},
    {K_USER, "@alice:example.com:99999999", false, "a port is 1 to 5 digits", NULL, 0},
    {K_USER, "", false, "it must start with '@'", NULL, 0},
    /* room IDs */
    {K_ROOM_ID, "!abc123:example.com", true, "abc123", "example.com", 0},
    {K_ROOM_ID, "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM", true, "31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM", "",
     0},
    {K_ROOM_ID, "abc:example.com", false, "it must start with '!'", NULL, 0},
    {K_ROOM_ID, "!", false, "the part before the server is empty", NULL, 0},
    {K_ROOM_ID, "!:example.com", false, "the part before the server is empty", NULL, 0},
    {K_ROOM_ID, "!a+b", false, "a room ID without a server is unpadded URL-safe base64", NULL, 0},
    {K_ROOM_ID, "!abc:bad host", false, "a host name holds only letters", NULL, 0},
    /* aliases */
    {K_ALIAS, "#lobby:example.com", true, "lobby", "example.com", 0},
    {K_ALIAS, "#dev_ab3k9xyz:mindroom.chat", true, "dev_ab3k9xyz", "mindroom.chat", 0},
    {K_ALIAS, "#caf\xc3\xa9:example.com", true, "caf\xc3\xa9", "example.com", 0},
    {K_ALIAS, "#lobby", false, "expected ':' and a server name after the localpart", NULL, 0},
    {K_ALIAS, "lobby:example.com", false, "it must start with '#'", NULL, 0},
    {K_ALIAS, "#my lobby:example.com", false, "it may not hold spaces or control characters", NULL, 0},
    {K_ALIAS, "#:example.com", false, "the part before the server is empty", NULL, 0},
};

static mr_code parse_id(id_kind kind, const char *in, mr_id *id, mr_server_name *sn, mr_err *err)
{
    switch (kind) {
    case K_SERVER: return mr_id_parse_server_name(in, sn, err);
    case K_USER: return mr_id_parse_user(in, id, err);
    case K_ROOM_ID: return mr_id_parse_room_id(in, id, err);
    case K_ALIAS: return mr_id_parse_room_alias(in, id, err);
    }
    return MR_EINTERNAL;
}

static void test_id_table(void **state)
{
    (void)state;
    static const char sigils[] = {0, '@', '!', '#'};
    for (size_t i = 0; i < sizeof id_cases / sizeof id_cases[0]; i++) {
        const id_case *c = &id_cases[i];
        mr_id id;
        mr_server_name sn;
        mr_err err = {0};
        mr_code rc = parse_id(c->kind, c->in, &id, &sn, &err);
        print_message("case %zu: '%s' -> %d %s\n", i, c->in, rc, rc ? err.msg : "");
        if (c->ok) {
            assert_int_equal(rc, MR_OK);
            if (c->kind == K_SERVER) {
                assert_string_equal(sn.host, c->a);
                assert_int_equal(sn.port, c->port);
            } else {
                assert_int_equal(id.sigil, sigils[c->kind]);
                assert_string_equal(id.localpart, c->a);
                assert_string_equal(id.server, c->b);
            }
            /* NULL out only validates. */
            assert_int_equal(parse_id(c->kind, c->in, NULL, NULL, NULL), MR_OK);
        } else {
            assert_int_equal(rc, MR_EINVAL);
            assert_non_null(strstr(err.msg, c->a));
            char quoted[300];
            snprintf(quoted, sizeof quoted, "'%s' is not a valid ", c->in);
            assert_true(strncmp(err.msg, quoted, strlen(quoted)) == 0);
        }
    }
}

static void test_exact_messages(void **state)
{
    (void)state;
    mr_err err = {0};
    assert_int_equal(mr_id_parse_user("@alice", NULL, &err), MR_EINVAL);
    assert_string_equal(err.msg, "'@alice' is not a valid user ID: expected ':' and a server name after the localpart");
    assert_int_equal(mr_id_parse_server_name("[::1]:0", NULL, &err), MR_EINVAL);
    assert_string_equal(err.msg, "'[::1]:0' is not a valid server name: the port must be between 1 and 65535");
    assert_int_equal(mr_id_parse_user("@bob:ex ample.org", NULL, &err), MR_EINVAL);
    assert_string_equal(err.msg, "'@bob:ex ample.org' is not a valid user ID: 'ex ample.org' is not a valid server "
                                 "name: a host name holds only letters, digits, '-' and '.'");
}

/* An ID of exactly 255 bytes passes; 256 fails, however it is split. */
static void test_id_length_limit(void **state)
{
    (void)state;
    char id[300];
    id[0] = '@';
    memset(id + 1, 'a', 241);
    memcpy(id + 242, ":example.com", 13); /* 1 + 241 + 12 = 254 bytes */
    assert_int_equal(strlen(id), 254);
    assert_int_equal(mr_id_parse_user(id, NULL, NULL), MR_OK);
    memmove(id + 2, id + 1, strlen(id));
    id[1] = 'b';
    assert_int_equal(strlen(id), 255);
    mr_id parsed;
    assert_int_equal(mr_id_parse_user(id, &parsed, NULL), MR_OK);
    assert_int_equal(strlen(parsed.localpart), 242);
    memmove(id + 2, id + 1, strlen(id));
    assert_int_equal(strlen(id), 256);
    mr_err err = {0};
    assert_int_equal(mr_id_parse_user(id, NULL, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "it is 256 bytes long; the limit is 255"));
    /* The quoted input is cut so the rule still fits in the message. */
    assert_non_null(strstr(err.msg, "...' is not a valid user ID"));

    char room[300] = "!";
    memset(room + 1, 'x', 255);
    room[256] = '\0';
    assert_int_equal(mr_id_parse_room_id(room, NULL, NULL), MR_EINVAL);
    room[255] = '\0';
    assert_int_equal(mr_id_parse_room_id(room, NULL, NULL), MR_OK);

    char host[300];
    memset(host, 'h', 256);
    host[256] = '\0';
    assert_int_equal(mr_id_parse_server_name(host, NULL, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "a DNS name is at most 255 characters"));
    host[255] = '\0';
    mr_server_name sn;
    assert_int_equal(mr_id_parse_server_name(host, &sn, NULL), MR_OK);
    assert_int_equal(strlen(sn.host), 255);
}

static void test_localpart_modern(void **state)
{
    (void)state;
    assert_true(mr_id_localpart_is_modern("mindroom_user"));
    assert_true(mr_id_localpart_is_modern("a.b=c/d+e-f_0"));
    assert_false(mr_id_localpart_is_modern(""));
    assert_false(mr_id_localpart_is_modern("Alice"));
    assert_false(mr_id_localpart_is_modern("al ice"));
    assert_false(mr_id_localpart_is_modern("alice!"));
    assert_false(mr_id_localpart_is_modern(NULL));
}

static void test_namespace(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } ok[] = {{"", ""}, {"ab3k9xyz", "ab3k9xyz"}, {"AB3K", "ab3k"}, {"abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz012345"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char out[MR_NAMESPACE_MAX + 1] = "junk";
        assert_int_equal(mr_id_namespace_normalize(ok[i].in, out, NULL), MR_OK);
        assert_string_equal(out, ok[i].out);
    }
    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"abc", "'abc' is not a valid namespace: it must be 4 to 32 characters long"},
        {"abcdefghijklmnopqrstuvwxyz0123456", "it must be 4 to 32 characters long"},
        {"ab_cd", "'ab_cd' is not a valid namespace: it may only hold letters and digits"},
        {"abc-d", "it may only hold letters and digits"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[MR_NAMESPACE_MAX + 1] = "keep";
        mr_err err = {0};
        assert_int_equal(mr_id_namespace_normalize(bad[i].in, out, &err), MR_EINVAL);
        assert_non_null(strstr(err.msg, bad[i].msg));
        assert_string_equal(out, "keep");
    }
}

static void test_entity_names(void **state)
{
    (void)state;
    mr_err err = {0};
    assert_int_equal(mr_id_entity_name_check("code", false, NULL), MR_OK);
    assert_int_equal(mr_id_entity_name_check("Dev_Team_2", false, NULL), MR_OK);
    assert_int_equal(mr_id_entity_name_check("router", true, NULL), MR_OK);
    assert_int_equal(mr_id_entity_name_check("router", false, &err), MR_EINVAL);
    assert_string_equal(err.msg, "'router' is a reserved name; choose another");
    assert_int_equal(mr_id_entity_name_check("User", false, &err), MR_EINVAL);
    assert_string_equal(err.msg, "'User' is a reserved name; choose another");
    assert_int_equal(mr_id_entity_name_check("my-agent", false, &err), MR_EINVAL);
    assert_string_equal(err.msg, "'my-agent' is not a valid name: names may only hold letters, digits and '_'");
    assert_int_equal(mr_id_entity_name_check("", false, &err), MR_EINVAL);
    assert_string_equal(err.msg, "'' is not a valid name: it is empty");
    assert_int_equal(mr_id_entity_name_check("caf\xc3\xa9", false, NULL), MR_EINVAL);
}

static void test_managed_names(void **state)
{
    (void)state;
    char out[MR_ID_MAX + 1];
    mr_err err = {0};
    assert_int_equal(mr_id_managed_username("router", "", out, sizeof out, NULL), MR_OK);
    assert_string_equal(out, "mindroom_router");
    assert_int_equal(mr_id_managed_username("DevTeam", "ab3k9xyz", out, sizeof out, NULL), MR_OK);
    assert_string_equal(out, "mindroom_devteam_ab3k9xyz");
    assert_int_equal(mr_id_managed_username("code", NULL, out, sizeof out, NULL), MR_OK);
    assert_string_equal(out, "mindroom_code");
    assert_int_equal(mr_id_managed_username("co de", "", out, sizeof out, &err), MR_EINVAL);
    assert_string_equal(err.msg, "'mindroom_co de' is not a valid Matrix username: usernames hold only a-z, 0-9 and ._=/+-");
    char small[10];
    assert_int_equal(mr_id_managed_username("code", "", small, sizeof small, &err), MR_EINVAL);
    assert_string_equal(err.msg, "the Matrix username 'mindroom_code' does not fit in 10 bytes");

    assert_int_equal(mr_id_managed_user_id("router", "ab3k9xyz", "mindroom.chat", out, sizeof out, NULL), MR_OK);
    assert_string_equal(out, "@mindroom_router_ab3k9xyz:mindroom.chat");
    assert_int_equal(mr_id_managed_user_id("mind", "", "[::1]:8448", out, sizeof out, NULL), MR_OK);
    assert_string_equal(out, "@mindroom_mind:[::1]:8448");
    assert_int_equal(mr_id_managed_user_id("mind", "", "bad host", out, sizeof out, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "'bad host' is not a valid server name"));
    /* 1 + 9 + 200 + 1 + 45 = 256 bytes: one too many. */
    char entity[201];
    memset(entity, 'e', 200);
    entity[200] = '\0';
    char server[46];
    memset(server, 's', 45);
    server[45] = '\0';
    assert_int_equal(mr_id_managed_user_id(entity, "", server, out, sizeof out, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "would be 256 bytes; the limit is 255"));
    server[44] = '\0';
    assert_int_equal(mr_id_managed_user_id(entity, "", server, out, sizeof out, NULL), MR_OK);
    assert_int_equal(strlen(out), 255);

    assert_int_equal(mr_id_managed_alias_localpart("dev", "ab3k9xyz", out, sizeof out, NULL), MR_OK);
    assert_string_equal(out, "dev_ab3k9xyz");
    assert_int_equal(mr_id_managed_alias_localpart("Lobby", "", out, sizeof out, NULL), MR_OK);
    assert_string_equal(out, "Lobby");
    assert_int_equal(mr_id_managed_alias_localpart("", "", out, sizeof out, &err), MR_EINVAL);
    assert_string_equal(err.msg, "a managed room key is empty");
    assert_int_equal(mr_id_managed_alias_localpart("a:b", "", out, sizeof out, &err), MR_EINVAL);
    assert_string_equal(err.msg, "'a:b' is not a valid room key: room keys may not hold ':'");
    assert_int_equal(mr_id_managed_alias_localpart("personal", "ab3k9xyz", small, sizeof small, &err), MR_EINVAL);
    assert_string_equal(err.msg, "the alias for room 'personal' does not fit in 10 bytes");
}

static void test_room_key_from_alias(void **state)
{
    (void)state;
    static const struct {
        const char *localpart, *ns;
        bool ok;
        const char *key;
    } cases[] = {
        {"dev_ab3k9xyz", "ab3k9xyz", true, "dev"},
        {"my_room_ab3k9xyz", "ab3k9xyz", true, "my_room"},
        {"dev", "", true, "dev"},
        {"dev_ab3k9xyz", "", true, "dev_ab3k9xyz"},
        {"dev", "ab3k9xyz", false, NULL},
        {"dev_zzzz9xyz", "ab3k9xyz", false, NULL},
        {"_ab3k9xyz", "ab3k9xyz", false, NULL}, /* the key would be empty */
        {"devab3k9xyz", "ab3k9xyz", false, NULL},
        {"_mindroom_root_space_ab3k9xyz", "ab3k9xyz", true, "_mindroom_root_space"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64] = "untouched";
        bool ok = mr_id_room_key_from_alias_localpart(cases[i].localpart, cases[i].ns, out, sizeof out);
        print_message("case %zu: %s\n", i, cases[i].localpart);
        assert_int_equal(ok, cases[i].ok);
        if (ok)
            assert_string_equal(out, cases[i].key);
    }
    char tiny[3];
    assert_false(mr_id_room_key_from_alias_localpart("dev_ab3k9xyz", "ab3k9xyz", tiny, sizeof tiny));
}

static void test_url_host(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *host; /* NULL: refused with message */
        const char *message;
    } cases[] = {
        {"https://mindroom.chat", "mindroom.chat", NULL},
        {"http://localhost:8008", "localhost", NULL},
        {"https://matrix.example.org/path?x=1", "matrix.example.org", NULL},
        {"http://[::1]:8448/", "[::1]", NULL},
        {"http://127.0.0.1:1234", "127.0.0.1", NULL},
        {"matrix.example.org", NULL, "\"matrix.example.org\" is not an http:// or https:// URL"},
        {"ftp://example.org", NULL, "\"ftp://example.org\" is not an http:// or https:// URL"},
        {"https://user:pw@example.org", NULL, "credentials are not allowed in the URL"},
        {"https://", NULL, "\"https://\" has no usable host"},
        {"https://:8448", NULL, "\"https://:8448\" has no usable host"},
        {"http://[::1", NULL, "\"http://[::1\" has no usable host"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char host[64] = "unchanged";
        mr_err err = {0};
        mr_code rc = mr_id_url_host(cases[i].url, host, sizeof host, &err);
        if (cases[i].host) {
            assert_int_equal(rc, MR_OK);
            assert_string_equal(host, cases[i].host);
        } else {
            assert_int_equal(rc, MR_EINVAL);
            assert_string_equal(err.msg, cases[i].message);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_table),
        cmocka_unit_test(test_exact_messages),
        cmocka_unit_test(test_id_length_limit),
        cmocka_unit_test(test_localpart_modern),
        cmocka_unit_test(test_namespace),
        cmocka_unit_test(test_entity_names),
        cmocka_unit_test(test_managed_names),
        cmocka_unit_test(test_room_key_from_alias),
        cmocka_unit_test(test_url_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
