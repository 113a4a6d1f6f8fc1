/* test_authz.c -- table-driven cases for room access and reply permissions, one per rule. */
#include "authz_test_util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define NS "ab3k9xyz"

/* The seed's main example: every room_permissions key form, reply overrides, router "*". */
static const char CFG_SEED[] = TEST_MODELS
    "agents:\n"
    "  code: {rooms: [lobby]}\n"
    "  research: {rooms: [lobby]}\n"
    "teams:\n"
    "  devteam: {agents: [code, research]}\n"
    "authorization:\n"
    "  global_users: [\"@admin:example.com\", \"@developer:example.com\"]\n"
    "  room_permissions:\n"
    "    \"!abc123:example.com\": [\"@user1:example.com\", \"@user2:example.com\"]\n"
    "    \"#lobby:example.com\": [\"@user3:example.com\"]\n"
    "    ops: [\"@user4:example.com\"]\n"
    "  default_room_access: false\n"
    "  agent_reply_permissions:\n"
    "    \"*\": [\"@admin:example.com\"]\n"
    "    code: [\"@admin:example.com\"]\n"
    "    research: [\"@developer:example.com\"]\n"
    "    router: [\"*\"]\n"
    "mindroom_user: {username: mindroom_user, display_name: MindRoomUser}\n";

/* Namespaced keys, and default_room_access true behind listed rooms. */
static const char CFG_NS[] = TEST_MODELS
    "agents:\n"
    "  code: {rooms: [ops]}\n"
    "authorization:\n"
    "  room_permissions:\n"
    "    ops: [\"@user4:example.com\"]\n"
    "    \"#lobby_" NS ":example.com\": [\"@user3:example.com\"]\n"
    "  default_room_access: true\n";

/* The seed's bridge-alias example. */
static const char CFG_ALIASES[] =
    "authorization:\n"
    "  global_users: [\"@alice:example.com\"]\n"
    "  room_permissions:\n"
    "    \"!room1:example.com\": [\"@bob:example.com\"]\n"
    "  aliases:\n"
    "    \"@alice:example.com\": [\"@telegram_123:example.com\", \"@signal_456:example.com\"]\n"
    "    \"@bob:example.com\": [\"@telegram_789:example.com\"]\n";

static const char CFG_OWNER_USER[] =
    "mindroom_user: {username: owner_bot}\n"
    "authorization:\n"
    "  default_room_access: false\n";

static const char CFG_PLACEHOLDER[] =
    "authorization:\n"
    "  global_users: [\"" MR_CONFIG_OWNER_PLACEHOLDER "\"]\n"
    "  room_permissions:\n"
    "    \"!r:example.com\": [\"" MR_CONFIG_OWNER_PLACEHOLDER "\"]\n"
    "  agent_reply_permissions:\n"
    "    router: [\"" MR_CONFIG_OWNER_PLACEHOLDER "\"]\n"
    "  default_room_access: true\n";

/* No authorization block at all: the documented defaults. */
static const char CFG_EMPTY[] = TEST_MODELS
    "agents:\n"
    "  code: {}\n";

/* The seed's reply-permission example, plus bot_accounts and a second team. */
static const char CFG_REPLY[] = TEST_MODELS
    "agents:\n"
    "  code: {}\n"
    "  research: {}\n"
    "  general: {}\n"
    "teams:\n"
    "  devteam: {agents: [code, research]}\n"
    "  helpdesk: {agents: [general]}\n"
    "authorization:\n"
    "  global_users: [\"@alice:example.com\", \"@bob:example.com\"]\n"
    "  aliases:\n"
    "    \"@alice:example.com\": [\"@telegram_111:example.com\"]\n"
    "  agent_reply_permissions:\n"
    "    \"*\": [\"@alice:example.com\"]\n"
    "    code: [\"@alice:example.com\"]\n"
    "    research: [\"@bob:example.com\"]\n"
    "    router: [\"*\"]\n"
    "bot_accounts: [\"@telegram_bot:example.com\"]\n";

static const char CFG_GLOBS[] = TEST_MODELS
    "agents:\n"
    "  code: {}\n"
    "  research: {}\n"
    "  general: {}\n"
    "  writer: {}\n"
    "authorization:\n"
    "  agent_reply_permissions:\n"
    "    code: [\"*:example.com\"]\n"
    "    research: [\"@admin:*\"]\n"
    "    general: [\"@user?:example.com\", \"@[abc]*:example.com\"]\n"
    "    writer: [\"@[!x-z]*:corp.org\", \"@team[0-9][0-9]:example.com\"]\n";

static const char CFG_JOINED[] = TEST_MODELS
    "agents:\n"
    "  code: {}\n"
    "authorization:\n"
    "  aliases:\n"
    "    \"@carol:example.com\": [\"@telegram_5:example.com\"]\n"
    "  agent_reply_permissions:\n"
    "    code: {users: [\"@admin:example.com\"], joined_rooms: [lobby, dev]}\n";

