/* test_config.c -- config.yaml loading: typed values from valid files, the exact diagnostics
 * for broken ones, defaults, size limits, reference counting and where the file is found. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mindroom/config.h"

#define PLACEHOLDER MR_CONFIG_OWNER_PLACEHOLDER
#define MAX_EXPECTED 4

static void data_path(char *out, size_t cap, const char *name)
{
    const char *dir = getenv("MR_TEST_DATA");
    assert_non_null(dir);
    snprintf(out, cap, "%s/config/%s", dir, name);
}

/* Loads tests/data/config/<name>, which must be valid. */
static mr_config *load_ok(const char *name, mr_config_diags *diags)
{
    char path[1024];
    data_path(path, sizeof path, name);
    mr_config *cfg = NULL;
    mr_err err = {0};
    mr_code rc = mr_config_load(path, &cfg, diags, &err);
    if (rc != MR_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, MR_OK);
    assert_non_null(cfg);
    return cfg;
}

static mr_config *parse_ok(const char *yaml)
{
    mr_config *cfg = NULL;
    mr_err err = {0};
    mr_code rc = mr_config_parse(yaml, strlen(yaml), "config.yaml", &cfg, NULL, &err);
    if (rc != MR_OK)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, MR_OK);
    return cfg;
}

static void assert_list(const mr_strlist *l, size_t n, const char *const *want)
{
    assert_int_equal(l->len, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(l->v[i], want[i]);
}

#define LIST_IS(l, ...)                                                                      \
    do {                                                                                     \
        static const char *const want_[] = {__VA_ARGS__};                                    \
        assert_list(&(l), sizeof want_ / sizeof want_[0], want_);                           \
    } while (0)

static void assert_diag(const mr_config_diags *d, size_t i, const char *want)
{
    char buf[1024];
    int n = mr_config_diag_format(d, i, buf, sizeof buf);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);
}

/* ---- valid files ------------------------------------------------------------------------------ */

static void test_minimal_example(void **state)
{
    (void)state;
    mr_config_diags d;
    mr_config *cfg = load_ok("minimal.yaml", &d);
    assert_int_equal(d.len, 0);
    assert_int_equal(d.n_errors, 0);
    assert_int_equal(cfg->n_models, 2);
    assert_string_equal(cfg->models[0].name, "default");
    assert_string_equal(cfg->models[0].provider, "openai");
    assert_string_equal(cfg->models[0].id, "gpt-5.6");
    assert_int_equal(cfg->models[0].context_window, 1050000);
    assert_null(cfg->models[0].host);
    assert_true(cfg->models[0].temperature < 0);
    assert_string_equal(cfg->models[1].name, "fast");
    assert_string_equal(cfg->models[1].provider, "anthropic");
    assert_int_equal(cfg->models[1].context_window, 0);

    assert_int_equal(cfg->n_agents, 2);
    const mr_agent_cfg *mind = &cfg->agents[0];
    assert_string_equal(mind->name, "mind");
    assert_string_equal(mind->display_name, "Mind");
    assert_string_equal(mind->role, "Personal assistant");
    assert_string_equal(mind->model, "default");
    LIST_IS(mind->rooms, "personal");
    LIST_IS(mind->tools, "duckduckgo", "website");
    LIST_IS(mind->instructions, "Be concise.");
    assert_int_equal(mind->skills.len, 0);
    const mr_agent_cfg *coder = &cfg->agents[1];
    assert_string_equal(coder->name, "coder");
    assert_string_equal(coder->model, "default");
    LIST_IS(coder->rooms, "personal", "dev");
    assert_int_equal(coder->thread_mode, MR_THREAD_MODE_THREAD);
    assert_true(coder->markdown);

    assert_int_equal(cfg->n_teams, 1);
    assert_string_equal(cfg->teams[0].name, "devteam");
    assert_string_equal(cfg->teams[0].display_name, "Dev Team");
    assert_string_equal(cfg->teams[0].role, "Collaborative engineering");
    LIST_IS(cfg->teams[0].agents, "mind", "coder");
    assert_int_equal(cfg->teams[0].mode, MR_TEAM_COORDINATE);
    assert_null(cfg->teams[0].model);
    LIST_IS(cfg->teams[0].rooms, "dev");

    assert_string_equal(cfg->router.model, "fast");
    assert_true(cfg->router.accept_invites);
    assert_int_equal(cfg->n_rooms, 1);
    assert_string_equal(cfg->rooms[0].key, "dev");
    assert_string_equal(cfg->rooms[0].display_name, "Development");
    assert_null(cfg->rooms[0].topic);
    assert_true(cfg->rooms[0].encrypted);
    assert_int_equal(cfg->matrix_room_access.mode, MR_ROOM_ACCESS_SINGLE_USER_PRIVATE);
    LIST_IS(cfg->matrix_room_access.room_admins, "@alice:mindroom.chat");
    assert_true(cfg->matrix_space.enabled);
    assert_string_equal(cfg->matrix_space.name, "MindRoom");
    LIST_IS(cfg->authorization.global_users, "@alice:mindroom.chat");
    assert_false(cfg->authorization.default_room_access);
    assert_int_equal(cfg->authorization.n_reply_permissions, 1);
    assert_string_equal(cfg->authorization.reply_permissions[0].entity, "*");
    LIST_IS(cfg->authorization.reply_permissions[0].users, "@alice:mindroom.chat");
    assert_string_equal(cfg->memory.backend, "file");
    assert_true(cfg->defaults.markdown);
    assert_true(cfg->defaults.enable_streaming);
    assert_false(cfg->mindroom_user.configured);
    assert_int_equal(cfg->refcount, 1);
    assert_non_null(strstr(cfg->path, "config/minimal.yaml"));
    mr_config_release(cfg);
    mr_config_diags_free(&d);
}

static void test_seed_authorization(void **state)
{
    (void)state;
    mr_config_diags d;
    mr_config *cfg = load_ok("authorization.yaml", &d);
    assert_int_equal(d.len, 0);
    const mr_authz_cfg *z = &cfg->authorization;
    LIST_IS(z->global_users, "@admin:example.com", "@developer:example.com");
    assert_int_equal(z->n_room_permissions, 3);
    assert_string_equal(z->room_permissions[0].room, "!abc123:example.com");
    LIST_IS(z->room_permissions[0].users, "@user1:example.com", "@user2:example.com");
    assert_string_equal(z->room_permissions[1].room, "#lobby:example.com");
    LIST_IS(z->room_permissions[1].users, "@user3:example.com");
    assert_string_equal(z->room_permissions[2].room, "ops");
    LIST_IS(z->room_permissions[2].users, "@user4:example.com");
    assert_false(z->default_room_access);
    assert_int_equal(z->n_reply_permissions, 4);
    static const char *const entities[] = {"*", "code", "research", "router"};
    static const char *const users[] = {"@admin:example.com", "@admin:example.com", "@developer:example.com", "*"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(z->reply_permissions[i].entity, entities[i]);
        assert_int_equal(z->reply_permissions[i].users.len, 1);
        assert_string_equal(z->reply_permissions[i].users.v[0], users[i]);
        assert_int_equal(z->reply_permissions[i].joined_rooms.len, 0);
    }
    assert_true(cfg->mindroom_user.configured);
    assert_string_equal(cfg->mindroom_user.username, "mindroom_user");
    assert_string_equal(cfg->mindroom_user.display_name, "MindRoomUser");
    const mr_room_access_cfg *a = &cfg->matrix_room_access;
    assert_int_equal(a->mode, MR_ROOM_ACCESS_SINGLE_USER_PRIVATE);
    assert_int_equal(a->multi_user_join_rule, MR_JOIN_RULE_PUBLIC);
    assert_false(a->publish_to_room_directory);
    assert_int_equal(a->invite_only_rooms.len, 0);
    assert_false(a->reconcile_existing_rooms);
    LIST_IS(cfg->bot_accounts, "@telegram_bot:example.com", "@slack_bot:example.com");
    mr_config_release(cfg);
    mr_config_diags_free(&d);
}

