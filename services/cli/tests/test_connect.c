/* test_connect.c -- `mindroom connect` as a process: the whole pairing round trip against a
 * running mindroom-provisioning (redis-server, test homeserver), refusals with their next step,
 * and, against a stub service, response validation, export quoting and owner placeholders. */
#include "cli_harness.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <pthread.h>

#include "mindroom/config.h"
#include "mindroom/dotenv.h"
#include "mindroom/fsutil.h"
#include "mindroom/http.h"
#include "prov_stack.h"

#define API "/v1/local-mindroom"

/* A provisioning service that answers every request with a set status and body. */
typedef struct stub {
    mr_http_server *srv;
    char url[64];
    pthread_mutex_t mu;
    int status;
    char body[1024];
    int requests;
    char last_path[256];
    char last_body[2048];
} stub;

static struct {
    prov_stack st;
    prov_proc prov;
    stub stub;
    int users;
} G;

static mr_http_response *stub_handle(void *ctx, const mr_http_request *req)
{
    stub *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->requests++;
    snprintf(s->last_path, sizeof s->last_path, "%s", req->path);
    snprintf(s->last_body, sizeof s->last_body, "%s", req->body ? req->body : "");
    mr_http_response *r = mr_http_reply(s->status, "application/json", s->body, strlen(s->body));
    pthread_mutex_unlock(&s->mu);
    return r;
}

static void stub_answer(int status, const char *body)
{
    pthread_mutex_lock(&G.stub.mu);
    G.stub.status = status;
    snprintf(G.stub.body, sizeof G.stub.body, "%s", body);
    G.stub.requests = 0;
    G.stub.last_body[0] = '\0';
    pthread_mutex_unlock(&G.stub.mu);
}