/* A team with its own "*" entry still needs each member to agree. */
static const char CFG_TEAM[] = TEST_DEVTEAM
    "authorization:\n"
    "  agent_reply_permissions:\n"
    "    devteam: [\"*\"]\n"
    "    code: [\"@a:example.com\"]\n"
    "    research: [\"@a:example.com\", \"@b:example.com\"]\n";

typedef struct room_case {
    const char *cfg;
    const char *ns;
    const char *sender;
    const char *room_id;
    const char *alias;
    const char *room_key;
    bool allowed;
    mr_authz_step step;
    const char *says; /* mr_authz_describe, exactly */
} room_case;

#define S1 MR_AUTHZ_STEP_INTERNAL_USER
#define S2 MR_AUTHZ_STEP_MANAGED_ENTITY
#define S4 MR_AUTHZ_STEP_GLOBAL_USERS
#define S5 MR_AUTHZ_STEP_ROOM_PERMISSIONS
#define S6 MR_AUTHZ_STEP_DEFAULT_ACCESS

static const room_case room_cases[] = {
    /* 1: the internal user, on this server only */
    {CFG_SEED, NULL, "@mindroom_user:example.com", "!zzz:example.com", NULL, NULL, true, S1,
     "allowed: @mindroom_user:example.com is the internal MindRoom user"},
    {CFG_SEED, NULL, "@mindroom_user:other.org", "!zzz:example.com", NULL, NULL, false, S6,
     "denied: room_permissions has no entry for !zzz:example.com, @mindroom_user:other.org is not "
     "in global_users, and default_room_access is false"},
    {CFG_SEED, NULL, "@mindroom_user:other.org", "!abc123:example.com", NULL, NULL, false, S5,
     "denied: room_permissions lists !abc123:example.com and @mindroom_user:other.org is not in it"},
    {CFG_OWNER_USER, NULL, "@owner_bot:example.com", "!zzz:example.com", NULL, NULL, true, S1,
     "allowed: @owner_bot:example.com is the internal MindRoom user"},
    {CFG_OWNER_USER, NULL, "@mindroom_user:example.com", "!zzz:example.com", NULL, NULL, false, S6,
     "denied: room_permissions has no entry for !zzz:example.com, @mindroom_user:example.com is "
     "not in global_users, and default_room_access is false"},
    {CFG_OWNER_USER, NS, "@owner_bot:example.com", "!zzz:example.com", NULL, NULL, true, S1,
     "allowed: @owner_bot:example.com is the internal MindRoom user"},
    /* 2: agents, teams, router, with the namespace rule */
    {CFG_SEED, NULL, "@mindroom_code:example.com", "!abc123:example.com", NULL, NULL, true, S2,
     "allowed: @mindroom_code:example.com is agent code"},
    {CFG_SEED, NULL, "@mindroom_devteam:example.com", "!abc123:example.com", NULL, NULL, true, S2,
     "allowed: @mindroom_devteam:example.com is team devteam"},
    {CFG_SEED, NULL, "@mindroom_router:example.com", "!abc123:example.com", NULL, NULL, true, S2,
     "allowed: @mindroom_router:example.com is the router"},
    {CFG_SEED, NULL, "@mindroom_code:other.org", "!abc123:example.com", NULL, NULL, false, S5,
     "denied: room_permissions lists !abc123:example.com and @mindroom_code:other.org is not in it"},
    {CFG_SEED, NULL, "@mindroom_ghost:example.com", "!zzz:example.com", NULL, NULL, false, S6,
     "denied: room_permissions has no entry for !zzz:example.com, @mindroom_ghost:example.com is "
     "not in global_users, and default_room_access is false"},
    {CFG_NS, NS, "@mindroom_code_" NS ":example.com", "#ops_" NS ":example.com", NULL, NULL, true, S2,
     "allowed: @mindroom_code_" NS ":example.com is agent code"},
    {CFG_NS, NS, "@mindroom_router_" NS ":example.com", NULL, NULL, "ops", true, S2,
     "allowed: @mindroom_router_" NS ":example.com is the router"},
    {CFG_NS, NS, "@mindroom_code:example.com", NULL, "#ops_" NS ":example.com", NULL, false, S5,
     "denied: room_permissions lists ops and @mindroom_code:example.com is not in it"},
    {CFG_NS, NS, "@mindroom_user:example.com", NULL, "#ops_" NS ":example.com", NULL, true, S1,
     "allowed: @mindroom_user:example.com is the internal MindRoom user"},
    /* 4: global users go anywhere, listed rooms included */
    {CFG_SEED, NULL, "@admin:example.com", "!zzz:example.com", NULL, NULL, true, S4,
     "allowed: @admin:example.com is in global_users"},
    {CFG_SEED, NULL, "@developer:example.com", "!abc123:example.com", NULL, NULL, true, S4,
     "allowed: @developer:example.com is in global_users"},
    {CFG_SEED, NULL, "@Admin:example.com", "!zzz:example.com", NULL, NULL, false, S6,
     "denied: room_permissions has no entry for !zzz:example.com, @Admin:example.com is not in "
     "global_users, and default_room_access is false"},
    /* 5: room ID, full alias, managed key */
    {CFG_SEED, NULL, "@user1:example.com", "!abc123:example.com", NULL, NULL, true, S5,
     "allowed: room_permissions lists !abc123:example.com and @user1:example.com is in it"},
    {CFG_SEED, NULL, "@user3:example.com", "!abc123:example.com", NULL, NULL, false, S5,
     "denied: room_permissions lists !abc123:example.com and @user3:example.com is not in it"},
    {CFG_SEED, NULL, "@user3:example.com", NULL, "#lobby:example.com", NULL, true, S5,
     "allowed: room_permissions lists #lobby:example.com and @user3:example.com is in it"},
    {CFG_SEED, NULL, "@user3:example.com", "!other:example.com", "#lobby:example.com", NULL, true, S5,
     "allowed: room_permissions lists #lobby:example.com and @user3:example.com is in it"},
    /* the room ID is tried first and decides: no fall-through to the alias's list */
    {CFG_SEED, NULL, "@user3:example.com", "!abc123:example.com", "#lobby:example.com", NULL, false, S5,
     "denied: room_permissions lists !abc123:example.com and @user3:example.com is not in it"},
    {CFG_SEED, NULL, "@user1:example.com", "!abc123:example.com", "#lobby:example.com", NULL, true, S5,
     "allowed: room_permissions lists !abc123:example.com and @user1:example.com is in it"},
    {CFG_SEED, NULL, "@user4:example.com", NULL, NULL, "ops", true, S5,
     "allowed: room_permissions lists ops and @user4:example.com is in it"},
    {CFG_SEED, NULL, "@user4:example.com", "!opsroom:example.com", NULL, "ops", true, S5,
     "allowed: room_permissions lists ops and @user4:example.com is in it"},
    {CFG_SEED, NULL, "@user4:example.com", NULL, "#ops:example.com", NULL, true, S5,
     "allowed: room_permissions lists ops and @user4:example.com is in it"},
    {CFG_SEED, NULL, "@user1:example.com", NULL, NULL, "ops", false, S5,
     "denied: room_permissions lists ops and @user1:example.com is not in it"},
    /* a bare key also finds the full alias the instance gives that room */
    {CFG_SEED, NULL, "@user3:example.com", NULL, NULL, "lobby", true, S5,
     "allowed: room_permissions lists #lobby:example.com and @user3:example.com is in it"},
    /* namespaced managed keys */
    {CFG_NS, NS, "@user4:example.com", NULL, "#ops_" NS ":example.com", NULL, true, S5,
     "allowed: room_permissions lists ops and @user4:example.com is in it"},
    {CFG_NS, NS, "@user1:example.com", NULL, "#ops_" NS ":example.com", NULL, false, S5,
     "denied: room_permissions lists ops and @user1:example.com is not in it"},
    {CFG_NS, NS, "@user4:example.com", NULL, "#ops:example.com", NULL, true, S5,
     "allowed: room_permissions lists ops and @user4:example.com is in it"},
    {CFG_NS, NS, "@user3:example.com", NULL, NULL, "lobby", true, S5,
     "allowed: room_permissions lists #lobby_" NS ":example.com and @user3:example.com is in it"},
    {CFG_NS, NS, "@user4:example.com", NULL, "#ops_zzzz9999:example.com", NULL, true, S6,
     "allowed: room_permissions has no entry for #ops_zzzz9999:example.com, @user4:example.com "
     "is not in global_users, and default_room_access is true"},
    {CFG_NS, NULL, "@user4:example.com", NULL, "#ops_" NS ":example.com", NULL, true, S6,
     "allowed: room_permissions has no entry for #ops_" NS ":example.com, @user4:example.com "
     "is not in global_users, and default_room_access is true"},
    /* 6: default_room_access both ways */
    {CFG_NS, NS, "@anyone:other.org", "!free:example.com", NULL, NULL, true, S6,
     "allowed: room_permissions has no entry for !free:example.com, @anyone:other.org is not in "
     "global_users, and default_room_access is true"},
    {CFG_SEED, NULL, "@anyone:other.org", NULL, NULL, NULL, false, S6,
     "denied: room_permissions has no entry for this room, @anyone:other.org is not in "
     "global_users, and default_room_access is false"},
    {CFG_EMPTY, NULL, "@alice:example.com", "!r:example.com", NULL, NULL, false, S6,
     "denied: room_permissions has no entry for !r:example.com, @alice:example.com is not in "
     "global_users, and default_room_access is false"},
    {CFG_EMPTY, NULL, "@mindroom_code:example.com", "!r:example.com", NULL, NULL, true, S2,
     "allowed: @mindroom_code:example.com is agent code"},
    /* 3: aliases inherit the canonical user's access */
    {CFG_ALIASES, NULL, "@telegram_123:example.com", "!any:example.com", NULL, NULL, true, S4,
     "allowed: @telegram_123:example.com (alias of @alice:example.com) is in global_users"},
    {CFG_ALIASES, NULL, "@signal_456:example.com", "!room1:example.com", NULL, NULL, true, S4,
     "allowed: @signal_456:example.com (alias of @alice:example.com) is in global_users"},
    {CFG_ALIASES, NULL, "@telegram_789:example.com", "!room1:example.com", NULL, NULL, true, S5,
     "allowed: room_permissions lists !room1:example.com and @telegram_789:example.com (alias of "
     "@bob:example.com) is in it"},
    {CFG_ALIASES, NULL, "@telegram_789:example.com", "!room2:example.com", NULL, NULL, false, S6,
     "denied: room_permissions has no entry for !room2:example.com, @telegram_789:example.com "
     "(alias of @bob:example.com) is not in global_users, and default_room_access is false"},
    {CFG_ALIASES, NULL, "@bob:example.com", "!room1:example.com", NULL, NULL, true, S5,
     "allowed: room_permissions lists !room1:example.com and @bob:example.com is in it"},
    {CFG_ALIASES, NULL, "@telegram_999:example.com", "!room1:example.com", NULL, NULL, false, S5,
     "denied: room_permissions lists !room1:example.com and @telegram_999:example.com is not in it"},
    /* the owner placeholder matches nobody, not even itself */
    {CFG_PLACEHOLDER, NULL, MR_CONFIG_OWNER_PLACEHOLDER, "!r:example.com", NULL, NULL, false, S5,
     "denied: room_permissions lists !r:example.com and " MR_CONFIG_OWNER_PLACEHOLDER " is not in it"},
    {CFG_PLACEHOLDER, NULL, "@someone:example.com", "!r:example.com", NULL, NULL, false, S5,
     "denied: room_permissions lists !r:example.com and @someone:example.com is not in it"},
};