static void test_seed_aliases_and_reply_forms(void **state)
{
    (void)state;
    mr_config *cfg = load_ok("aliases.yaml", NULL);
    const mr_authz_cfg *z = &cfg->authorization;
    assert_int_equal(z->n_aliases, 2);
    assert_string_equal(z->aliases[0].canonical, "@alice:example.com");
    LIST_IS(z->aliases[0].aliases, "@telegram_123:example.com", "@signal_456:example.com");
    assert_string_equal(z->aliases[1].canonical, "@bob:example.com");
    LIST_IS(z->aliases[1].aliases, "@telegram_789:example.com");
    assert_int_equal(z->n_reply_permissions, 4);
    const mr_reply_policy *research = &z->reply_permissions[2];
    assert_string_equal(research->entity, "research");
    LIST_IS(research->users, "@bob:example.com", "*:example.com", "@admin:*", "@bot_[0-9]?:example.com");
    LIST_IS(research->joined_rooms, "ops", "#lobby:example.com");
    assert_string_equal(cfg->agents[0].display_name, "code");
    mr_config_release(cfg);
}

/* Each key this build accepts and does not act on is a warning naming it when it is on, and
 * nothing when it is off; the config still loads. */
static void test_unbuilt_keys_warn(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        const char *want; /* NULL: no warning */
    } cases[] = {
        {"agents:\n  mind: {skills: [mindroom-docs]}\n",
         "config.yaml:4:18: warning: agents.mind.skills: not implemented in this build: ignored (the agent gets no "
         "skill's instructions)"},
        {"agents:\n  mind: {skills: []}\n", NULL},
        {"agents:\n  mind: {knowledge_bases: [docs]}\n",
         "config.yaml:4:27: warning: agents.mind.knowledge_bases: not implemented in this build: ignored (no "
         "knowledge base is searched or put in the prompt)"},
        {"agents:\n  mind: {learning: true}\n",
         "config.yaml:4:20: warning: agents.mind.learning: not implemented in this build: ignored (the agent does "
         "not learn from its conversations)"},
        {"agents:\n  mind: {learning: false}\n", NULL},
        {"agents:\n  mind: {memory_backend: mem0}\n",
         "config.yaml:4:26: warning: agents.mind.memory_backend: not implemented in this build: ignored (mem0 keeps "
         "no memory here; file keeps MEMORY.md and puts it in the prompt)"},
        {"agents:\n  mind: {memory_backend: file}\n", NULL},
        {"memory: {backend: mem0}\n",
         "config.yaml:3:19: warning: memory.backend: not implemented in this build: ignored (mem0 keeps no memory "
         "here; file keeps MEMORY.md and puts it in the prompt)"},
        {"memory: {embedder: {provider: openai}}\n",
         "config.yaml:3:20: warning: memory.embedder: not implemented in this build: ignored (only mem0 uses an "
         "embedder)"},
        {"defaults: {show_stop_button: true}\n",
         "config.yaml:3:30: warning: defaults.show_stop_button: not implemented in this build: ignored (answers have "
         "no stop button)"},
        {"defaults: {worker_tools: [shell]}\n",
         "config.yaml:3:26: warning: defaults.worker_tools: not implemented in this build: ignored (tools run in the "
         "agent's process, none on a worker)"},
        {"defaults: {compaction: {enabled: true}}\n",
         "config.yaml:3:24: warning: defaults.compaction: not implemented in this build: ignored (the prompt keeps the "
         "last num_history_runs exchanges, never a summary)"},
        {"agents:\n  mind: {private: {per: user, knowledge: {path: k}}}\n",
         "config.yaml:4:42: warning: agents.mind.private.knowledge: not implemented in this build: ignored (the "
         "private root starts empty and holds the agent's file memory)"},
        {"teams:\n  crew: {agents: [mind], mode: collaborate}\nagents:\n  mind: {}\n", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "models:\n  default: {provider: openai, id: gpt, extra_kwargs: {top_p: 1}}\n%s",
                 cases[i].yaml);
        mr_config *cfg = NULL;
        mr_config_diags d;
        mr_err err = {0};
        if (mr_config_parse(yaml, strlen(yaml), "config.yaml", &cfg, &d, &err) != MR_OK)
            fail_msg("%s: %s", cases[i].yaml, err.msg);
        /* Every case shares the model's extra_kwargs warning. */
        assert_int_equal(d.n_errors, 0);
        assert_int_equal(d.len, cases[i].want ? 2 : 1);
        assert_diag(&d, 0, "config.yaml:2:54: warning: models.default.extra_kwargs: not implemented in this build: "
                           "ignored (the model is sent no extra arguments)");
        if (cases[i].want)
            assert_diag(&d, 1, cases[i].want);
        mr_config_diags_free(&d);
        mr_config_release(cfg);
    }
}

/* What the reference's `config init` writes before `connect`: valid, with a warning per
 * placeholder and per key this build does not act on. */
static void test_template_placeholders_warn(void **state)
{
    (void)state;
    mr_config_diags d;
    mr_config *cfg = load_ok("template.yaml", &d);
    assert_int_equal(d.n_errors, 0);
    assert_int_equal(d.len, 6);
    char prefix[1024];
    data_path(prefix, sizeof prefix, "template.yaml");
    static const char *const want[] = {
        ":41:7: warning: agents.mind.skills: not implemented in this build: ignored (the agent gets no skill's "
        "instructions)",
        ":50:7: warning: matrix_room_access.room_admins[0]: owner placeholder not replaced yet; run `mindroom "
        "connect`",
        ":59:5: warning: memory.embedder: not implemented in this build: ignored (only mem0 uses an embedder)",
        ":65:7: warning: authorization.global_users[0]: owner placeholder not replaced yet; run `mindroom connect`",
        ":68:9: warning: authorization.agent_reply_permissions[\"*\"][0]: owner placeholder not replaced yet; run "
        "`mindroom connect`",
        ":78:5: warning: defaults.compaction: not implemented in this build: ignored (the prompt keeps the last "
        "num_history_runs exchanges, never a summary)",
    };
    for (size_t i = 0; i < d.len; i++) {
        char line[2048];
        snprintf(line, sizeof line, "%s%s", prefix, want[i]);
        assert_int_equal(d.v[i].severity, MR_DIAG_WARNING);
        assert_diag(&d, i, line);
    }
    LIST_IS(cfg->authorization.global_users, PLACEHOLDER);
    LIST_IS(cfg->matrix_room_access.room_admins, PLACEHOLDER);
    const mr_agent_cfg *mind = mr_config_agent(cfg, "mind");
    assert_non_null(mind);
    assert_int_equal(mind->tools.len, 14);
    assert_string_equal(mind->tools.v[3], "config_manager");
    assert_string_equal(mind->memory_backend, "file");
    LIST_IS(mind->skills, "mindroom-docs");
    assert_int_equal(mind->context_files.len, 6);
    LIST_IS(cfg->defaults.tools, "scheduler", "update_awareness");
    assert_int_equal(cfg->defaults.worker_tools.len, 0);
    mr_config_release(cfg);
    mr_config_diags_free(&d);
}

