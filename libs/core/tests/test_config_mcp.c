/* test_config_mcp.c -- the mcp_servers section of config.yaml: stdio and HTTP servers read
 * with their arguments, environment and headers; every mistake named with its line. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_servers_are_read),
        cmocka_unit_test(test_mistakes_are_named),
        cmocka_unit_test(test_settings_for_the_other_transport_warn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
