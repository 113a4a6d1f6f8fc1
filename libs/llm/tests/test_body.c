/* test_body.c -- model configs resolved to URL and key, and the request bodies built from
 * prompts, tools and options; nothing here touches the network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/llm.h"

static mr_model_cfg model(const char *provider, const char *host, const char *key_env)
{
    return (mr_model_cfg){.name = "default", .provider = (char *)provider, .id = "model-x",
                          .host = (char *)host, .api_key_env = (char *)key_env,
                          .temperature = -1};
}

static void expect_url(mr_model_cfg m, const char *url)
{
    mr_llm_client *c = NULL;
    mr_err err = {0};
    assert_int_equal(mr_llm_client_new(&m, NULL, &c, &err), MR_OK);
    assert_string_equal(mr_llm_client_url(c), url);
    mr_llm_client_free(c);
}

static void test_urls(void **state)
{
    (void)state;
    setenv("OPENAI_API_KEY", "sk-env", 1);
    expect_url(model("openai", NULL, NULL), "https://api.openai.com/v1/chat/completions");
    expect_url(model("ollama", NULL, NULL), "http://localhost:11434/v1/chat/completions");
    expect_url(model("llama_cpp", NULL, NULL), "http://localhost:8080/v1/chat/completions");
    /* A host without a path gets /v1; one with a path is kept as it is. */
    expect_url(model("ollama", "http://gpu:11434/", NULL), "http://gpu:11434/v1/chat/completions");
    expect_url(model("openai", "https://proxy.example/openai/v2", NULL),
               "https://proxy.example/openai/v2/chat/completions");
    unsetenv("OPENAI_API_KEY");
}

static void expect_failure(mr_model_cfg m, mr_code code, const char *msg)
{
    mr_llm_client *c = NULL;
    mr_err err = {0};
    assert_int_equal(mr_llm_client_new(&m, NULL, &c, &err), code);
    assert_null(c);
    assert_string_equal(err.msg, msg);
}

static void test_providers_and_keys(void **state)
{
    (void)state;
    unsetenv("OPENROUTER_API_KEY");
    assert_string_equal(mr_llm_provider_find("groq")->key_env, "GROQ_API_KEY");
    assert_null(mr_llm_provider_find("ollama")->key_env);
    assert_null(mr_llm_provider_find("anthropic"));
    expect_failure(model("anthropic", NULL, NULL), MR_EINVAL,
                   "model default: provider anthropic is not supported yet (only "
                   "OpenAI-compatible providers are: openai, openrouter, ollama, llama_cpp, "
                   "vllm, deepseek, groq, cerebras)");
    expect_failure(model("acme", NULL, NULL), MR_EINVAL, "model default: unknown provider \"acme\"");
    expect_failure(model("openrouter", NULL, NULL), MR_EAUTH,
                   "model default (provider openrouter): the API key variable "
                   "OPENROUTER_API_KEY is not set");
    /* A variable named in the config must be set, even for a provider that needs no key. */
    unsetenv("MR_TEST_OLLAMA_KEY");
    expect_failure(model("ollama", NULL, "MR_TEST_OLLAMA_KEY"), MR_EAUTH,
                   "model default (provider ollama): the API key variable MR_TEST_OLLAMA_KEY "
                   "is not set");
    expect_failure(model("openai", "ftp://x", "HOME"), MR_EINVAL,
                   "model default: host \"ftp://x\" must be an http:// or https:// URL");
    mr_model_cfg noid = model("ollama", NULL, NULL);
    noid.id = "";
    expect_failure(noid, MR_EINVAL, "model default: id (the provider's model name) is empty");
}

/* Builds the body for req against a model of this provider. */
static json_t *body_for(const char *provider, double temperature, const mr_llm_request *req)
{
    mr_model_cfg m = model(provider, "http://127.0.0.1:9", NULL);
    m.temperature = temperature;
    mr_llm_client *c = NULL;
    setenv("OPENAI_API_KEY", "sk-env", 1);
    assert_int_equal(mr_llm_client_new(&m, NULL, &c, NULL), MR_OK);
    json_t *b = NULL;
    assert_int_equal(mr_llm_request_body(c, req, &b, NULL), MR_OK);
    mr_llm_client_free(c);
    unsetenv("OPENAI_API_KEY");
    return b;
}

static void assert_json(json_t *got, const char *want_text)
{
    json_error_t je;
    json_t *want = json_loads(want_text, 0, &je);
    if (!want)
        fail_msg("bad expected JSON: %s", je.text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
        print_error("got  %s\nwant %s\n", g, w);
        free(g);
        free(w);
        fail();
    }
    json_decref(want);
}