static void test_anchors_and_merges(void **state)
{
    (void)state;
    mr_config *cfg = load_ok("anchors.yaml", NULL);
    const mr_model_cfg *precise = mr_config_model(cfg, "precise");
    assert_non_null(precise);
    assert_string_equal(precise->provider, "openrouter");
    assert_string_equal(precise->id, "anthropic/claude-sonnet-4.5");
    assert_true(precise->temperature == 0.0);
    assert_true(mr_config_model(cfg, "default")->temperature == 0.5);
    const mr_agent_cfg *helper = mr_config_agent(cfg, "helper");
    assert_string_equal(helper->role, "Shared role");
    LIST_IS(helper->rooms, "dev", "#lobby:example.com", "!abc:example.com");
    LIST_IS(helper->tools, "website", "file");
    assert_false(helper->markdown);
    const mr_agent_cfg *watcher = mr_config_agent(cfg, "watcher");
    LIST_IS(watcher->rooms, "dev", "#lobby:example.com", "!abc:example.com");
    assert_string_equal(watcher->model, "precise");
    assert_true(watcher->markdown);
    assert_int_equal(watcher->tools.len, 0);
    mr_config_release(cfg);
}

/* show_tool_calls, as the reference: on by default, defaults.show_tool_calls for every agent,
 * an agent's own value over it. */
static void test_show_tool_calls(void **state)
{
    (void)state;
    mr_config *cfg = parse_ok("models: {default: {provider: openai, id: m}}\n"
                              "agents: {a: {}, b: {show_tool_calls: false}}\n");
    assert_true(cfg->defaults.show_tool_calls);
    assert_true(mr_config_agent(cfg, "a")->show_tool_calls);
    assert_false(mr_config_agent(cfg, "b")->show_tool_calls);
    mr_config_release(cfg);
    cfg = parse_ok("models: {default: {provider: openai, id: m}}\ndefaults: {show_tool_calls: false}\n"
                   "agents: {a: {}, b: {show_tool_calls: true}}\n");
    assert_false(mr_config_agent(cfg, "a")->show_tool_calls);
    assert_true(mr_config_agent(cfg, "b")->show_tool_calls);
    mr_config_release(cfg);
}

