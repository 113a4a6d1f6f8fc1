/* test_selfhosted.c -- a self-hosted install with no hand edits beyond the .env lines a person
 * fills in: `config init --matrix-server self-hosted --homeserver URL --owner @alice:localhost`,
 * then OPENAI_API_KEY, OPENAI_BASE_URL (the model stub) and one registration secret, and
 * `mindroom run` answers alice's message. Once with Synapse's shared-secret registration, once
 * with a registration token. A model that holds its answer shows the agent typing at the
 * homeserver meanwhile, and no longer once the answer is in. */
#include "cli_harness.h"
#include "selfhosted_harness.h"

#include <signal.h>
#include <time.h>

#include "mindroom/matrix.h"

#define DEADLINE_MS 60000
#define POLL_MS 200
#define MIND "@mindroom_mind:localhost"
#define MESSAGE "hello from alice, self-hosted"
#define HELD "a question the model takes its time over"

static struct {
    mr_hs_peer hs;
    bool hs_up;
    mr_model_stub stub;
    bool stub_up;
    pid_t run;
    char run_log[PATH_MAX];
    mr_matrix *alice;
} F;

static int setup(void **state)
{
    memset(&F, 0, sizeof F);
    sh_clear_environment();
    return sandbox_setup(state);
}

/* Leaves no process behind, whatever the test got to. */
static int teardown(void **state)
{
    int failed = 0;
    mr_err err = {0};
    if (F.run > 0) {
        mr_tp_stop_if_running(F.run);
        char *log = mr_tp_read_text(F.run_log);
        fprintf(stderr, "--- mindroom run log:\n%s\n", log);
        free(log);
    }
    mr_matrix_free(F.alice);
    if (F.hs_up && mr_hs_peer_stop(&F.hs, &err) != MR_OK && ++failed)
        fprintf(stderr, "%s\n", err.msg);
    if (F.stub_up && mr_model_stub_stop(&F.stub, &err) != MR_OK && ++failed)
        fprintf(stderr, "%s\n", err.msg);
    return sandbox_teardown(state) || failed ? -1 : 0;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void start_peers(const mr_hs_peer_opts *hs_opts)
{
    mr_err err = {0};
    sh_check(mr_hs_peer_start(hs_opts, &F.hs, &err), &err, "starting the test homeserver");
    F.hs_up = true;
    sh_check(mr_model_stub_start(SH_KEY, NULL, &F.stub, &err), &err, "starting the model stub");
    F.stub_up = true;
    mr_matrix_opts mo = {.homeserver = F.hs.url};
    sh_check(mr_matrix_new(&mo, &F.alice, &err), &err, "alice's client");
}

static void start_run(sandbox *sb)
{
    snprintf(F.run_log, sizeof F.run_log, "%s/run.log", sb->root);
    char *argv[] = {getenv("MINDROOM_BIN"), "run", "--config", (char *)sb_path(sb, "config.yaml"), NULL};
    assert_non_null(argv[0]);
    mr_err err = {0};
    sh_check(mr_tp_spawn(argv, F.run_log, &F.run, &err), &err, "starting mindroom run");
    sh_check(mr_tp_wait_in_file(F.run_log, "run: ready", 1, DEADLINE_MS, F.run, &err), &err,
             "waiting for mindroom run to be ready");
}

/* Joins the room the agents invited alice to; the invite may still be on its way. */
static void join_personal(char room_id[MR_MATRIX_ID_SIZE])
{
    long long deadline = now_ms() + DEADLINE_MS;
    mr_err err = {0};
    while (mr_matrix_join(F.alice, "#personal:localhost", room_id, &err) != MR_OK) {
        if (now_ms() > deadline)
            fail_msg("alice could not join #personal:localhost: %s", err.msg);
        pause_ms(POLL_MS);
    }
}

/* The text of an event as a client shows it, an edit's new content included. */
static const char *body_of(json_t *ev)
{
    json_t *content = json_object_get(ev, "content");
    json_t *fresh = json_object_get(json_object_get(content, "m.new_content"), "body");
    return json_string_value(fresh ? fresh : json_object_get(content, "body"));
}

static bool mind_answered(const char *room_id, const char *message)
{
    json_t *page = NULL;
    mr_err err = {0};
    bool found = false;
    if (mr_matrix_messages(F.alice, room_id, NULL, NULL, 'b', 50, &page, &err) == MR_OK) {
        size_t i;
        json_t *ev;
        json_array_foreach(json_object_get(page, "chunk"), i, ev) {
            const char *sender = json_string_value(json_object_get(ev, "sender"));
            const char *body = body_of(ev);
            found |= sender && body && strcmp(sender, MIND) == 0 && strstr(body, "Echo: ") &&
                     strstr(body, message);
        }
    }
    json_decref(page);
    return found;
}

/* Whether alice sees the mind agent typing in the room (a sync without since: the room's typing
 * users as they are now). */
static bool mind_typing(const char *room_id)
{
    mr_matrix_sync_req req = {0};
    json_t *sync = NULL;
    mr_err err = {0};
    sh_check(mr_matrix_sync(F.alice, &req, &sync, &err), &err, "alice syncing");
    bool typing = mr_hs_peer_sync_typing(sync, room_id, MIND);
    json_decref(sync);
    return typing;
}

/* The model holds its answer: the agent shows typing (once past its typing delay) while it
 * waits, and stops once the answer is in. */
static void held_answer_shows_typing(const char *room_id)
{
    mr_err err = {0};
    sh_check(mr_model_stub_script(&F.stub, "{\"hold\": true}", &err), &err, "holding the answer");
    json_t *content = json_pack("{s:s, s:s}", "msgtype", "m.text", "body", HELD);
    sh_check(mr_matrix_send(F.alice, room_id, "m.room.message", "selfhosted-2", content, NULL, &err), &err,
             "alice sending");
    json_decref(content);
    long long deadline = now_ms() + DEADLINE_MS;
    while (!mind_typing(room_id)) {
        if (now_ms() > deadline)
            fail_msg(MIND " not typing within %d ms while the model held its answer", DEADLINE_MS);
        pause_ms(POLL_MS);
    }
    assert_false(mind_answered(room_id, HELD));
    sh_check(mr_model_stub_release(&F.stub, &err), &err, "releasing the answer");
    deadline = now_ms() + DEADLINE_MS;
    while (!mind_answered(room_id, HELD) || mind_typing(room_id)) {
        if (now_ms() > deadline)
            fail_msg(MIND " still typing or not answered %d ms after the model answered", DEADLINE_MS);
        pause_ms(POLL_MS);
    }
}

static void converse_and_stop(sandbox *sb)
{
    cli_run doctor = run_cli(sb, "doctor", "--config", sb_path(sb, "config.yaml"));
    if (doctor.status != 0)
        fail_msg("doctor finds the install unfit (exit %d):\n%s%s", doctor.status, doctor.out, doctor.err);
    cli_run_free(&doctor);

    start_run(sb);
    char room_id[MR_MATRIX_ID_SIZE];
    join_personal(room_id);
    json_t *content = json_pack("{s:s, s:s}", "msgtype", "m.text", "body", MESSAGE);
    mr_err err = {0};
    sh_check(mr_matrix_send(F.alice, room_id, "m.room.message", "selfhosted-1", content, NULL, &err), &err,
             "alice sending");
    json_decref(content);
    long long deadline = now_ms() + DEADLINE_MS;
    while (!mind_answered(room_id, MESSAGE)) {
        if (now_ms() > deadline)
            fail_msg("no answer from " MIND " within %d ms", DEADLINE_MS);
        pause_ms(POLL_MS);
    }
    held_answer_shows_typing(room_id);

    int status = 0;
    sh_check(mr_tp_kill_wait(F.run, SIGTERM, &status, &err), &err, "stopping mindroom run");
    F.run = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_shared_secret(void **state)
{
    sandbox *sb = *state;
    start_peers(&(mr_hs_peer_opts){.shared_secret = SH_SECRET});
    char uid[MR_MATRIX_ID_SIZE];
    mr_err err = {0};
    sh_check(mr_matrix_register_shared_secret(F.alice, SH_SECRET, "alice", "alice-password", "Alice", false,
                                              uid, &err),
             &err, "registering alice");
    assert_string_equal(uid, SH_OWNER);

    sh_init(sb, F.hs.url);
    sh_set_env(sb, (const mr_dotenv_kv[]){{"OPENAI_API_KEY", SH_KEY}, {"OPENAI_BASE_URL", F.stub.url},
                                          {"MATRIX_REGISTRATION_SHARED_SECRET", SH_SECRET}}, 3);
    converse_and_stop(sb);
}

static void test_registration_token(void **state)
{
    sandbox *sb = *state;
    start_peers(&(mr_hs_peer_opts){.registration_token = SH_TOKEN});
    /* allow_dummy: Synapse's token flow ends with m.login.dummy. */
    mr_matrix_register_req req = {.username = "alice", .password = "alice-password",
                                  .registration_token = SH_TOKEN, .allow_dummy = true};
    char uid[MR_MATRIX_ID_SIZE];
    mr_err err = {0};
    sh_check(mr_matrix_register(F.alice, &req, uid, &err), &err, "registering alice");
    assert_string_equal(uid, SH_OWNER);

    sh_init(sb, F.hs.url);
    sh_set_env(sb, (const mr_dotenv_kv[]){{"OPENAI_API_KEY", SH_KEY}, {"OPENAI_BASE_URL", F.stub.url},
                                          {"MATRIX_REGISTRATION_TOKEN", SH_TOKEN}}, 3);
    converse_and_stop(sb);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_shared_secret),
        T(test_registration_token),
    };
    return cmocka_run_group_tests_name("cli self-hosted", tests, NULL, NULL);
}
