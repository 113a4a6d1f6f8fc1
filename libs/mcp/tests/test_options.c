/* test_options.c -- the MCP client refuses bad options, naming them, and programs that are not
 * MCP servers fail with a clear error without hanging. Needs no Node.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mindroom/mcp.h"

static void expect_refused(const mr_mcp_server_opts *o, const char *want)
{
    mr_mcp_client *c = (mr_mcp_client *)1;
    mr_err err = {0};
    assert_int_equal(mr_mcp_client_new(o, &c, &err), MR_EINVAL);
    assert_null(c);
    if (!strstr(err.msg, want))
        fail_msg("got \"%s\", want it to contain \"%s\"", err.msg, want);
}

static void test_bad_options_are_named(void **state)
{
    (void)state;
    expect_refused(&(mr_mcp_server_opts){.command = "node"}, "name is empty");
    expect_refused(&(mr_mcp_server_opts){.name = "both", .command = "node", .url = "http://h/mcp"},
                   "both: set exactly one of command (stdio) and url (HTTP)");
    expect_refused(&(mr_mcp_server_opts){.name = "none"}, "none: set exactly one of command");
    expect_refused(&(mr_mcp_server_opts){.name = "ftp", .url = "ftp://h/mcp"},
                   "url \"ftp://h/mcp\" is not http:// or https://");
    const char *env[] = {"GOOD=1", "novalue", NULL};
    expect_refused(&(mr_mcp_server_opts){.name = "e", .command = "node", .env = env}, "env entry 2 is not NAME=value");
    const char *headers[] = {"Authorization: Bearer x\r\nX-Injected: 1", NULL};
    expect_refused(&(mr_mcp_server_opts){.name = "h", .url = "http://h/mcp", .headers = headers},
                   "header 1 is not \"Name: value\" on one line");
    expect_refused(&(mr_mcp_server_opts){.name = "t", .command = "node", .timeout_ms = -1},
                   "timeouts must not be negative");
}

/* `cat` sends our initialize request back: read as a request from the server, it gets "method
 * not found", which cat echoes too, so the handshake fails with the server's refusal. */
static void test_a_program_that_is_not_a_server(void **state)
{
    (void)state;
    mr_mcp_client *c = NULL;
    mr_err err = {0};
    assert_int_equal(mr_mcp_client_new(&(mr_mcp_server_opts){.name = "echoer", .command = "cat", .timeout_ms = 5000},
                                       &c, &err),
                     MR_OK);
    json_t *tools = NULL;
    assert_int_not_equal(mr_mcp_tools_list(c, &tools, &err), MR_OK);
    assert_null(tools);
    assert_non_null(strstr(err.msg, "MCP server echoer"));
    mr_mcp_client_free(c);
}

static void test_missing_and_exiting_programs(void **state)
{
    (void)state;
    mr_mcp_client *c = NULL;
    mr_err err = {0};
    const char *args[] = {"-c", "exit 3", NULL};
    assert_int_equal(mr_mcp_client_new(&(mr_mcp_server_opts){.name = "gone", .command = "sh", .args = args,
                                                             .restart_backoff_ms = 60000},
                                       &c, &err),
                     MR_OK);
    json_t *r = NULL;
    assert_int_equal(mr_mcp_tool_call(c, "echo", NULL, 5000, &r, &err), MR_EUNAVAIL);
    assert_non_null(strstr(err.msg, "MCP server gone"));
    /* Within the backoff nothing is started again. */
    assert_int_equal(mr_mcp_tool_call(c, "echo", NULL, 5000, &r, &err), MR_EUNAVAIL);
    assert_non_null(strstr(err.msg, "MCP server gone is down; the next start is in"));
    mr_mcp_client_free(c);

    assert_int_equal(mr_mcp_client_new(&(mr_mcp_server_opts){.name = "typo", .command = "no-such-mcp-server-here"},
                                       &c, &err),
                     MR_OK);
    assert_int_equal(mr_mcp_tool_call(c, "echo", NULL, 5000, &r, &err), MR_EUNAVAIL);
    assert_non_null(strstr(err.msg, "cannot start \"no-such-mcp-server-here\""));
    mr_mcp_client_free(c);
}

static void test_result_text(void **state)
{
    (void)state;
    json_t *r = json_loads("{\"content\":[{\"type\":\"text\",\"text\":\"first\"},"
                           "{\"type\":\"image\",\"mimeType\":\"image/png\",\"data\":\"AAAA\"},"
                           "{\"type\":\"resource_link\",\"uri\":\"file:///x\"},"
                           "{\"type\":\"resource\",\"resource\":{\"uri\":\"u\",\"text\":\"inline\"}},"
                           "{\"type\":\"strange\"}]}",
                           0, NULL);
    assert_non_null(r);
    mr_strbuf out = {0};
    assert_true(mr_mcp_result_text(r, &out));
    assert_string_equal(out.s, "first\n[image image/png, 4 bytes of base64]\n[resource file:///x]\ninline\n"
                               "[strange content]");
    mr_strbuf_free(&out);
    mr_strbuf_init(&out, 8);
    assert_false(mr_mcp_result_text(r, &out));
    assert_true(out.too_big);
    mr_strbuf_free(&out);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_options_are_named),
        cmocka_unit_test(test_a_program_that_is_not_a_server),
        cmocka_unit_test(test_missing_and_exiting_programs),
        cmocka_unit_test(test_result_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