/* private: a state root per requester; what this build does not do is a warning. */
static void test_private_block(void **state)
{
    (void)state;
    mr_config *cfg = parse_ok("models: {default: {provider: openai, id: gpt}}\n"
                              "agents:\n"
                              "  mind: {private: {per: user}}\n"
                              "  pair: {private: {per: user_agent, root: notes/data}}\n"
                              "  plain: {}\n");
    const mr_agent_cfg *mind = mr_config_agent(cfg, "mind"), *pair = mr_config_agent(cfg, "pair");
    assert_true(mind->private_state.configured);
    assert_int_equal(mind->private_state.per, MR_PRIVATE_USER);
    assert_string_equal(mind->private_state.root, "mind_data");
    assert_int_equal(pair->private_state.per, MR_PRIVATE_USER_AGENT);
    assert_string_equal(pair->private_state.root, "notes/data");
    assert_false(mr_config_agent(cfg, "plain")->private_state.configured);
    mr_config_release(cfg);

    mr_config_diags d;
    const char *warn = "models: {default: {provider: openai, id: gpt}}\n"
                       "agents:\n"
                       "  mind: {private: {per: user, template_dir: ./t, context_files: [SOUL.md]}}\n";
    assert_int_equal(mr_config_parse(warn, strlen(warn), "config.yaml", &cfg, &d, NULL), MR_OK);
    assert_int_equal(d.len, 2);
    assert_int_equal(d.n_errors, 0);
    assert_diag(&d, 0, "config.yaml:3:45: warning: agents.mind.private.template_dir: not implemented in this "
                       "build: ignored (the private root starts empty and holds the agent's file memory)");
    mr_config_diags_free(&d);
    mr_config_release(cfg);

    static const struct { const char *agent; const char *want; } bad[] = {
        {"{private: {root: x}}", "agents.mind.private: missing required key 'per'"},
        {"{private: {per: group}}", "agents.mind.private.per:"},
        {"{private: {per: user, root: ../x}}",
         "agents.mind.private.root: '../x' must be a relative path that stays inside the private instance"},
        {"{private: {per: user, root: /abs}}", "'/abs' must be a relative path"},
        {"{private: {per: user, root: a/../../b}}", "must be a relative path"},
        {"{private: {per: user, root: sessions/x}}",
         "'sessions/x' starts with a name MindRoom keeps beside the root"},
        {"{private: {per: user, owner: me}}", "agents.mind.private.owner: unknown key 'owner'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char yaml[256], line[1024];
        snprintf(yaml, sizeof yaml, "models: {default: {provider: openai, id: gpt}}\nagents:\n  mind: %s\n",
                 bad[i].agent);
        cfg = (mr_config *)0x1;
        assert_int_equal(mr_config_parse(yaml, strlen(yaml), "config.yaml", &cfg, &d, NULL), MR_EINVAL);
        assert_null(cfg);
        mr_config_diag_format(&d, 0, line, sizeof line);
        if (!strstr(line, bad[i].want))
            fail_msg("%s: got \"%s\", wanted \"%s\"", bad[i].agent, line, bad[i].want);
        mr_config_diags_free(&d);
    }
}

static void test_every_key(void **state)
{
    (void)state;
    mr_config *cfg = load_ok("full.yaml", NULL);
    const mr_model_cfg *m = &cfg->models[0];
    assert_string_equal(m->provider, "ollama");
    assert_string_equal(m->id, "qwen3:8b");
    assert_string_equal(m->host, "http://localhost:11434");
    assert_string_equal(m->api_key_env, "OLLAMA_KEY");
    assert_int_equal(m->context_window, 40960);
    assert_true(m->temperature == 0.25);
    const mr_agent_cfg *a = &cfg->agents[0];
    assert_string_equal(a->display_name, "The Mind");
    assert_string_equal(a->role, "Thinks");
    LIST_IS(a->rooms, "personal", "#lobby:example.com");
    LIST_IS(a->skills, "mindroom-docs");
    LIST_IS(a->instructions, "Be brief.", "Cite sources.");
    LIST_IS(a->context_files, "SOUL.md");
    LIST_IS(a->knowledge_bases, "docs");
    assert_string_equal(a->memory_backend, "mem0");
    assert_int_equal(a->thread_mode, MR_THREAD_MODE_ROOM);
    assert_false(a->markdown);
    assert_true(a->learning);
    assert_int_equal(a->num_history_runs, 7);
    const mr_team_cfg *t = &cfg->teams[0];
    assert_int_equal(t->mode, MR_TEAM_COLLABORATE);
    assert_string_equal(t->model, "default");
    LIST_IS(t->instructions, "Agree first.");
    assert_false(cfg->router.accept_invites);
    const mr_room_cfg *dev = mr_config_room(cfg, "dev");
    assert_string_equal(dev->topic, "Code talk");
    const mr_room_cfg *personal = mr_config_room(cfg, "personal");
    assert_null(personal->display_name);
    assert_false(personal->encrypted);
    assert_true(cfg->authorization.default_room_access);
    LIST_IS(cfg->authorization.room_permissions[0].users, "@bob:example.com");
    LIST_IS(cfg->authorization.reply_permissions[0].joined_rooms, "dev");
    assert_string_equal(cfg->mindroom_user.username, "owner_bot");
    assert_string_equal(cfg->mindroom_user.display_name, "Owner Bot");
    const mr_room_access_cfg *r = &cfg->matrix_room_access;
    assert_int_equal(r->mode, MR_ROOM_ACCESS_MULTI_USER);
    assert_int_equal(r->multi_user_join_rule, MR_JOIN_RULE_KNOCK);
    assert_true(r->publish_to_room_directory);
    LIST_IS(r->invite_only_rooms, "personal");
    assert_true(r->reconcile_existing_rooms);
    assert_true(r->encrypt_managed_rooms);
    LIST_IS(r->room_admins, "@alice:example.com", "@carol:example.com");
    assert_string_equal(cfg->matrix_space.name, "Our Space");
    assert_false(cfg->defaults.markdown);
    assert_false(cfg->defaults.enable_streaming);
    assert_true(cfg->defaults.show_stop_button);
    assert_int_equal(cfg->defaults.num_history_runs, 3);
    LIST_IS(cfg->defaults.worker_tools, "shell", "coding");
    assert_string_equal(cfg->memory.backend, "none");
    assert_string_equal(cfg->timezone, "America/Los_Angeles");
    assert_int_equal(cfg->scheduler_catch_up_grace_seconds, 0);
    mr_config_release(cfg);
}

static void assert_defaults(const mr_config *cfg)
{
    assert_int_equal(cfg->n_models + cfg->n_agents + cfg->n_teams + cfg->n_rooms, 0);
    assert_string_equal(cfg->router.model, "default");
    assert_true(cfg->router.accept_invites);
    assert_int_equal(cfg->authorization.global_users.len, 0);
    assert_int_equal(cfg->authorization.n_room_permissions + cfg->authorization.n_aliases +
                         cfg->authorization.n_reply_permissions,
                     0);
    assert_false(cfg->authorization.default_room_access);
    assert_false(cfg->mindroom_user.configured);
    assert_string_equal(cfg->mindroom_user.username, "mindroom_user");
    assert_string_equal(cfg->mindroom_user.display_name, "MindRoomUser");
    assert_int_equal(cfg->matrix_room_access.mode, MR_ROOM_ACCESS_SINGLE_USER_PRIVATE);
    assert_false(cfg->matrix_space.enabled);
    assert_string_equal(cfg->matrix_space.name, "MindRoom");
    assert_true(cfg->defaults.markdown);
    assert_true(cfg->defaults.enable_streaming);
    assert_false(cfg->defaults.show_stop_button);
    assert_string_equal(cfg->memory.backend, "file");
    assert_string_equal(cfg->timezone, "UTC");
    assert_int_equal(cfg->scheduler_catch_up_grace_seconds, 3600);
}

static void test_empty_and_null_documents(void **state)
{
    (void)state;
    static const char *const docs[] = {"", "# only a comment\n", "---\n", "~\n", "---\n...\n", "models:\nagents: ~\n"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        mr_config *cfg = parse_ok(docs[i]);
        assert_defaults(cfg);
        assert_string_equal(cfg->path, "config.yaml");
        mr_config_release(cfg);
    }
}

static void test_agent_defaults_follow_defaults_block(void **state)
{
    (void)state;
    mr_config *cfg = parse_ok("agents:\n"
                              "  quiet: {model: m}\n"
                              "  loud: {model: m, markdown: true}\n"
                              "  bare:\n"
                              "models: {m: {provider: openai, id: x}, default: {provider: openai, id: y}}\n"
                              "defaults: {markdown: false}\n");
    const mr_agent_cfg *quiet = mr_config_agent(cfg, "quiet");
    assert_false(quiet->markdown);
    assert_string_equal(quiet->display_name, "quiet");
    assert_string_equal(quiet->role, "");
    assert_null(quiet->memory_backend);
    assert_int_equal(quiet->thread_mode, MR_THREAD_MODE_THREAD);
    assert_true(mr_config_agent(cfg, "loud")->markdown);
    const mr_agent_cfg *bare = mr_config_agent(cfg, "bare");
    assert_string_equal(bare->model, "default");
    assert_false(bare->markdown);
    mr_config_release(cfg);
}

static void test_scalar_typing(void **state)
{
    (void)state;
    mr_config *cfg = parse_ok("models:\n"
                              "  default:\n"
                              "    provider: openai\n"
                              "    id: !!str 4\n"
                              "    context_window: 0x10\n"
                              "    temperature: 1e-1\n"
                              "    api_key_env: \"123\"\n"
                              "agents:\n"
                              "  a: {display_name: '2024', learning: True, markdown: FALSE, num_history_runs: +5}\n"
                              "  b: {role: 'true', instructions: [\"null\", '~']}\n");
    const mr_model_cfg *m = &cfg->models[0];
    assert_string_equal(m->id, "4");
    assert_int_equal(m->context_window, 16);
    assert_true(fabs(m->temperature - 0.1) < 1e-12);
    assert_string_equal(m->api_key_env, "123");
    const mr_agent_cfg *a = mr_config_agent(cfg, "a");
    assert_string_equal(a->display_name, "2024");
    assert_true(a->learning);
    assert_false(a->markdown);
    assert_int_equal(a->num_history_runs, 5);
    const mr_agent_cfg *b = mr_config_agent(cfg, "b");
    assert_string_equal(b->role, "true");
    LIST_IS(b->instructions, "null", "~");
    mr_config_release(cfg);
}

static void test_lookups(void **state)
{
    (void)state;
    mr_config *cfg = load_ok("minimal.yaml", NULL);
    assert_ptr_equal(mr_config_model(cfg, "fast"), &cfg->models[1]);
    assert_ptr_equal(mr_config_agent(cfg, "coder"), &cfg->agents[1]);
    assert_ptr_equal(mr_config_team(cfg, "devteam"), &cfg->teams[0]);
    assert_ptr_equal(mr_config_room(cfg, "dev"), &cfg->rooms[0]);
    assert_null(mr_config_model(cfg, "slow"));
    assert_null(mr_config_agent(cfg, "devteam"));
    assert_null(mr_config_team(cfg, "mind"));
    assert_null(mr_config_room(cfg, "personal")); /* used by agents but not configured under rooms: */
    assert_null(mr_config_agent(cfg, NULL));
    assert_null(mr_config_agent(NULL, "mind"));
    mr_config_release(cfg);
}

static void test_providers_list(void **state)
{
    (void)state;
    size_t n = 0;
    bool openai = false, llama = false;
    for (; mr_config_providers[n]; n++) {
        openai |= strcmp(mr_config_providers[n], "openai") == 0;
        llama |= strcmp(mr_config_providers[n], "llama_cpp") == 0;
    }
    assert_int_equal(n, 17);
    assert_true(openai && llama);
}

/* ---- broken files: each case asserts every diagnostic, exactly ------------------------------ */

typedef struct bad_case {
    const char *name;
    const char *yaml;
    size_t n_errors;
    const char *want[MAX_EXPECTED];
} bad_case;

#define MODELS "models: {default: {provider: openai, id: gpt}}\n"

static const bad_case bad_cases[] = {
    {"top_level_list", "- models\n- agents\n", 1,
     {"config.yaml:1:1: the top level must be a mapping of settings (models:, agents:, ...), got a list"}},
    {"top_level_string", "just text\n", 1,
     {"config.yaml:1:1: the top level must be a mapping of settings (models:, agents:, ...), got a string"}},
    {"two_documents", "models: {}\n---\nagents: {}\n", 1,
     {"config.yaml:2:1: a second YAML document; a config file holds exactly one"}},
    {"tab_indent", "agents:\n\tcode: {}\n", 1,
     {"config.yaml:2:1: YAML syntax error: found character that cannot start any token (while scanning for the "
      "next token)"}},
    {"unclosed_flow", "agents: {code: {rooms: [dev}\n", 1,
     {"config.yaml:1:28: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence)"}},
    {"duplicate_key", MODELS "agents:\n  code: {}\n  code: {}\n", 1,
     {"config.yaml:4:3: agents.code: duplicate key 'code'; the first is at line 3"}},
    {"duplicate_nested_key", MODELS "agents:\n  code:\n    role: a\n    role: b\n", 1,
     {"config.yaml:5:5: agents.code.role: duplicate key 'role'; the first is at line 4"}},
    {"unknown_tag", MODELS "agents:\n  code: !include code.yaml\n", 2,
     {"config.yaml:3:9: agents.code: unknown tag '!include'",
      "config.yaml:3:9: agents.code: expected a mapping, got a string"}},
    {"bad_typed_tag", "models:\n  default: {provider: openai, id: gpt, context_window: !!int lots}\n", 2,
     {"config.yaml:2:56: models.default.context_window: 'lots' is not a valid !!int value",
      "config.yaml:2:56: models.default.context_window: expected a whole number, got a string"}},
    {"unknown_anchor", MODELS "agents:\n  code: {rooms: *shared}\n", 1,
     {"config.yaml:3:17: agents.code.rooms: alias '*shared' has no anchor '&shared' before it"}},
    /* Found by fuzzing: an alias without an anchor used as a mapping key. */
    {"unknown_anchor_as_key", "rooms:\n  *ev: {}\n", 2,
     {"config.yaml:2:3: rooms: alias '*ev' has no anchor '&ev' before it",
      "config.yaml:2:3: rooms[\"\"]: '' is not a valid room key: a room key is empty"}},
    {"unknown_top_key_hint", "agnets: {}\n", 1,
     {"config.yaml:1:1: agnets: unknown key 'agnets'; did you mean 'agents'?"}},
    {"unknown_top_key_no_hint", "plugins: []\n", 1,
     {"config.yaml:1:1: plugins: unknown key 'plugins'; expected one of: agents, authorization, bot_accounts, "
      "defaults, matrix_room_access, matrix_space, mcp_servers, memory, mindroom_user, models, oauth_providers, rooms, router, "
      "scheduler_catch_up_grace_seconds, teams, timezone"}},
    {"unknown_agent_key_hint", MODELS "agents:\n  code:\n    modle: default\n", 1,
     {"config.yaml:4:5: agents.code.modle: unknown key 'modle'; did you mean 'model'?"}},
    {"unknown_prefix_hint", "authorization:\n  global: []\n", 1,
     {"config.yaml:2:3: authorization.global: unknown key 'global'; did you mean 'global_users'?"}},
    {"unknown_router_key_no_hint", "router:\n  temperature: 1\n", 1,
     {"config.yaml:2:3: router.temperature: unknown key 'temperature'; expected one of: accept_invites, model"}},
    {"agents_wrong_type", "agents: [code, research]\n", 1,
     {"config.yaml:1:9: agents: expected a mapping of agent names to settings, got a list"}},
    {"rooms_mapping", MODELS "agents:\n  code:\n    rooms: {dev: true}\n", 1,
     {"config.yaml:4:12: agents.code.rooms: expected a list of room keys, got a mapping"}},
    {"room_item_type", MODELS "agents:\n  code: {rooms: [dev, [ops]]}\n", 1,
     {"config.yaml:3:23: agents.code.rooms[1]: expected a string, got a list"}},
    {"bool_wrong_type", "router: {accept_invites: yes}\n", 1,
     {"config.yaml:1:26: router.accept_invites: expected true/false, got a string"}},
    {"string_wrong_type", "matrix_space: {name: [a]}\n", 1,
     {"config.yaml:1:22: matrix_space.name: expected a string, got a list"}},
    {"number_wrong_type", "models:\n  default: {provider: openai, id: gpt, context_window: big}\n", 1,
     {"config.yaml:2:56: models.default.context_window: expected a whole number, got a string"}},
    {"negative_count", "defaults: {num_history_runs: -1}\n", 1,
     {"config.yaml:1:30: defaults.num_history_runs: expected a whole number from 0 to 2147483647, got -1"}},
    {"block_wrong_type", "matrix_room_access: true\n", 1,
     {"config.yaml:1:21: matrix_room_access: expected a mapping, got true/false"}},
    {"opaque_map_wrong_type", "defaults: {compaction: on}\n", 1,
     {"config.yaml:1:24: defaults.compaction: expected a mapping, got a string"}},
    {"tool_entry_shape", MODELS "agents:\n  code: {tools: [shell, {a: 1, b: 2}]}\n", 1,
     {"config.yaml:3:25: agents.code.tools[1]: expected a tool name or a one-key mapping {name: {settings}}, got "
      "a mapping"}},
    {"unknown_tool_hint", MODELS "agents:\n  code: {tools: [shell, {schedular: {}}, warp_drive]}\n", 2,
     {"config.yaml:3:26: agents.code.tools[1]: unknown tool 'schedular'; did you mean 'scheduler'?",
      "config.yaml:3:42: agents.code.tools[2]: unknown tool 'warp_drive'; it must be a tool MindRoom knows "
      "(docs.mindroom.chat/tools/) or a key under mcp_servers:"}},
    {"unknown_tool_mcp_hint", MODELS "mcp_servers:\n  everything: {command: node}\n"
     "agents:\n  code: {tools: [everything, evrything]}\ndefaults: {tools: [todo], worker_tools: [evrything]}\n", 2,
     {"config.yaml:5:30: agents.code.tools[1]: unknown tool 'evrything'; did you mean 'everything'?",
      "config.yaml:6:41: warning: defaults.worker_tools: not implemented in this build: ignored (tools run in the "
      "agent's process, none on a worker)",
      "config.yaml:6:42: defaults.worker_tools[0]: unknown tool 'evrything'; did you mean 'everything'?"}},
    {"bad_user_id", "authorization:\n  global_users: [\"@alice\", \"bob:example.com\"]\n", 2,
     {"config.yaml:2:18: authorization.global_users[0]: '@alice' is not a valid user ID: expected ':' and a server "
      "name after the localpart",
      "config.yaml:2:28: authorization.global_users[1]: 'bob:example.com' is not a valid user ID: it must start "
      "with '@'"}},
    {"bad_bot_account_server", "bot_accounts: [\"@bot:example.com:99999999\"]\n", 1,
     {"config.yaml:1:16: bot_accounts[0]: '@bot:example.com:99999999' is not a valid user ID: "
      "'example.com:99999999' is not a valid server name: a port is 1 to 5 digits"}},
    {"bad_room_admin", "matrix_room_access: {room_admins: [\"@:example.com\"]}\n", 1,
     {"config.yaml:1:36: matrix_room_access.room_admins[0]: '@:example.com' is not a valid user ID: the part "
      "before the server is empty"}},
    {"bad_room_permission_user", "authorization:\n  room_permissions:\n    ops: [alice]\n", 1,
     {"config.yaml:3:11: authorization.room_permissions.ops[0]: 'alice' is not a valid user ID: it must start "
      "with '@'"}},
    {"bad_alias_key", "authorization:\n  aliases:\n    alice: [\"@tg_1:example.com\"]\n", 1,
     {"config.yaml:3:5: authorization.aliases.alice: 'alice' is not a valid user ID: it must start with '@'"}},
    {"bad_room_permission_key", "authorization:\n  room_permissions:\n    \"#lobby\": [\"@a:example.com\"]\n", 1,
     {"config.yaml:3:5: authorization.room_permissions[\"#lobby\"]: '#lobby' is not a valid room alias: expected "
      "':' and a server name after the localpart"}},
    {"room_key_with_space", MODELS "agents:\n  code: {rooms: [\"my room\"]}\n", 1,
     {"config.yaml:3:18: agents.code.rooms[0]: 'my room' is not a valid room: room keys become room alias "
      "localparts and may not hold ':', spaces or control characters"}},
    {"rooms_block_alias_key", "rooms:\n  \"#dev:example.com\": {}\n", 1,
     {"config.yaml:2:3: rooms[\"#dev:example.com\"]: '#dev:example.com' is not a valid room key: rooms: is keyed "
      "by managed room keys, not aliases or room IDs"}},
    {"reserved_agent_name", MODELS "agents:\n  router: {}\n  User: {}\n", 2,
     {"config.yaml:3:3: agents.router: 'router' is a reserved name; choose another",
      "config.yaml:4:3: agents.User: 'User' is a reserved name; choose another"}},
    {"bad_agent_name", MODELS "agents:\n  my-agent: {}\n  \"my agent\": {}\n", 2,
     {"config.yaml:3:3: agents.my-agent: 'my-agent' is not a valid name: names may only hold letters, digits and "
      "'_'",
      "config.yaml:4:3: agents[\"my agent\"]: 'my agent' is not a valid name: names may only hold letters, digits "
      "and '_'"}},
    {"agent_team_clash", MODELS "agents:\n  dev: {}\nteams:\n  Dev: {agents: [dev]}\n", 1,
     {"config.yaml:5:3: teams.Dev: 'Dev' clashes with agent 'dev' at line 3: both would be the Matrix user "
      "mindroom_dev"}},
    {"missing_default_model", "models: {fast: {provider: openai, id: x}}\nagents:\n  code: {}\n", 1,
     {"config.yaml:3:3: agents.code: no model set and models: has no 'default'; add model: or define "
      "models.default"}},
    {"unknown_model_hint", MODELS "agents:\n  code: {model: defualt}\n", 1,
     {"config.yaml:3:17: agents.code.model: unknown model 'defualt'; did you mean 'default'?"}},
    {"unknown_router_and_team_model", MODELS "router: {model: gpt4o}\nagents: {a: {}}\nteams: {t: {agents: [a], "
     "model: big}}\n", 2,
     {"config.yaml:2:17: router.model: unknown model 'gpt4o'; it must be a key under models:",
      "config.yaml:4:33: teams.t.model: unknown model 'big'; it must be a key under models:"}},
    {"unknown_team_member", MODELS "agents:\n  coder: {}\nteams:\n  dev: {agents: [coder, codr, writer]}\n", 2,
     {"config.yaml:5:25: teams.dev.agents[1]: unknown agent 'codr'; did you mean 'coder'?",
      "config.yaml:5:31: teams.dev.agents[2]: unknown agent 'writer'; it must be a key under agents:"}},
    {"team_without_agents", "teams:\n  dev: {role: x}\n  ops: {agents: []}\n", 2,
     {"config.yaml:2:8: teams.dev: missing required key 'agents'",
      "config.yaml:3:17: teams.ops.agents: a team needs at least one agent"}},
    {"model_missing_fields", "models:\n  default: {host: x}\n", 2,
     {"config.yaml:2:12: models.default: missing required key 'provider'",
      "config.yaml:2:12: models.default: missing required key 'id'"}},
    {"unknown_reply_key", MODELS "agents: {code: {}}\nauthorization:\n  agent_reply_permissions:\n    cod: [\"*\"]\n"
     "    ghost: [\"*\"]\n", 2,
     {"config.yaml:5:5: authorization.agent_reply_permissions.cod: unknown entity 'cod'; did you mean 'code'?",
      "config.yaml:6:5: authorization.agent_reply_permissions.ghost: unknown entity 'ghost'; keys must be an "
      "agent, a team, 'router' or '*'"}},
    {"bad_globs", "authorization:\n  agent_reply_permissions:\n    router: [\"@a:[ex\", \"admin*\", \"@a:x\\\\\"]\n",
     3,
     {"config.yaml:3:14: authorization.agent_reply_permissions.router[0]: '@a:[ex' is not a valid user pattern: "
      "'[' is not closed by ']'",
      "config.yaml:3:24: authorization.agent_reply_permissions.router[1]: 'admin*' is not a valid user pattern: it "
      "can never match: user IDs start with '@'",
      "config.yaml:3:34: authorization.agent_reply_permissions.router[2]: '@a:x\\' is not a valid user ID: "
      "'x\\' is not a valid server name: a host name holds only letters, digits, '-' and '.'"}},
    {"reply_value_shape", "authorization:\n  agent_reply_permissions:\n    router: \"*\"\n", 1,
     {"config.yaml:3:13: authorization.agent_reply_permissions.router: expected a list of user IDs or a mapping "
      "with users and joined_rooms, got a string"}},
    {"duplicate_joined_rooms", "authorization:\n  agent_reply_permissions:\n    router:\n      users: [\"*\"]\n"
     "      joined_rooms: [dev, ops, dev]\n", 1,
     {"config.yaml:5:32: authorization.agent_reply_permissions.router.joined_rooms[2]: 'dev' is listed twice; the "
      "first is at line 5"}},
    {"duplicate_alias", "authorization:\n  aliases:\n    \"@alice:example.com\": [\"@tg_1:example.com\"]\n"
     "    \"@bob:example.com\": [\"@tg_2:example.com\", \"@tg_1:example.com\"]\n", 1,
     {"config.yaml:4:47: authorization.aliases[\"@bob:example.com\"][1]: '@tg_1:example.com' is already an alias "
      "of '@alice:example.com' (line 3); an alias belongs to one user only"}},
    {"bad_thread_mode", MODELS "agents:\n  code: {thread_mode: threads}\n", 1,
     {"config.yaml:3:23: agents.code.thread_mode: 'threads' is not one of thread, room"}},
    {"bad_team_mode", MODELS "agents: {a: {}}\nteams:\n  t: {agents: [a], mode: vote}\n", 1,
     {"config.yaml:4:26: teams.t.mode: 'vote' is not one of coordinate, collaborate"}},
    {"bad_access_enums", "matrix_room_access: {mode: open, multi_user_join_rule: [knock]}\n", 2,
     {"config.yaml:1:28: matrix_room_access.mode: 'open' is not one of single_user_private, multi_user",
      "config.yaml:1:56: matrix_room_access.multi_user_join_rule: expected one of public, knock; got a list"}},
    {"bad_show_tool_calls", MODELS "defaults: {show_tool_calls: sometimes}\n", 1,
     {"config.yaml:2:29: defaults.show_tool_calls: expected true/false, got a string"}},
    {"bad_memory_backend", "memory: {backend: redis}\n", 1,
     {"config.yaml:1:19: memory.backend: 'redis' is not one of mem0, file, none"}},
    {"bad_provider", "models:\n  default: {provider: opnai, id: gpt}\n", 1,
     {"config.yaml:2:23: models.default.provider: 'opnai' is not one of anthropic, bedrock_claude, azure, openai, "
      "codex, kimi, google, gemini, vertexai_claude, ollama, llama_cpp, groq, openrouter, cerebras, deepseek, zai, "
      "synthetic"}},
    {"bad_mindroom_username", "mindroom_user: {username: Mind Room}\n", 1,
     {"config.yaml:1:27: mindroom_user.username: 'Mind Room' is not a valid username: use only a-z, 0-9 and the "
      "characters ._=/+-"}},
    {"bad_merge_value", MODELS "agents:\n  code:\n    <<: [a]\n", 1,
     {"config.yaml:4:10: agents.code: '<<' merges a mapping or a list of mappings; this is a string"}},
    {"non_string_key", MODELS "agents:\n  ? [a, b]\n  : {}\n", 1,
     {"config.yaml:3:5: agents: a mapping key must be a string, got a list"}},
    {"nul_in_string", MODELS "agents:\n  code: {role: \"a\\0b\"}\n", 1,
     {"config.yaml:3:16: agents.code.role: text holds a NUL character"}},
    {"unknown_timezone", "timezone: Europe/Berln\n", 1,
     {"config.yaml:1:11: timezone: time zone 'Europe/Berln' is unknown here: there is no "
      "/usr/share/zoneinfo/Europe/Berln (check the spelling, e.g. Europe/Berlin, or install tzdata)"}},
    {"timezone_path", "timezone: ../../etc/passwd\n", 1,
     {"config.yaml:1:11: timezone: '../../etc/passwd' is not a time zone name: write an IANA name such as "
      "Europe/Berlin or America/New_York, or UTC"}},
    {"timezone_list", "timezone: [UTC]\n", 1,
     {"config.yaml:1:11: timezone: expected a time zone name such as Europe/Berlin, got a list"}},
};

static void test_bad_case(void **state)
{
    const bad_case *c = *state;
    mr_config *cfg = (mr_config *)0x1;
    mr_config_diags d;
    mr_err err = {0};
    mr_code rc = mr_config_parse(c->yaml, strlen(c->yaml), "config.yaml", &cfg, &d, &err);
    for (size_t i = 0; i < d.len; i++) {
        char buf[1024];
        mr_config_diag_format(&d, i, buf, sizeof buf);
        print_message("  got: %s\n", buf);
    }
    assert_int_equal(rc, MR_EINVAL);
    assert_null(cfg);
    assert_int_equal(d.n_errors, c->n_errors);
    size_t want = 0;
    while (want < MAX_EXPECTED && c->want[want])
        want++;
    assert_int_equal(d.len, want);
    for (size_t i = 0; i < want; i++)
        assert_diag(&d, i, c->want[i]);
    /* The summary counts the errors and quotes the first. */
    char summary[MR_ERR_MSG_MAX];
    snprintf(summary, sizeof summary, "config.yaml: %zu error%s; the first: %s", c->n_errors,
             c->n_errors == 1 ? "" : "s", c->want[0]);
    assert_string_equal(err.msg, summary);
    mr_config_diags_free(&d);
}

/* ---- whole-file behaviour ------------------------------------------------------------------- */

static void test_three_errors_reported_together(void **state)
{
    (void)state;
    char path[1024];
    data_path(path, sizeof path, "three_errors.yaml");
    mr_config *cfg = NULL;
    mr_config_diags d;
    mr_err err = {0};
    assert_int_equal(mr_config_load(path, &cfg, &d, &err), MR_EINVAL);
    assert_null(cfg);
    assert_int_equal(d.n_errors, 3);
    assert_int_equal(d.len, 3);
    static const char *const want[] = {
        ":5:12: agents.code.rooms: expected a list of room keys, got a mapping",
        ":6:18: agents.code.thread_mode: 'threads' is not one of thread, room",
        (":8:18: authorization.global_users[0]: '@alice' is not a valid user ID: expected ':' and a server name "
         "after the localpart"),
    };
    for (size_t i = 0; i < 3; i++) {
        char line[2048];
        snprintf(line, sizeof line, "%s%s", path, want[i]);
        assert_diag(&d, i, line);
    }
    char summary[4096];
    snprintf(summary, sizeof summary, "%s: 3 errors; the first: %s%s", path, path, want[0]);
    assert_string_equal(err.msg, summary);
    mr_config_diags_free(&d);
}

static void test_diags_optional(void **state)
{
    (void)state;
    mr_config *cfg = NULL;
    mr_err err = {0};
    const char *yaml = "agents: [a]\n";
    assert_int_equal(mr_config_parse(yaml, strlen(yaml), "my.yaml", &cfg, NULL, &err), MR_EINVAL);
    assert_null(cfg);
    assert_string_equal(err.msg, "my.yaml: 1 error; the first: my.yaml:1:9: agents: expected a mapping of agent "
                                 "names to settings, got a list");
}

static void test_diag_format(void **state)
{
    (void)state;
    mr_config *cfg = NULL;
    mr_config_diags d;
    const char *yaml = "foo: 1\n";
    assert_int_equal(mr_config_parse(yaml, strlen(yaml), "c.yaml", &cfg, &d, NULL), MR_EINVAL);
    const char *want = "c.yaml:1:1: foo: unknown key 'foo'; expected one of: agents, authorization, bot_accounts, "
                       "defaults, matrix_room_access, matrix_space, mcp_servers, memory, mindroom_user, models, oauth_providers, rooms, router, "
      "scheduler_catch_up_grace_seconds, teams, timezone";
    char small[16];
    assert_int_equal(mr_config_diag_format(&d, 0, small, sizeof small), (int)strlen(want));
    assert_string_equal(small, "c.yaml:1:1: foo");
    assert_int_equal(mr_config_diag_format(&d, 0, NULL, 0), (int)strlen(want));
    assert_int_equal(mr_config_diag_format(&d, 1, small, sizeof small), 0);
    assert_string_equal(small, "");
    assert_int_equal(d.v[0].line, 1);
    assert_int_equal(d.v[0].col, 1);
    assert_string_equal(d.v[0].path, "foo");
    mr_config_diags_free(&d);
    assert_null(d.v);
    mr_config_diags_free(NULL);
}

static void test_oversize_text(void **state)
{
    (void)state;
    size_t len = MR_CONFIG_MAX_BYTES + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, '#', len);
    mr_config *cfg = NULL;
    mr_config_diags d;
    mr_err err = {0};
    assert_int_equal(mr_config_parse(big, len, "big.yaml", &cfg, &d, &err), MR_EINVAL);
    assert_null(cfg);
    assert_int_equal(d.len, 1);
    assert_diag(&d, 0, "big.yaml:1:1: the file is 4194305 bytes; the limit is 4194304 bytes");
    mr_config_diags_free(&d);
    /* Exactly at the limit is fine: a file of comments. */
    assert_int_equal(mr_config_parse(big, len - 1, "big.yaml", &cfg, NULL, &err), MR_OK);
    mr_config_release(cfg);
    free(big);
}