static int group_setup(void **state)
{
    (void)state;
    mr_err err = {0};
    pthread_mutex_init(&G.stub.mu, NULL);
    mr_http_server_opts so = {.listen = "127.0.0.1:0"};
    if (prov_stack_start(&G.st, &err) != MR_OK || prov_proc_start(&G.st, "prov", 0, NULL, &G.prov, &err) != MR_OK ||
        mr_http_server_start(&so, stub_handle, &G.stub, &G.stub.srv, &err) != MR_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    snprintf(G.stub.url, sizeof G.stub.url, "http://127.0.0.1:%d", mr_http_server_port(G.stub.srv));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_http_server_stop(G.stub.srv);
    int rc = prov_proc_stop(&G.prov, &err) == MR_OK ? 0 : -1;
    if (rc)
        fprintf(stderr, "teardown: %s\n", err.msg);
    prov_stack_stop(&G.st, &err);
    pthread_mutex_destroy(&G.stub.mu);
    return rc;
}

static void new_user(char *token, size_t cap, char *user_id, size_t id_cap)
{
    char name[32];
    snprintf(name, sizeof name, "owner%d", ++G.users);
    mr_err err = {0};
    if (prov_matrix_user(&G.st, name, token, cap, &err) != MR_OK)
        fail_msg("%s", err.msg);
    snprintf(user_id, id_cap, "@%s:localhost", name);
}

static void pair_code(const char *token, char *code, char *session)
{
    mr_err err = {0};
    if (prov_pair_start(&G.prov, token, code, session, &err) != MR_OK)
        fail_msg("%s", err.msg);
}

static void expect_ok(const cli_run *r)
{
    if (r->status != 0)
        fail_msg("exit %d\nstdout:\n%s\nstderr:\n%s", r->status, r->out, r->err);
}

static mr_dotenv read_env(sandbox *sb)
{
    mr_dotenv env = {0};
    mr_err err = {0};
    if (mr_dotenv_read(sb_path(sb, ".env"), false, &env, &err) != MR_OK)
        fail_msg("%s", err.msg);
    return env;
}

static void expected_fingerprint(const char *config_path, char *out, size_t cap)
{
    char host[256], seed[PATH_MAX + 300];
    gethostname(host, sizeof host);
    snprintf(seed, sizeof seed, "%s:%s", host, config_path);
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(seed, strlen(seed), md, &len, EVP_sha256(), NULL);
    size_t o = (size_t)snprintf(out, cap, "sha256:");
    for (int i = 0; i < 32; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", md[i]);
}

/* The user's one connection, as the service lists it (caller decrefs). */
static json_t *only_connection(const char *token)
{
    char auth[400];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    prov_reply r = prov_call(G.prov.url, "GET", API "/connections", headers, NULL);
    assert_int_equal(r.status, 200);
    json_t *list = json_object_get(r.json, "connections");
    assert_int_equal(json_array_size(list), 1);
    json_t *c = json_incref(json_array_get(list, 0));
    prov_reply_clear(&r);
    return c;
}

/* ---- against the real service ---- */

static void test_round_trip_writes_env_and_owner(void **state)
{
    sandbox *sb = *state;
    cli_run r = run_cli(sb, "config", "init", "--path", sb->work);
    expect_ok(&r);
    cli_run_free(&r);
    char *before = slurp(sb_path(sb, ".env"));
    mr_dotenv initial = read_env(sb);
    char api_key[128];
    snprintf(api_key, sizeof api_key, "MINDROOM_API_KEY=%s", mr_dotenv_get(&initial, "MINDROOM_API_KEY"));
    mr_dotenv_free(&initial);
    char *initial_yaml = slurp(sb_path(sb, "config.yaml"));
    assert_non_null(strstr(initial_yaml, MR_CONFIG_OWNER_PLACEHOLDER));
    free(initial_yaml);

    char token[256], owner[64], code[64], session[64], sloppy[80], url[96];
    new_user(token, sizeof token, owner, sizeof owner);
    pair_code(token, code, session);
    snprintf(sloppy, sizeof sloppy, "  %s ", code);
    for (char *c = sloppy; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    snprintf(url, sizeof url, "%s/", G.prov.url);
    const char *config = sb_path(sb, "config.yaml");
    r = run_cli(sb, "connect", "--pair-code", sloppy, "--provisioning-url", url, "--path", config);
    expect_ok(&r);

    mr_dotenv env = read_env(sb);
    const char *id = mr_dotenv_get(&env, "MINDROOM_LOCAL_CLIENT_ID");
    const char *secret = mr_dotenv_get(&env, "MINDROOM_LOCAL_CLIENT_SECRET");
    const char *ns = mr_dotenv_get(&env, "MINDROOM_NAMESPACE");
    assert_string_equal(mr_dotenv_get(&env, "MINDROOM_PROVISIONING_URL"), G.prov.url);
    assert_string_equal(mr_dotenv_get(&env, "MINDROOM_OWNER_USER_ID"), owner);
    assert_int_equal(strlen(id), 24);
    assert_int_equal(strlen(secret), 43);
    assert_int_equal(strlen(ns), 8);
    /* The secret goes to .env only, never to the terminal. */
    assert_null(strstr(r.out, secret));
    assert_null(strstr(r.err, secret));
    char expect_line[400];
    snprintf(expect_line, sizeof expect_line, "Paired with %s as connection %s (namespace %s, owner %s).\n",
             G.prov.url, id, ns, owner);
    assert_true(starts_with(r.out, expect_line));
    cli_run_free(&r);

    /* Upserted in place: one line per key, every other line kept. */
    char *text = slurp(sb_path(sb, ".env"));
    assert_int_equal(count_of(text, "\nMINDROOM_NAMESPACE="), 1);
    assert_int_equal(count_of(text, "\nMINDROOM_PROVISIONING_URL="), 1);
    assert_non_null(strstr(text, api_key));
    assert_non_null(strstr(text, "OPENAI_API_KEY=your-openai-key-here"));
    assert_true(strlen(text) > strlen(before));
    struct stat st;
    assert_int_equal(stat(sb_path(sb, ".env"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(text);
    free(before);

    char *yaml = slurp(config);
    char quoted[80];
    snprintf(quoted, sizeof quoted, "\"%s\"", owner);
    assert_null(strstr(yaml, MR_CONFIG_OWNER_PLACEHOLDER));
    assert_true(count_of(yaml, quoted) >= 3);
    free(yaml);
    r = run_cli(sb, "config", "validate", config);
    expect_ok(&r);
    cli_run_free(&r);

    /* The service saw this install's name and fingerprint. */
    char host[256], fingerprint[80];
    gethostname(host, sizeof host);
    expected_fingerprint(config, fingerprint, sizeof fingerprint);
    json_t *c = only_connection(token);
    assert_string_equal(json_string_value(json_object_get(c, "client_name")), host);
    assert_string_equal(json_string_value(json_object_get(c, "fingerprint")), fingerprint);
    assert_string_equal(json_string_value(json_object_get(c, "id")), id);
    json_decref(c);

    /* And the credentials work: register-agent inside the namespace. */
    char hid[128], hsecret[128], body[512];
    snprintf(hid, sizeof hid, "X-Local-MindRoom-Client-Id: %s", id);
    snprintf(hsecret, sizeof hsecret, "X-Local-MindRoom-Client-Secret: %s", secret);
    snprintf(body, sizeof body, "{\"homeserver\":\"%s\",\"username\":\"mindroom_mind_%s\",\"password\":\"pw-1\"}",
             G.st.hs.url, ns);
    const char *headers[] = {hid, hsecret, NULL};
    prov_reply rep = prov_call(G.prov.url, "POST", API "/register-agent", headers, body);
    assert_int_equal(rep.status, 200);
    assert_string_equal(json_string_value(json_object_get(rep.json, "status")), "created");
    prov_reply_clear(&rep);
    mr_dotenv_free(&env);
}

static void test_no_persist_env_prints_exports_only(void **state)
{
    sandbox *sb = *state;
    char token[256], owner[64], code[64], session[64];
    new_user(token, sizeof token, owner, sizeof owner);
    pair_code(token, code, session);
    const char *config = sb_path(sb, "config.yaml");
    cli_run r = run_cli(sb, "connect", "--pair-code", code, "--provisioning-url", G.prov.url, "--client-name",
                        "my box", "--no-persist-env", "--path", config);
    expect_ok(&r);
    char first[160], last[160];
    snprintf(first, sizeof first, "export MINDROOM_PROVISIONING_URL=%s\nexport MINDROOM_LOCAL_CLIENT_ID=", G.prov.url);
    snprintf(last, sizeof last, "\nexport MINDROOM_OWNER_USER_ID=%s\n", owner);
    assert_true(starts_with(r.out, first));
    assert_non_null(strstr(r.out, "\nexport MINDROOM_LOCAL_CLIENT_SECRET="));
    assert_non_null(strstr(r.out, "\nexport MINDROOM_NAMESPACE="));
    assert_non_null(strstr(r.out, last));
    assert_int_equal(count_of(r.out, "\n"), 5);
    assert_string_equal(r.err, "");
    cli_run_free(&r);
    /* Nothing written. */
    assert_false(mr_fs_exists(sb_path(sb, ".env")));
    assert_false(mr_fs_exists(config));
    json_t *c = only_connection(token);
    assert_string_equal(json_string_value(json_object_get(c, "client_name")), "my box");
    json_decref(c);
}

/* Runs connect with code against the real service and expects exit 1 with both lines. */
static void expect_refusal(sandbox *sb, const char *code, const char *first_line, const char *hint)
{
    cli_run r = run_cli(sb, "connect", "--pair-code", code, "--provisioning-url", G.prov.url, "--path",
                        sb_path(sb, "config.yaml"));
    if (r.status != 1 || !starts_with(r.err, first_line) || !strstr(r.err, hint))
        fail_msg("exit %d, stderr:\n%s", r.status, r.err);
    assert_string_equal(r.out, "");
    cli_run_free(&r);
    assert_false(mr_fs_exists(sb_path(sb, ".env")));
}

static void test_refusals_say_what_to_do(void **state)
{
    sandbox *sb = *state;
    char token[256], owner[64], used[64], old[64], fresh[64], session[64];
    new_user(token, sizeof token, owner, sizeof owner);
    pair_code(token, used, session);
    char body[256];
    snprintf(body, sizeof body,
             "{\"pair_code\":\"%s\",\"client_name\":\"other\",\"client_pubkey_or_fingerprint\":\"sha256:00\"}", used);
    prov_reply rep = prov_call(G.prov.url, "POST", API "/pair/complete", NULL, body);
    assert_int_equal(rep.status, 200);
    prov_reply_clear(&rep);
    expect_refusal(sb, used, "mindroom connect: Pairing failed (409): Pair code already used",
                   "\nEach code pairs one install. Generate a new pair code in the chat app");

    /* A newer code makes the older one expire. */
    pair_code(token, old, session);
    pair_code(token, fresh, session);
    expect_refusal(sb, old, "mindroom connect: Pairing failed (410): Pair code expired",
                   "\nThe code expired (codes last 10 minutes, and only the newest one counts). Generate a new "
                   "pair code in the chat app (Settings -> Local MindRoom) and run connect again.\n");
    expect_refusal(sb, "ZZZZ-9999", "mindroom connect: Pairing failed (404): Pair code not found",
                   "\nCheck the code for typos");
}

static void test_unreachable_service(void **state)
{
    sandbox *sb = *state;
    cli_run r = run_cli(sb, "connect", "--pair-code", "ABCD-EFGH", "--provisioning-url", "http://127.0.0.1:1");
    assert_int_equal(r.status, 1);
    assert_true(starts_with(r.err, "mindroom connect: could not reach the provisioning service: "));
    assert_non_null(strstr(r.err, "http://127.0.0.1:1/v1/local-mindroom/pair/complete"));
    assert_non_null(strstr(r.err, "Check --provisioning-url (or MINDROOM_PROVISIONING_URL)"));
    cli_run_free(&r);
    r = run_cli(sb, "connect", "--pair-code", "ABCD-EFGH", "--provisioning-url", "ftp://example.org");
    assert_int_equal(r.status, 2);
    assert_true(starts_with(r.err, "mindroom connect: --provisioning-url 'ftp://example.org' is not an http://"));
    cli_run_free(&r);
}

/* ---- against the stub ---- */

static void test_code_format_is_checked_before_any_request(void **state)
{
    sandbox *sb = *state;
    stub_answer(200, "{}");
    static const char *const bad[] = {"ABCD", "ABCDEFGH", "ABCD-EFG!", "ABCD_EFGH", "ABCD-EFGHI", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cli_run r = run_cli(sb, "connect", "--pair-code", bad[i], "--provisioning-url", G.stub.url);
        assert_int_equal(r.status, 1);
        assert_string_equal(r.err, "mindroom connect: Invalid pair code format. Expected ABCD-EFGH.\n");
        cli_run_free(&r);
    }
    assert_int_equal(G.stub.requests, 0);
    assert_false(mr_fs_exists(sb_path(sb, ".env")));
}

static void test_response_is_validated_and_quoted(void **state)
{
    sandbox *sb = *state;
    char env_text[160];
    /* The URL comes from .env when neither flag nor environment gives it. */
    snprintf(env_text, sizeof env_text, "MINDROOM_PROVISIONING_URL=%s/\n", G.stub.url);
    spit(sb_path(sb, ".env"), env_text);
    stub_answer(200, "{\"client_id\":\"cid-1\",\"client_secret\":\"s e'cret\",\"namespace\":\"BAD!\","
                     "\"owner_user_id\":\"not an id\"}");
    cli_run r = run_cli(sb, "connect", "--pair-code", "abcd-efgh", "--no-persist-env", "--path", sb->work);
    expect_ok(&r);
    char expected[512];
    snprintf(expected, sizeof expected,
             "export MINDROOM_PROVISIONING_URL=%s\n"
             "export MINDROOM_LOCAL_CLIENT_ID=cid-1\n"
             "export MINDROOM_LOCAL_CLIENT_SECRET='s e'\"'\"'cret'\n"
             "export MINDROOM_NAMESPACE=''\n",
             G.stub.url);
    assert_string_equal(r.out, expected);
    assert_non_null(strstr(r.err, "warning: ignoring the namespace 'BAD!'"));
    assert_non_null(strstr(r.err, "warning: ignoring the owner 'not an id'"));
    cli_run_free(&r);

    /* What was sent: the normalised code, the host name, a sha256 fingerprint. */
    assert_string_equal(G.stub.last_path, API "/pair/complete");
    json_error_t jerr;
    json_t *sent = json_loads(G.stub.last_body, 0, &jerr);
    assert_non_null(sent);
    char host[256];
    gethostname(host, sizeof host);
    assert_string_equal(json_string_value(json_object_get(sent, "pair_code")), "ABCD-EFGH");
    assert_string_equal(json_string_value(json_object_get(sent, "client_name")), host);
    const char *fp = json_string_value(json_object_get(sent, "client_pubkey_or_fingerprint"));
    assert_int_equal(strlen(fp), 71);
    assert_true(starts_with(fp, "sha256:"));
    assert_int_equal(strspn(fp + 7, "0123456789abcdef"), 64);
    json_decref(sent);

    stub_answer(200, "{\"client_id\":\"cid-1\",\"client_secret\":\"x\",\"namespace\":\"AB3K9XYZ\"}");
    r = run_cli(sb, "connect", "--pair-code", "ABCD-EFGH", "--no-persist-env", "--path", sb->work);
    expect_ok(&r);
    assert_non_null(strstr(r.out, "\nexport MINDROOM_NAMESPACE=ab3k9xyz\n"));
    assert_null(strstr(r.out, "OWNER"));
    cli_run_free(&r);

    stub_answer(200, "{\"client_id\":\"cid-1\"}");
    r = run_cli(sb, "connect", "--pair-code", "ABCD-EFGH", "--path", sb->work);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "answered without client_id and client_secret; check --provisioning-url"));
    cli_run_free(&r);

    stub_answer(422, "{\"detail\":[{\"loc\":[\"body\",\"client_name\"],\"msg\":\"String should have at most 120 "
                     "characters\"}]}");
    r = run_cli(sb, "connect", "--pair-code", "ABCD-EFGH", "--path", sb->work);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "mindroom connect: Pairing failed (422): body.client_name: String should have at "
                               "most 120 characters\nCheck --client-name (1 to 120 characters) and the code.\n");
    cli_run_free(&r);
    /* .env is as the test wrote it: failures and --no-persist-env write nothing. */
    char *now = slurp(sb_path(sb, ".env"));
    assert_string_equal(now, env_text);
    free(now);
}

static void test_owner_replaces_placeholders_in_includes(void **state)
{
    sandbox *sb = *state;
    make_dirs(sb_path(sb, "auth"));
    spit(sb_path(sb, "config.yaml"), "matrix_room_access:\n"
                                     "  room_admins: [__MINDROOM_OWNER_USER_ID_FROM_PAIRING__]\n"
                                     "authorization: !include auth/authz.yaml\n"
                                     "legacy: \"__PLACEHOLDER__\"\n");
    spit(sb_path(sb, "auth/authz.yaml"), "global_users: ['__MINDROOM_OWNER_USER_ID_FROM_PAIRING__']\n");
    spit(sb_path(sb, ".env"), "# mine\nexport MINDROOM_NAMESPACE=old\nOTHER=1\n");
    stub_answer(200, "{\"client_id\":\"cid-2\",\"client_secret\":\"sec-2\",\"namespace\":\"ab3k9xyz\","
                     "\"owner_user_id\":\"@alice:example.org\"}");
    cli_run r = run_cli(sb, "connect", "--pair-code", "ABCD-EFGH", "--provisioning-url", G.stub.url, "--path",
                        sb->work);
    expect_ok(&r);
    assert_non_null(strstr(r.out, "Set the owner @alice:example.org in"));
    assert_non_null(strstr(r.out, "(3 placeholders).\nNext: mindroom run\n"));
    cli_run_free(&r);
    char *yaml = slurp(sb_path(sb, "config.yaml"));
    assert_string_equal(yaml, "matrix_room_access:\n"
                              "  room_admins: [\"@alice:example.org\"]\n"
                              "authorization: !include auth/authz.yaml\n"
                              "legacy: \"@alice:example.org\"\n");
    free(yaml);
    char *inc = slurp(sb_path(sb, "auth/authz.yaml"));
    assert_string_equal(inc, "global_users: [\"@alice:example.org\"]\n");
    free(inc);
    char expected[400], *env = slurp(sb_path(sb, ".env"));
    snprintf(expected, sizeof expected,
             "# mine\nMINDROOM_NAMESPACE=ab3k9xyz\nOTHER=1\nMINDROOM_PROVISIONING_URL=%s\n"
             "MINDROOM_LOCAL_CLIENT_ID=cid-2\nMINDROOM_LOCAL_CLIENT_SECRET=sec-2\n"
             "MINDROOM_OWNER_USER_ID=@alice:example.org\n",
             G.stub.url);
    assert_string_equal(env, expected);
    free(env);
}

static void test_symlinked_env_is_refused(void **state)
{
    sandbox *sb = *state;
    spit(sb_path(sb, "../real.env"), "A=1\n");
    assert_int_equal(symlink(sb_path(sb, "../real.env"), sb_path(sb, ".env")), 0);
    stub_answer(200, "{\"client_id\":\"cid-3\",\"client_secret\":\"sec-3\",\"namespace\":\"ab3k9xyz\"}");
    cli_run r = run_cli(sb, "connect", "--pair-code", "ABCD-EFGH", "--provisioning-url", G.stub.url, "--path",
                        sb->work);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "symbolic link"));
    assert_non_null(strstr(r.err, "run connect again with a new code, or with --no-persist-env"));
    cli_run_free(&r);
    char *real = slurp(sb_path(sb, "../real.env"));
    assert_string_equal(real, "A=1\n");
    free(real);
}

static void test_usage_and_help(void **state)
{
    sandbox *sb = *state;
    char *text = expect_help_of(sb, "Usage: mindroom connect --pair-code ABCD-EFGH [options]\n", "connect");
    assert_non_null(strstr(text, "--no-persist-env"));
    free(text);
    expect_run(sb, 2,
               "mindroom connect: missing --pair-code (generate one in the chat app: Settings -> Local "
               "MindRoom); try 'mindroom connect --help'\n",
               (const char *const[]){"connect", NULL});
    expect_run(sb, 2, "mindroom connect: unexpected argument 'extra'; try 'mindroom connect --help'\n",
               (const char *const[]){"connect", "--pair-code", "ABCD-EFGH", "extra", NULL});
    expect_run(sb, 2, "mindroom: unexpected argument 'x' after 'help connect'; try 'mindroom --help'\n",
               (const char *const[]){"help", "connect", "x", NULL});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        SANDBOXED(test_round_trip_writes_env_and_owner),
        SANDBOXED(test_no_persist_env_prints_exports_only),
        SANDBOXED(test_refusals_say_what_to_do),
        SANDBOXED(test_unreachable_service),
        SANDBOXED(test_code_format_is_checked_before_any_request),
        SANDBOXED(test_response_is_validated_and_quoted),
        SANDBOXED(test_owner_replaces_placeholders_in_includes),
        SANDBOXED(test_symlinked_env_is_refused),
        SANDBOXED(test_usage_and_help),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