static void test_room_cases(void **state)
{
    (void)state;
    size_t failures = 0;
    for (size_t i = 0; i < sizeof room_cases / sizeof room_cases[0]; i++) {
        const room_case *c = &room_cases[i];
        mr_authz *az = test_authz_build(c->cfg, c->ns);
        mr_authz_room room = {c->room_id, c->alias, c->room_key};
        mr_authz_decision d;
        bool got = mr_authz_check_room(az, c->sender, &room, &d);
        char says[512];
        mr_authz_describe(&d, says, sizeof says);
        if (got != c->allowed || d.allowed != c->allowed || d.step != c->step || strcmp(says, c->says) != 0) {
            print_error("room case %zu: sender %s\n  want %d step %d: %s\n  got  %d step %d: %s\n", i,
                        c->sender, c->allowed, c->step, c->says, got, d.step, says);
            failures++;
        }
        mr_authz_free(az);
    }
    assert_int_equal(failures, 0);
}

typedef struct member_pair {
    const char *room;
    const char *user;
} member_pair;

/* The membership a gateway would know: dave in dev, carol in lobby. */
static const member_pair members[] = {
    {"dev", "@dave:example.com"},
    {"lobby", "@carol:example.com"},
};

static bool is_member(void *ctx, const char *room, const char *user)
{
    size_t *calls = ctx;
    (*calls)++;
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        if (strcmp(members[i].room, room) == 0 && strcmp(members[i].user, user) == 0)
            return true;
    return false;
}