static char g_dir[64];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int make_dir(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/mr_config_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    return nftw(g_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_load_file_errors(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/missing.yaml", g_dir);
    mr_config *cfg = (mr_config *)0x1;
    mr_config_diags d;
    mr_err err = {0};
    assert_int_equal(mr_config_load(path, &cfg, &d, &err), MR_ENOTFOUND);
    assert_null(cfg);
    assert_int_equal(d.len, 0);
    assert_non_null(strstr(err.msg, path));

    snprintf(path, sizeof path, "%s/big.yaml", g_dir);
    size_t len = MR_CONFIG_MAX_BYTES + 10;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, '#', len);
    write_file(path, big, len);
    free(big);
    assert_int_equal(mr_config_load(path, &cfg, &d, &err), MR_EINVAL);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "4194304"));
}

/* A reload that fails leaves the config in use untouched; holders keep theirs until released. */
static void test_reload_keeps_good_config(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/config.yaml", g_dir);
    const char *good = MODELS "agents: {code: {role: Writes code}}\n";
    write_file(path, good, strlen(good));
    mr_config *live = NULL;
    mr_err err = {0};
    assert_int_equal(mr_config_load(path, &live, NULL, &err), MR_OK);
    mr_config *reader = mr_config_retain(live);
    assert_ptr_equal(reader, live);
    assert_int_equal(live->refcount, 2);

    const char *broken = MODELS "agents: {code: {role: [oops]}}\n";
    write_file(path, broken, strlen(broken));
    mr_config *next = (mr_config *)0x1;
    assert_int_equal(mr_config_load(path, &next, NULL, &err), MR_EINVAL);
    assert_null(next);
    assert_string_equal(live->agents[0].role, "Writes code");
    assert_int_equal(live->refcount, 2);

    const char *fixed = MODELS "agents: {code: {role: Reviews code}}\n";
    write_file(path, fixed, strlen(fixed));
    assert_int_equal(mr_config_load(path, &next, NULL, &err), MR_OK);
    mr_config *old = live;
    live = next;       /* the swap a reload does */
    mr_config_release(old);
    assert_int_equal(reader->refcount, 1);
    assert_string_equal(reader->agents[0].role, "Writes code");
    assert_string_equal(live->agents[0].role, "Reviews code");
    mr_config_release(reader);
    mr_config_release(live);
    mr_config_release(NULL);
    assert_null(mr_config_retain(NULL));
}

