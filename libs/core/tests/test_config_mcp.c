/* test_config_mcp.c -- the sections of config.yaml that give agents outside tools: mcp_servers
 * (stdio and HTTP servers read with their arguments, environment and headers) and
 * oauth_providers (the OAuth 2.0 providers of oauth_api); every mistake named with its line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mindroom/config.h"

static mr_config *parse(const char *yaml, mr_config_diags *d, mr_code want)
{
    mr_config *cfg = NULL;
    mr_err err = {0};
    mr_code rc = mr_config_parse(yaml, strlen(yaml), "config.yaml", &cfg, d, &err);
    if (rc != want) {
        for (size_t i = 0; i < d->len; i++) {
            char line[512];
            mr_config_diag_format(d, i, line, sizeof line);
            print_error("%s\n", line);
        }
        fail_msg("got %d (%s), want %d", rc, err.msg, want);
    }
    return cfg;
}

static void expect_diag(const char *yaml, const char *want)
{
    mr_config_diags d;
    mr_config *cfg = parse(yaml, &d, MR_EINVAL);
    assert_null(cfg);
    char line[512] = "";
    bool found = false;
    for (size_t i = 0; i < d.len && !found; i++) {
        mr_config_diag_format(&d, i, line, sizeof line);
        found = strcmp(line, want) == 0;
    }
    if (!found)
        fail_msg("no diagnostic \"%s\" (last: \"%s\")", want, line);
    mr_config_diags_free(&d);
}

static void test_servers_are_read(void **state)
{
    (void)state;
    mr_config_diags d;
    mr_config *cfg = parse("mcp_servers:\n"
                           "  everything:\n"
                           "    command: npx\n"
                           "    args: [-y, '@modelcontextprotocol/server-everything', stdio]\n"
                           "    env:\n"
                           "      GITHUB_TOKEN: ${GITHUB_TOKEN}\n"
                           "      PORT: 3001\n"
                           "    timeout_seconds: 20\n"
                           "  remote_tools:\n"
                           "    url: https://tools.example.org/mcp\n"
                           "    headers:\n"
                           "      Authorization: Bearer ${TOOLS_TOKEN}\n",
                           &d, MR_OK);
    assert_int_equal(d.len, 0);
    assert_int_equal(cfg->n_mcp_servers, 2);
    const mr_mcp_server_cfg *e = &cfg->mcp_servers[0];
    assert_string_equal(e->name, "everything");
    assert_string_equal(e->command, "npx");
    assert_int_equal(e->args.len, 3);
    assert_string_equal(e->args.v[1], "@modelcontextprotocol/server-everything");
    assert_int_equal(e->env.len, 2);
    assert_string_equal(e->env.v[0], "GITHUB_TOKEN=${GITHUB_TOKEN}");
    assert_string_equal(e->env.v[1], "PORT=3001");
    assert_null(e->url);
    assert_int_equal(e->timeout_seconds, 20);
    const mr_mcp_server_cfg *r = &cfg->mcp_servers[1];
    assert_string_equal(r->url, "https://tools.example.org/mcp");
    assert_null(r->command);
    assert_int_equal(r->headers.len, 1);
    assert_string_equal(r->headers.v[0], "Authorization: Bearer ${TOOLS_TOKEN}");
    assert_int_equal(r->timeout_seconds, 0);
    mr_config_release(cfg);
    mr_config_diags_free(&d);
}

static void test_mistakes_are_named(void **state)
{
    (void)state;
    expect_diag("mcp_servers:\n  both:\n    command: npx\n    url: http://h/mcp\n",
                "config.yaml:3:5: mcp_servers.both: set exactly one of command (a program speaking MCP on stdio) "
                "and url (a streamable HTTP endpoint)");
    expect_diag("mcp_servers:\n  none:\n    timeout_seconds: 5\n",
                "config.yaml:3:5: mcp_servers.none: set exactly one of command (a program speaking MCP on stdio) "
                "and url (a streamable HTTP endpoint)");
    expect_diag("mcp_servers:\n  ftp:\n    url: ftp://h/mcp\n",
                "config.yaml:3:10: mcp_servers.ftp: url 'ftp://h/mcp' is not an http:// or https:// URL");
    expect_diag("mcp_servers:\n  e:\n    command: x\n    env:\n      1BAD: v\n",
                "config.yaml:5:7: mcp_servers.e.env.1BAD: '1BAD' is not a valid name: use letters, digits and _, "
                "not starting with a digit");
    expect_diag("mcp_servers:\n  e:\n    command: x\n    env:\n      A: [1, 2]\n",
                "config.yaml:5:10: mcp_servers.e.env.A: expected a string, got a list");
    expect_diag("mcp_servers:\n  h:\n    url: http://h/mcp\n    headers:\n      X-Token: \"a\\r\\nX-Injected: 1\"\n",
                "config.yaml:5:16: mcp_servers.h.headers.X-Token: the value holds a line break");
    expect_diag("mcp_servers:\n  h:\n    url: http://h/mcp\n    headers:\n      'Bad Name': v\n",
                "config.yaml:5:7: mcp_servers.h.headers[\"Bad Name\"]: 'Bad Name' is not a valid name: an HTTP header "
                "name");
    expect_diag("mcp_servers:\n  t:\n    command: x\n    timeout_seconds: 7200\n",
                "config.yaml:4:22: mcp_servers.t: timeout_seconds is 7200; it must be 1 to 3600");
    expect_diag("mcp_servers:\n  'no spaces':\n    command: x\n",
                "config.yaml:2:3: mcp_servers[\"no spaces\"]: 'no spaces' is not a valid MCP server name: use letters, "
                "digits, - and _");
}

static void test_settings_for_the_other_transport_warn(void **state)
{
    (void)state;
    mr_config_diags d;
    mr_config *cfg = parse("mcp_servers:\n  h:\n    url: http://h/mcp\n    args: [x]\n", &d, MR_OK);
    assert_int_equal(d.len, 1);
    char line[512];
    mr_config_diag_format(&d, 0, line, sizeof line);
    assert_string_equal(line, "config.yaml:3:5: warning: mcp_servers.h: args, env and cwd only apply to command "
                              "servers; this one has a url");
    mr_config_release(cfg);
    mr_config_diags_free(&d);
}

static void test_oauth_providers_are_read(void **state)
{
    (void)state;
    mr_config_diags d;
    mr_config *cfg = parse("oauth_providers:\n"
                           "  github:\n"
                           "    authorize_url: https://github.com/login/oauth/authorize\n"
                           "    token_url: https://github.com/login/oauth/access_token\n"
                           "    client_id: Iv1.abc\n"
                           "    scopes: [repo, 'read:user']\n"
                           "    api_base_url: https://api.github.com\n"
                           "  local:\n"
                           "    authorize_url: http://127.0.0.1:9000/authorize\n"
                           "    token_url: http://localhost:9000/token\n"
                           "    client_id: c\n"
                           "    client_secret_env: LOCAL_SECRET\n"
                           "    api_base_url: http://[::1]:9000/api\n",
                           &d, MR_OK);
    assert_int_equal(d.len, 0);
    assert_int_equal(cfg->n_oauth_providers, 2);
    const mr_oauth_provider_cfg *g = mr_config_oauth_provider(cfg, "github");
    assert_non_null(g);
    assert_string_equal(g->token_url, "https://github.com/login/oauth/access_token");
    assert_string_equal(g->client_id, "Iv1.abc");
    assert_string_equal(g->client_secret_env, "MINDROOM_OAUTH_GITHUB_CLIENT_SECRET");
    assert_int_equal(g->scopes.len, 2);
    assert_string_equal(g->scopes.v[1], "read:user");
    assert_string_equal(g->api_base_url, "https://api.github.com");
    assert_string_equal(mr_config_oauth_provider(cfg, "local")->client_secret_env, "LOCAL_SECRET");
    assert_null(mr_config_oauth_provider(cfg, "gitlab"));
    mr_config_release(cfg);
    mr_config_diags_free(&d);
}

#define OK_URLS "    authorize_url: https://p/a\n    token_url: https://p/t\n    api_base_url: https://p/api\n"

static void test_oauth_provider_mistakes_are_named(void **state)
{
    (void)state;
    expect_diag("oauth_providers:\n  gh:\n    authorize_url: https://p/a\n    token_url: https://p/t\n"
                "    api_base_url: https://p/api\n",
                "config.yaml:3:5: oauth_providers.gh: missing required key 'client_id'");
    expect_diag("oauth_providers:\n  gh:\n    client_id: c\n    authorize_url: https://p/a\n"
                "    api_base_url: https://p/api\n",
                "config.yaml:3:5: oauth_providers.gh: missing required key 'token_url'");
    expect_diag("oauth_providers:\n  gh:\n    client_id: c\n    authorize_url: http://p.example/a\n"
                "    token_url: https://p/t\n    api_base_url: https://p/api\n",
                "config.yaml:4:20: oauth_providers.gh.authorize_url: 'http://p.example/a' must be an https:// URL "
                "(http:// only to a loopback host)");
    expect_diag("oauth_providers:\n  gh:\n    client_id: c\n" OK_URLS "    client_secret_env: 9X\n",
                "config.yaml:7:24: oauth_providers.gh.client_secret_env: '9X' is not an environment variable name: "
                "use letters, digits and _, not starting with a digit");
    expect_diag("oauth_providers:\n  gh:\n    client_id: c\n" OK_URLS "    scopes: ['a b']\n",
                "config.yaml:7:13: oauth_providers.gh.scopes: scope 'a b' must be one non-empty token without "
                "spaces, quotes or backslashes");
    expect_diag("oauth_providers:\n  GitHub:\n    client_id: c\n" OK_URLS,
                "config.yaml:2:3: oauth_providers.GitHub: 'GitHub' is not a valid OAuth provider name: use 1 to 64 "
                "of a-z, 0-9 and _");
    expect_diag("oauth_providers: [github]\n",
                "config.yaml:1:18: oauth_providers: expected a mapping of OAuth provider names to settings, got a "
                "list");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_servers_are_read),
        cmocka_unit_test(test_mistakes_are_named),
        cmocka_unit_test(test_settings_for_the_other_transport_warn),
        cmocka_unit_test(test_oauth_providers_are_read),
        cmocka_unit_test(test_oauth_provider_mistakes_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