typedef struct reply_case {
    const char *cfg;
    const char *entity;
    const char *sender;
    const char *original_sender;
    bool with_members;
    bool allowed;
    mr_authz_step step;
    const char *says;
} reply_case;

#define RI MR_AUTHZ_STEP_REPLY_INTERNAL
#define RU MR_AUTHZ_STEP_REPLY_UNKNOWN_ENTITY
#define RN MR_AUTHZ_STEP_REPLY_NO_POLICY
#define RA MR_AUTHZ_STEP_REPLY_ANYONE
#define RL MR_AUTHZ_STEP_REPLY_LISTED
#define RJ MR_AUTHZ_STEP_REPLY_JOINED_ROOM
#define RX MR_AUTHZ_STEP_REPLY_NOT_LISTED

static const reply_case reply_cases[] = {
    /* entity entry, "*" default, override, router "*" */
    {CFG_REPLY, "code", "@alice:example.com", NULL, false, true, RL,
     "allowed: agent_reply_permissions[\"code\"] lists @alice:example.com"},
    {CFG_REPLY, "code", "@bob:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @bob:example.com"},
    {CFG_REPLY, "research", "@bob:example.com", NULL, false, true, RL,
     "allowed: agent_reply_permissions[\"research\"] lists @bob:example.com"},
    {CFG_REPLY, "research", "@alice:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"research\"] does not list @alice:example.com"},
    {CFG_REPLY, "general", "@alice:example.com", NULL, false, true, RL,
     "allowed: agent_reply_permissions[\"*\"] (the default for general) lists @alice:example.com"},
    {CFG_REPLY, "general", "@bob:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"*\"] (the default for general) does not list @bob:example.com"},
    {CFG_REPLY, "router", "@stranger:other.org", NULL, false, true, RA,
     "allowed: agent_reply_permissions[\"router\"] allows anyone"},
    {CFG_SEED, "router", "@user1:example.com", NULL, false, true, RA,
     "allowed: agent_reply_permissions[\"router\"] allows anyone"},
    {CFG_SEED, "code", "@developer:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @developer:example.com"},
    /* aliases resolve before matching */
    {CFG_REPLY, "code", "@telegram_111:example.com", NULL, false, true, RL,
     "allowed: agent_reply_permissions[\"code\"] lists @telegram_111:example.com (alias of @alice:example.com)"},
    {CFG_REPLY, "research", "@telegram_111:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"research\"] does not list @telegram_111:example.com (alias "
     "of @alice:example.com)"},
    /* bot_accounts are not exempt; internal identities are */
    {CFG_REPLY, "code", "@telegram_bot:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @telegram_bot:example.com"},
    {CFG_REPLY, "code", "@mindroom_research:example.com", NULL, false, true, RI,
     "allowed: @mindroom_research:example.com is an internal MindRoom identity (agent research), "
     "exempt from reply permissions"},
    {CFG_REPLY, "research", "@mindroom_user:example.com", NULL, false, true, RI,
     "allowed: @mindroom_user:example.com is an internal MindRoom identity (internal user "
     "mindroom_user), exempt from reply permissions"},
    {CFG_REPLY, "research", "@mindroom_devteam:example.com", NULL, false, true, RI,
     "allowed: @mindroom_devteam:example.com is an internal MindRoom identity (team devteam), "
     "exempt from reply permissions"},
    {CFG_REPLY, "code", "@mindroom_user:other.org", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @mindroom_user:other.org"},
    /* teams need their own policy and every member's */
    {CFG_REPLY, "devteam", "@alice:example.com", NULL, false, false, RX,
     "denied: team devteam needs every member agent to allow the sender, and "
     "agent_reply_permissions[\"research\"] does not list @alice:example.com"},
    {CFG_REPLY, "devteam", "@bob:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"*\"] (the default for devteam) does not list @bob:example.com"},
    {CFG_REPLY, "helpdesk", "@alice:example.com", NULL, false, true, RL,
     "allowed: agent_reply_permissions[\"*\"] (the default for helpdesk) lists @alice:example.com; "
     "every member agent of team helpdesk allows it too (1 checked)"},
    {CFG_TEAM, "devteam", "@a:example.com", NULL, false, true, RA,
     "allowed: agent_reply_permissions[\"devteam\"] allows anyone; every member agent of team "
     "devteam allows it too (2 checked)"},
    {CFG_TEAM, "devteam", "@b:example.com", NULL, false, false, RX,
     "denied: team devteam needs every member agent to allow the sender, and "
     "agent_reply_permissions[\"code\"] does not list @b:example.com"},
    {CFG_TEAM, "research", "@b:example.com", NULL, false, true, RL,
     "allowed: agent_reply_permissions[\"research\"] lists @b:example.com"},
    {CFG_TEAM, "router", "@b:example.com", NULL, false, true, RN,
     "allowed: agent_reply_permissions has no entry for router and no \"*\" entry"},
    /* unknown entities */
    {CFG_REPLY, "nope", "@alice:example.com", NULL, false, false, RU,
     "denied: 'nope' is not an agent, team or the router in this config"},
    {CFG_REPLY, "mindroom_user", "@alice:example.com", NULL, false, false, RU,
     "denied: 'mindroom_user' is not an agent, team or the router in this config"},
    /* no reply permissions at all: no restriction */
    {CFG_EMPTY, "code", "@stranger:other.org", NULL, false, true, RN,
     "allowed: agent_reply_permissions has no entry for code and no \"*\" entry"},
    /* relays: the original sender counts, but only when an internal identity relays */
    {CFG_REPLY, "research", "@mindroom_router:example.com", "@bob:example.com", false, true, RL,
     "allowed: agent_reply_permissions[\"research\"] lists @bob:example.com (relayed by "
     "@mindroom_router:example.com)"},
    {CFG_REPLY, "code", "@mindroom_router:example.com", "@bob:example.com", false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @bob:example.com (relayed by "
     "@mindroom_router:example.com)"},
    {CFG_REPLY, "code", "@mindroom_user:example.com", "@telegram_111:example.com", false, true, RL,
     "allowed: agent_reply_permissions[\"code\"] lists @telegram_111:example.com (alias of "
     "@alice:example.com) (relayed by @mindroom_user:example.com)"},
    {CFG_REPLY, "code", "@eve:example.com", "@alice:example.com", false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @eve:example.com"},
    {CFG_REPLY, "code", "@mindroom_user:other.org", "@alice:example.com", false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @mindroom_user:other.org"},
    {CFG_REPLY, "code", "@telegram_bot:example.com", "@alice:example.com", false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @telegram_bot:example.com"},
    {CFG_REPLY, "code", "@mindroom_router:example.com", "", false, true, RI,
     "allowed: @mindroom_router:example.com is an internal MindRoom identity (the router), "
     "exempt from reply permissions"},
    /* globs: case-sensitive, on the whole ID */
    {CFG_GLOBS, "code", "@anyone:example.com", NULL, false, true, RL,
     "allowed: @anyone:example.com matches \"*:example.com\" in agent_reply_permissions[\"code\"]"},
    {CFG_GLOBS, "code", "@x:example.org", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @x:example.org"},
    {CFG_GLOBS, "code", "@x:sub.example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @x:sub.example.com"},
    {CFG_GLOBS, "code", "@x:EXAMPLE.COM", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @x:EXAMPLE.COM"},
    {CFG_GLOBS, "research", "@admin:anything.org", NULL, false, true, RL,
     "allowed: @admin:anything.org matches \"@admin:*\" in agent_reply_permissions[\"research\"]"},
    {CFG_GLOBS, "research", "@Admin:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"research\"] does not list @Admin:example.com"},
    {CFG_GLOBS, "research", "@administrator:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"research\"] does not list @administrator:example.com"},
    {CFG_GLOBS, "general", "@user1:example.com", NULL, false, true, RL,
     "allowed: @user1:example.com matches \"@user?:example.com\" in agent_reply_permissions[\"general\"]"},
    {CFG_GLOBS, "general", "@user12:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"general\"] does not list @user12:example.com"},
    {CFG_GLOBS, "general", "@user:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"general\"] does not list @user:example.com"},
    {CFG_GLOBS, "general", "@bob:example.com", NULL, false, true, RL,
     "allowed: @bob:example.com matches \"@[abc]*:example.com\" in agent_reply_permissions[\"general\"]"},
    {CFG_GLOBS, "general", "@dave:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"general\"] does not list @dave:example.com"},
    {CFG_GLOBS, "writer", "@alice:corp.org", NULL, false, true, RL,
     "allowed: @alice:corp.org matches \"@[!x-z]*:corp.org\" in agent_reply_permissions[\"writer\"]"},
    {CFG_GLOBS, "writer", "@yan:corp.org", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"writer\"] does not list @yan:corp.org"},
    {CFG_GLOBS, "writer", "@team42:example.com", NULL, false, true, RL,
     "allowed: @team42:example.com matches \"@team[0-9][0-9]:example.com\" in "
     "agent_reply_permissions[\"writer\"]"},
    {CFG_GLOBS, "writer", "@team4x:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"writer\"] does not list @team4x:example.com"},
    /* joined_rooms, through the caller's membership callback */
    {CFG_JOINED, "code", "@dave:example.com", NULL, true, true, RJ,
     "allowed: @dave:example.com is a member of dev, listed in agent_reply_permissions[\"code\"].joined_rooms"},
    {CFG_JOINED, "code", "@erin:example.com", NULL, true, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @erin:example.com"},
    {CFG_JOINED, "code", "@admin:example.com", NULL, true, true, RL,
     "allowed: agent_reply_permissions[\"code\"] lists @admin:example.com"},
    {CFG_JOINED, "code", "@telegram_5:example.com", NULL, true, true, RJ,
     "allowed: @telegram_5:example.com (alias of @carol:example.com) is a member of lobby, listed in "
     "agent_reply_permissions[\"code\"].joined_rooms"},
    {CFG_JOINED, "code", "@dave:example.com", NULL, false, false, RX,
     "denied: agent_reply_permissions[\"code\"] does not list @dave:example.com"},
    /* the placeholder never matches */
    {CFG_PLACEHOLDER, "router", MR_CONFIG_OWNER_PLACEHOLDER, NULL, false, false, RX,
     "denied: agent_reply_permissions[\"router\"] does not list " MR_CONFIG_OWNER_PLACEHOLDER},
};

static void test_reply_cases(void **state)
{
    (void)state;
    size_t failures = 0;
    for (size_t i = 0; i < sizeof reply_cases / sizeof reply_cases[0]; i++) {
        const reply_case *c = &reply_cases[i];
        mr_authz *az = test_authz_build(c->cfg, NULL);
        size_t calls = 0;
        mr_authz_reply_query q = {c->entity, c->sender, c->original_sender,
                                  c->with_members ? is_member : NULL, &calls};
        mr_authz_decision d;
        bool got = mr_authz_check_reply(az, &q, &d);
        char says[512];
        mr_authz_describe(&d, says, sizeof says);
        if (got != c->allowed || d.allowed != c->allowed || d.step != c->step || strcmp(says, c->says) != 0) {
            print_error("reply case %zu: %s -> %s\n  want %d step %d: %s\n  got  %d step %d: %s\n", i,
                        c->entity, c->sender, c->allowed, c->step, c->says, got, d.step, says);
            failures++;
        }
        mr_authz_free(az);
    }
    assert_int_equal(failures, 0);
}

/* Decisions carry the parts a caller logs, not only the sentence. */
static void test_decision_fields(void **state)
{
    (void)state;
    mr_authz *az = test_authz_build(CFG_REPLY, NULL);
    size_t calls = 0;
    mr_authz_reply_query q = {"devteam", "@mindroom_router:example.com", "@alice:example.com", NULL, &calls};
    mr_authz_decision d;
    assert_false(mr_authz_check_reply(az, &q, &d));
    assert_true(d.reply);
    assert_string_equal(d.sender, "@mindroom_router:example.com");
    assert_string_equal(d.subject, "@alice:example.com");
    assert_string_equal(d.canonical, "@alice:example.com");
    assert_string_equal(d.entity, "devteam");
    assert_int_equal(d.entity_kind, MR_AUTHZ_ENTITY_TEAM);
    assert_string_equal(d.policy_entity, "research");
    assert_string_equal(d.policy_key, "research");
    assert_null(d.matched);
    assert_int_equal(d.n_members, 2);
    assert_string_equal(mr_authz_step_name(d.step), "reply_not_listed");

    mr_authz_room room = {"!x:example.com", NULL, NULL};
    assert_true(mr_authz_check_room(az, "@telegram_111:example.com", &room, &d));
    assert_false(d.reply);
    assert_string_equal(d.canonical, "@alice:example.com");
    assert_string_equal(d.matched, "@alice:example.com");
    assert_string_equal(d.room, "!x:example.com");
    assert_string_equal(mr_authz_step_name(d.step), "global_users");
    mr_authz_free(az);
}

/* joined_rooms asks about the sender first, then its canonical user, and stops at a hit. */
static void test_membership_calls(void **state)
{
    (void)state;
    mr_authz *az = test_authz_build(CFG_JOINED, NULL);
    size_t calls = 0;
    mr_authz_reply_query q = {"code", "@erin:example.com", NULL, is_member, &calls};
    mr_authz_decision d;
    assert_false(mr_authz_check_reply(az, &q, &d));
    assert_int_equal(calls, 2); /* lobby, dev */
    calls = 0;
    q.sender = "@telegram_5:example.com";
    assert_true(mr_authz_check_reply(az, &q, &d));
    assert_int_equal(calls, 2); /* lobby as the alias, lobby as carol */
    calls = 0;
    q.sender = "@admin:example.com";
    assert_true(mr_authz_check_reply(az, &q, &d));
    assert_int_equal(calls, 0);
    mr_authz_free(az);
}

static void test_room_from_string(void **state)
{
    (void)state;
    mr_authz_room r;
    mr_authz_room_from_string("!abc:example.com", &r);
    assert_string_equal(r.room_id, "!abc:example.com");
    assert_null(r.alias);
    assert_null(r.room_key);
    mr_authz_room_from_string("#lobby:example.com", &r);
    assert_null(r.room_id);
    assert_string_equal(r.alias, "#lobby:example.com");
    assert_null(r.room_key);
    mr_authz_room_from_string("ops", &r);
    assert_null(r.room_id);
    assert_null(r.alias);
    assert_string_equal(r.room_key, "ops");

    /* `authz explain` with each form of the same namespaced room */
    mr_authz *az = test_authz_build(CFG_NS, NS);
    const char *forms[] = {"ops", "#ops_" NS ":example.com"};
    for (size_t i = 0; i < 2; i++) {
        mr_authz_decision d;
        mr_authz_room_from_string(forms[i], &r);
        assert_true(mr_authz_check_room(az, "@user4:example.com", &r, &d));
        assert_int_equal(d.step, MR_AUTHZ_STEP_ROOM_PERMISSIONS);
        assert_string_equal(d.matched, "ops");
        assert_false(mr_authz_check_room(az, "@user3:example.com", &r, &d));
    }
    mr_authz_free(az);
}

static void test_is_internal(void **state)
{
    (void)state;
    mr_authz *az = test_authz_build(CFG_SEED, NS);
    assert_true(mr_authz_is_internal(az, "@mindroom_user:example.com"));
    assert_true(mr_authz_is_internal(az, "@mindroom_code_" NS ":example.com"));
    assert_true(mr_authz_is_internal(az, "@mindroom_devteam_" NS ":example.com"));
    assert_true(mr_authz_is_internal(az, "@mindroom_router_" NS ":example.com"));
    assert_false(mr_authz_is_internal(az, "@mindroom_code:example.com"));
    assert_false(mr_authz_is_internal(az, "@mindroom_user_" NS ":example.com"));
    assert_false(mr_authz_is_internal(az, "@mindroom_router_" NS ":other.org"));
    assert_false(mr_authz_is_internal(az, "@admin:example.com"));
    mr_authz_free(az);
}

/* A short buffer keeps a terminated prefix and the return value says how long the whole is. */
static void test_describe_truncates(void **state)
{
    (void)state;
    mr_authz *az = test_authz_build(CFG_SEED, NULL);
    mr_authz_decision d;
    mr_authz_check_room(az, "@admin:example.com", NULL, &d);
    const char *full = "allowed: @admin:example.com is in global_users";
    char buf[12];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(mr_authz_describe(&d, buf, sizeof buf), (int)strlen(full));
    assert_string_equal(buf, "allowed: @a");
    assert_int_equal(mr_authz_describe(&d, NULL, 0), (int)strlen(full));
    char big[128];
    assert_int_equal(mr_authz_describe(&d, big, sizeof big), (int)strlen(full));
    assert_string_equal(big, full);
    mr_authz_free(az);
}

static void test_new_rejects_bad_identity(void **state)
{
    (void)state;
    mr_config *cfg = NULL;
    mr_err err = {0};
    assert_int_equal(mr_config_parse(CFG_SEED, strlen(CFG_SEED), "test.yaml", &cfg, NULL, &err), MR_OK);
    mr_authz *az = (mr_authz *)1;
    assert_int_equal(mr_authz_new(cfg, "example.com", "AB!", &az, &err), MR_EINVAL);
    assert_null(az);
    assert_non_null(strstr(err.msg, "authorization: namespace: "));
    assert_non_null(strstr(err.msg, "AB!"));
    assert_int_equal(mr_authz_new(cfg, "bad host", NULL, &az, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "authorization: server name: "));
    assert_non_null(strstr(err.msg, "bad host"));
    assert_int_equal(mr_authz_new(cfg, "", NULL, &az, &err), MR_EINVAL);
    /* An upper-case namespace is normalised like MINDROOM_NAMESPACE. */
    assert_int_equal(mr_authz_new(cfg, "example.com", "AB3K9XYZ", &az, &err), MR_OK);
    assert_true(mr_authz_is_internal(az, "@mindroom_code_ab3k9xyz:example.com"));
    mr_authz_free(az);
    mr_config_release(cfg);
}

/* The engine keeps its own config reference: releasing the caller's is safe. */
static void test_config_reference(void **state)
{
    (void)state;
    mr_config *cfg = NULL;
    mr_err err = {0};
    assert_int_equal(mr_config_parse(CFG_ALIASES, strlen(CFG_ALIASES), "test.yaml", &cfg, NULL, &err), MR_OK);
    mr_authz *az = NULL;
    assert_int_equal(mr_authz_new(cfg, "example.com", NULL, &az, &err), MR_OK);
    mr_config_release(cfg);
    mr_authz_decision d;
    mr_authz_room room = {"!room1:example.com", NULL, NULL};
    assert_true(mr_authz_check_room(az, "@telegram_789:example.com", &room, &d));
    assert_string_equal(d.canonical, "@bob:example.com");
    mr_authz_free(az);
}

/* Readers share one engine: every thread must see the single-threaded answers. */
#define N_READERS 4
static const char *const conc_senders[] = {
    "@admin:example.com", "@user1:example.com", "@user3:example.com", "@user4:example.com",
    "@mindroom_code:example.com", "@mindroom_user:other.org", "@nobody:example.com",
};
static const mr_authz_room conc_rooms[] = {
    {"!abc123:example.com", NULL, NULL}, {NULL, "#lobby:example.com", NULL}, {NULL, NULL, "ops"},
    {"!zzz:example.com", NULL, NULL},
};
#define N_CONC (sizeof conc_senders / sizeof conc_senders[0] * (sizeof conc_rooms / sizeof conc_rooms[0]))

typedef struct reader {
    const mr_authz *az;
    const int *want;
    size_t mismatches;
} reader;

/* Room access in bit 0, research's reply permission in bit 1. */
static int conc_ask(const mr_authz *az, size_t i)
{
    mr_authz_decision d;
    const char *sender = conc_senders[i % (sizeof conc_senders / sizeof conc_senders[0])];
    const mr_authz_room *room = &conc_rooms[i / (sizeof conc_senders / sizeof conc_senders[0])];
    mr_authz_reply_query q = {"research", sender, NULL, NULL, NULL};
    return mr_authz_check_room(az, sender, room, &d) + 2 * mr_authz_check_reply(az, &q, &d);
}

static void *read_many(void *arg)
{
    reader *r = arg;
    for (size_t round = 0; round < 2000; round++)
        for (size_t i = 0; i < N_CONC; i++)
            r->mismatches += conc_ask(r->az, i) != r->want[i];
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    mr_authz *az = test_authz_build(CFG_SEED, NULL);
    int want[N_CONC];
    int sum = 0;
    for (size_t i = 0; i < N_CONC; i++)
        sum += want[i] = conc_ask(az, i);
    /* 11 room grants; research replies only to the agent, which is asked in 4 rooms. */
    assert_int_equal(sum, 11 + 2 * 4);
    pthread_t t[N_READERS];
    reader r[N_READERS];
    for (size_t i = 0; i < N_READERS; i++) {
        r[i] = (reader){az, want, 0};
        assert_int_equal(pthread_create(&t[i], NULL, read_many, &r[i]), 0);
    }
    for (size_t i = 0; i < N_READERS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(r[i].mismatches, 0);
    }
    mr_authz_free(az);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room_cases),
        cmocka_unit_test(test_reply_cases),
        cmocka_unit_test(test_decision_fields),
        cmocka_unit_test(test_membership_calls),
        cmocka_unit_test(test_room_from_string),
        cmocka_unit_test(test_is_internal),
        cmocka_unit_test(test_describe_truncates),
        cmocka_unit_test(test_new_rejects_bad_identity),
        cmocka_unit_test(test_config_reference),
        cmocka_unit_test(test_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