/* Aliases of aliases may not expand a small file into millions of values. */
static void test_alias_expansion_guard(void **state)
{
    (void)state;
    size_t cap = 64 * 1024, used = 0;
    char *yaml = malloc(cap);
    assert_non_null(yaml);
    used += (size_t)snprintf(yaml + used, cap - used, MODELS "agents:\n  a0: &a {tools: [");
    for (int i = 0; i < 1000; i++)
        used += (size_t)snprintf(yaml + used, cap - used, "%sx", i ? "," : "");
    used += (size_t)snprintf(yaml + used, cap - used, "]}\n");
    for (int i = 1; i < 1000; i++)
        used += (size_t)snprintf(yaml + used, cap - used, "  a%d: *a\n", i);
    assert_true(used < cap);
    mr_config *cfg = NULL;
    mr_config_diags d;
    assert_int_equal(mr_config_parse(yaml, used, "config.yaml", &cfg, &d, NULL), MR_EINVAL);
    assert_int_equal(d.n_errors, 1);
    assert_diag(&d, 0, "config.yaml:1:1: the document repeats its anchors too often (alias expansion)");
    mr_config_diags_free(&d);
    free(yaml);
}

static void test_find_path(void **state)
{
    (void)state;
    char old_cwd[1024];
    assert_non_null(getcwd(old_cwd, sizeof old_cwd));
    const char *old_home = getenv("HOME");
    char saved_home[1024];
    snprintf(saved_home, sizeof saved_home, "%s", old_home ? old_home : "");
    char work[256], home[256], home_cfg[300];
    snprintf(work, sizeof work, "%s/work", g_dir);
    snprintf(home, sizeof home, "%s/home", g_dir);
    snprintf(home_cfg, sizeof home_cfg, "%s/.mindroom", home);
    assert_int_equal(mkdir(work, 0700), 0);
    assert_int_equal(mkdir(home, 0700), 0);
    assert_int_equal(mkdir(home_cfg, 0700), 0);
    assert_int_equal(chdir(work), 0);
    setenv("HOME", home, 1);
    unsetenv("MINDROOM_CONFIG_PATH");

    char out[512];
    mr_err err = {0};
    /* Nothing exists: not found, or ~/.mindroom/config.yaml for `config init`. */
    assert_int_equal(mr_config_find_path(out, sizeof out, true, &err), MR_ENOTFOUND);
    char want[600];
    snprintf(want, sizeof want,
             "no config.yaml found: looked in ./config.yaml and %s/config.yaml (set MINDROOM_CONFIG_PATH or run "
             "`mindroom config init`)",
             home_cfg);
    assert_string_equal(err.msg, want);
    snprintf(want, sizeof want, "%s/config.yaml", home_cfg);
    assert_int_equal(mr_config_find_path(out, sizeof out, false, &err), MR_OK);
    assert_string_equal(out, want);
    /* Without HOME, ./config.yaml. */
    unsetenv("HOME");
    assert_int_equal(mr_config_find_path(out, sizeof out, false, &err), MR_OK);
    assert_string_equal(out, "config.yaml");
    assert_int_equal(mr_config_find_path(out, sizeof out, true, &err), MR_ENOTFOUND);
    assert_string_equal(err.msg, "no config.yaml found: looked in ./config.yaml (set MINDROOM_CONFIG_PATH or run "
                                 "`mindroom config init`)");
    setenv("HOME", home, 1);

    /* ~/.mindroom/config.yaml when only it exists. */
    write_file(want, "", 0);
    assert_int_equal(mr_config_find_path(out, sizeof out, true, &err), MR_OK);
    assert_string_equal(out, want);

    /* ./config.yaml wins over the home one. */
    write_file("config.yaml", "", 0);
    assert_int_equal(mr_config_find_path(out, sizeof out, true, &err), MR_OK);
    assert_string_equal(out, "config.yaml");

    /* $MINDROOM_CONFIG_PATH wins over both, and is the only candidate when set. */
    snprintf(want, sizeof want, "%s/elsewhere.yaml", g_dir);
    setenv("MINDROOM_CONFIG_PATH", want, 1);
    assert_int_equal(mr_config_find_path(out, sizeof out, false, &err), MR_OK);
    assert_string_equal(out, want);
    assert_int_equal(mr_config_find_path(out, sizeof out, true, &err), MR_ENOTFOUND);
    char msg[800];
    snprintf(msg, sizeof msg, "MINDROOM_CONFIG_PATH names %s, which does not exist", want);
    assert_string_equal(err.msg, msg);
    write_file(want, "", 0);
    assert_int_equal(mr_config_find_path(out, sizeof out, true, &err), MR_OK);
    assert_string_equal(out, want);
    char tiny[8];
    assert_int_equal(mr_config_find_path(tiny, sizeof tiny, true, &err), MR_EINVAL);

    unsetenv("MINDROOM_CONFIG_PATH");
    setenv("HOME", saved_home, 1);
    assert_int_equal(chdir(old_cwd), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, make_dir, remove_dir)

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_minimal_example),
        cmocka_unit_test(test_seed_authorization),
        cmocka_unit_test(test_seed_aliases_and_reply_forms),
        cmocka_unit_test(test_template_placeholders_warn),
        cmocka_unit_test(test_unbuilt_keys_warn),
        cmocka_unit_test(test_anchors_and_merges),
        cmocka_unit_test(test_show_tool_calls),
        cmocka_unit_test(test_private_block),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_empty_and_null_documents),
        cmocka_unit_test(test_agent_defaults_follow_defaults_block),
        cmocka_unit_test(test_scalar_typing),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_providers_list),
        cmocka_unit_test(test_three_errors_reported_together),
        cmocka_unit_test(test_diags_optional),
        cmocka_unit_test(test_diag_format),
        cmocka_unit_test(test_oversize_text),
        T(test_load_file_errors),
        T(test_reload_keeps_good_config),
        cmocka_unit_test(test_alias_expansion_guard),
        T(test_find_path),
    };
    enum { N_FIXED = sizeof fixed / sizeof fixed[0], N_BAD = sizeof bad_cases / sizeof bad_cases[0] };
    static struct CMUnitTest tests[N_FIXED + N_BAD];
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < N_BAD; i++)
        tests[N_FIXED + i] = (struct CMUnitTest){bad_cases[i].name, test_bad_case, NULL, NULL, (void *)&bad_cases[i]};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