static void test_prompt(void **state)
{
    (void)state;
    static const char *const instructions[] = {"Be concise.", "Cite sources."};
    mr_llm_tool_call call = {.id = "call_1", .name = "search", .arguments = "{\"q\":\"x\"}"};
    mr_llm_message history[] = {
        {.role = MR_LLM_USER, .content = "find x"},
        {.role = MR_LLM_ASSISTANT, .tool_calls = &call, .n_tool_calls = 1},
        {.role = MR_LLM_TOOL, .content = "x is 1", .tool_call_id = "call_1"},
        {.role = MR_LLM_ASSISTANT, .content = "x is 1."},
    };
    mr_llm_request req = {.role = "Personal assistant", .instructions = instructions,
                          .n_instructions = 2, .context = "Today is Monday.",
                          .history = history, .n_history = 4, .user = "and y?"};
    json_t *b = body_for("ollama", -1, &req);
    assert_json(b, "{\"model\":\"model-x\",\"stream\":false,\"messages\":["
                   "{\"role\":\"system\",\"content\":\"<your_role>\\nPersonal assistant\\n"
                   "</your_role>\\n\\n<instructions>\\n- Be concise.\\n- Cite sources.\\n"
                   "</instructions>\\n\\nToday is Monday.\"},"
                   "{\"role\":\"user\",\"content\":\"find x\"},"
                   "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\","
                   "\"type\":\"function\",\"function\":{\"name\":\"search\",\"arguments\":"
                   "\"{\\\"q\\\":\\\"x\\\"}\"}}]},"
                   "{\"role\":\"tool\",\"content\":\"x is 1\",\"tool_call_id\":\"call_1\"},"
                   "{\"role\":\"assistant\",\"content\":\"x is 1.\"},"
                   "{\"role\":\"user\",\"content\":\"and y?\"}]}");
    json_decref(b);

    /* Nothing for the system message: none is sent. */
    mr_llm_request bare = {.user = "hi", .role = ""};
    b = body_for("ollama", -1, &bare);
    assert_json(b, "{\"model\":\"model-x\",\"stream\":false,\"messages\":"
                   "[{\"role\":\"user\",\"content\":\"hi\"}]}");
    json_decref(b);
}

static void test_options(void **state)
{
    (void)state;
    json_t *params = json_pack("{s:s, s:{s:{s:s}}, s:[s]}", "type", "object", "properties",
                               "q", "type", "string", "required", "q");
    json_t *schema = json_pack("{s:s}", "type", "object");
    mr_llm_tool tools[] = {{.name = "search", .description = "Search the web", .parameters = params},
                           {.name = "now"}};
    mr_llm_request req = {.user = "hi", .tools = tools, .n_tools = 2, .schema_name = "route",
                          .schema = schema, .max_tokens = 100, .stream = true};
    /* The model's temperature applies unless the request sets one; OpenAI gets its newer
     * max_completion_tokens. */
    json_t *b = body_for("openai", 0.5, &req);
    assert_json(b, "{\"model\":\"model-x\",\"stream\":true,\"stream_options\":"
                   "{\"include_usage\":true},\"temperature\":0.5,\"max_completion_tokens\":100,"
                   "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                   "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"search\","
                   "\"description\":\"Search the web\",\"parameters\":{\"type\":\"object\","
                   "\"properties\":{\"q\":{\"type\":\"string\"}},\"required\":[\"q\"]}}},"
                   "{\"type\":\"function\",\"function\":{\"name\":\"now\",\"parameters\":"
                   "{\"type\":\"object\",\"properties\":{}}}}],"
                   "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
                   "\"route\",\"schema\":{\"type\":\"object\"},\"strict\":true}}}");
    json_decref(b);
    /* tool_choice goes with tools only. */
    mr_llm_request none = {.user = "hi", .tools = tools, .n_tools = 1, .tool_choice = "none"};
    b = body_for("openai", -1, &none);
    assert_string_equal(json_string_value(json_object_get(b, "tool_choice")), "none");
    json_decref(b);
    none.n_tools = 0;
    b = body_for("openai", -1, &none);
    assert_null(json_object_get(b, "tool_choice"));
    json_decref(b);
    double zero = 0;
    mr_llm_request cold = {.user = "hi", .temperature = &zero, .max_tokens = 5};
    b = body_for("vllm", 0.5, &cold);
    assert_json(b, "{\"model\":\"model-x\",\"stream\":false,\"temperature\":0.0,"
                   "\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    json_decref(b);
    json_decref(params);
    json_decref(schema);
}

static void test_bad_requests(void **state)
{
    (void)state;
    mr_model_cfg m = model("ollama", NULL, NULL);
    mr_llm_client *c = NULL;
    assert_int_equal(mr_llm_client_new(&m, NULL, &c, NULL), MR_OK);
    json_t *b = NULL;
    mr_err err = {0};
    mr_llm_request empty = {.role = "x"};
    assert_int_equal(mr_llm_request_body(c, &empty, &b, &err), MR_EINVAL);
    assert_string_equal(err.msg, "model default: a request needs a user message or history");
    mr_llm_request bad_utf8 = {.user = "\xff\xfe"};
    assert_int_equal(mr_llm_request_body(c, &bad_utf8, &b, &err), MR_EINVAL);
    assert_null(b);
    mr_llm_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_providers_and_keys),
        cmocka_unit_test(test_prompt),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_bad_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
