/* test_send.c -- mindroom-gateway's matrix.send consumer: each request performed once however
 * often it is delivered (transaction IDs), every kind (room events, redactions, typing,
 * to-device), edits naming the message they replace by transaction ID, refused requests dropped
 * without stalling the queue (a room event's reported on matrix.send_failed), a cleartext
 * message refused in an encrypted room, a 429 storm survived, rooms sent side by side (a slow
 * room holds up no other), a SIGKILL after the send but before the acknowledgement causing
 * no second message, and typing notices off the rooms' lanes: one the homeserver holds holds up
 * no answer, those piling up behind it are folded into the last, and an "off" with nothing to
 * end costs no request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "gw_harness.h"


typedef struct fixture {
    gwt f;
    mr_matrix *alice;
    char lobby[MR_MATRIX_ID_SIZE];
} fixture;

/* The mind agent in the lobby, which is encrypted when the config says so. */
#define CONFIG_ENCRYPTED GWT_CONFIG_MIND "rooms:\n  lobby: {encrypted: true}\n"

static void start_with(fixture *x, const char *crash, const char *config)
{
    gwt_setup(&x->f, NULL, config);
    x->alice = gwt_human(&x->f, "alice");
    gwt_start(&x->f, crash);
    gwt_wait_ready(&x->f);
    gwt_room_id(&x->f, "#lobby:localhost", x->lobby);
    mr_err err = {0};
    if (mr_matrix_join(x->alice, x->lobby, NULL, &err) != MR_OK)
        fail_msg("%s", err.msg);
}

static void start(fixture *x, const char *crash)
{
    start_with(x, crash, GWT_CONFIG_MIND);
}

static void finish(fixture *x)
{
    mr_matrix_free(x->alice);
    gwt_teardown(&x->f);
}

static json_t *request(const char *account, const char *kind, const char *txn, const char *room)
{
    json_t *r = json_pack("{s:i, s:s, s:s, s:s, s:s}", "v", 1, "type", "send_request", "account",
                          account, "kind", kind, "txn_id", txn);
    if (room)
        json_object_set_new(r, "room_id", json_string(room));
    return r;
}

static void send_text(fixture *x, const char *account, const char *room, const char *txn,
                      const char *body)
{
    json_t *r = request(account, "room_event", txn, room);
    json_object_set_new(r, "event_type", json_string("m.room.message"));
    json_object_set_new(r, "content", json_pack("{s:s, s:s}", "msgtype", "m.text", "body", body));
    gwt_publish(&x->f, "matrix.send", room, r);
}

/* The lobby's messages with this body as alice sees them; *event_id gets the last one's ID. */
static int count_in_room(fixture *x, const char *body, char event_id[MR_MATRIX_ID_SIZE])
{
    json_t *hist = NULL;
    mr_err err = {0};
    if (mr_matrix_messages(x->alice, x->lobby, NULL, NULL, 'b', 200, &hist, &err) != MR_OK)
        fail_msg("%s", err.msg);
    int n = 0;
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(hist, "chunk"), i, ev) {
        const char *b = json_string_value(json_object_get(json_object_get(ev, "content"), "body"));
        if (b && strcmp(b, body) == 0) {
            n++;
            if (event_id)
                snprintf(event_id, MR_MATRIX_ID_SIZE, "%s",
                         json_string_value(json_object_get(ev, "event_id")));
        }
    }
    json_decref(hist);
    return n;
}

/* Waits until body is in the lobby: requests of one room are handled in order (typing notices
 * aside, typing_lane.c), so all those published before it are done too. */
static void wait_for(fixture *x, const char *body)
{
    long long deadline = mr_clock_mono_ms() + 60000;
    while (count_in_room(x, body, NULL) == 0) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("\"%s\" never reached the lobby; see %s", body, x->f.log);
        mr_clock_sleep_ms(50);
    }
}

static void publish_typing(fixture *x, const char *txn, bool on)
{
    json_t *r = request(GWT_MIND, "typing", txn, x->lobby);
    json_object_set_new(r, "typing", json_boolean(on));
    if (on)
        json_object_set_new(r, "timeout_ms", json_integer(30000));
    gwt_publish(&x->f, "matrix.send", x->lobby, r);
}

/* Typing notices the homeserver holds right now (/_test/hold_typing). */
static int typing_waiting(fixture *x)
{
    json_t *st = gwt_hs_state(&x->f);
    int n = (int)json_integer_value(json_object_get(st, "typing_waiting"));
    json_decref(st);
    return n;
}

static void wait_typing_waiting(fixture *x, int n)
{
    long long deadline = mr_clock_mono_ms() + 60000;
    while (typing_waiting(x) != n) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("the homeserver never held %d typing notices; see %s", n, x->f.log);
        mr_clock_sleep_ms(20);
    }
}

/* Whether alice sees the mind agent typing in the lobby (a sync without since: the room's
 * typing users as they are now). */
static bool mind_typing(fixture *x)
{
    mr_matrix_sync_req req = {0};
    json_t *sync = NULL;
    mr_err err = {0};
    if (mr_matrix_sync(x->alice, &req, &sync, &err) != MR_OK)
        fail_msg("%s", err.msg);
    bool typing = mr_hs_peer_sync_typing(sync, x->lobby, GWT_MIND);
    json_decref(sync);
    return typing;
}

/* Waits until the typing requests sent and coalesced add up to n. */
static void wait_typing_handled(fixture *x, double n)
{
    long long deadline = mr_clock_mono_ms() + 60000;
    while (gwt_metric(&x->f, "mindroom_gateway_sends_total{kind=\"typing\",outcome=\"sent\"} ") +
               gwt_metric(&x->f, "mindroom_gateway_sends_total{kind=\"typing\",outcome=\"coalesced\"} ") < n) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("%g typing requests were never handled; see %s", n, x->f.log);
        mr_clock_sleep_ms(20);
    }
}

/* Once n typing requests are handled (sent or coalesced), `sent` of them went out. */
static void expect_typing_sent(fixture *x, double n, double sent)
{
    wait_typing_handled(x, n);
    assert_true(gwt_metric(&x->f, "mindroom_gateway_sends_total{kind=\"typing\",outcome=\"sent\"} ") == sent);
}

/* The end of a typing test: no one is left typing, and the gateway stops cleanly. */
static void finish_not_typing(fixture *x)
{
    assert_false(mind_typing(x));
    assert_int_equal(gwt_stop(&x->f), 0);
    finish(x);
}

/* The lobby's text messages, oldest first, as one string of bodies each ended by '|'. */
static void lobby_bodies(fixture *x, char *out, size_t cap)
{
    json_t *hist = NULL;
    mr_err err = {0};
    if (mr_matrix_messages(x->alice, x->lobby, NULL, NULL, 'b', 200, &hist, &err) != MR_OK)
        fail_msg("%s", err.msg);
    json_t *chunk = json_object_get(hist, "chunk");
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = json_array_size(chunk); i-- > 0;) {
        const char *b = json_string_value(json_object_get(json_object_get(json_array_get(chunk, i), "content"),
                                                          "body"));
        if (b && len < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s|", b);
    }
    json_decref(hist);
}

static void test_every_kind_once(void **state)
{
    (void)state;
    fixture x;
    start(&x, NULL);
    send_text(&x, GWT_ROUTER, x.lobby, "mr.ev1.0", "reply one");
    send_text(&x, GWT_ROUTER, x.lobby, "mr.ev1.0", "reply one");
    send_text(&x, GWT_MIND, x.lobby, "mr.ev2.0", "reply two");
    wait_for(&x, "reply two");
    char ev[MR_MATRIX_ID_SIZE];
    assert_int_equal(count_in_room(&x, "reply one", NULL), 1);
    assert_int_equal(count_in_room(&x, "reply two", ev), 1);
    /* Recorded for the agent, whose edits name the message they replace (proto/store.md). */
    char *sent = NULL;
    size_t sent_len = 0;
    mr_err serr = {0};
    assert_int_equal(mr_store_get(x.f.store, "sent:mr.ev2.0", &sent, &sent_len, &serr), MR_OK);
    assert_string_equal(sent, ev);
    free(sent);

    /* Redaction, typing and to-device, then a sentinel to know they were handled. */
    json_t *r = request(GWT_MIND, "redact", "mr.red.1", x.lobby);
    json_object_set_new(r, "redacts", json_string(ev));
    gwt_publish(&x.f, "matrix.send", x.lobby, r);
    r = request(GWT_MIND, "typing", "mr.ev3.typing", x.lobby);
    json_object_set_new(r, "typing", json_true());
    json_object_set_new(r, "timeout_ms", json_integer(20000));
    gwt_publish(&x.f, "matrix.send", x.lobby, r);
    r = request(GWT_ROUTER, "to_device", "mr.keys.1", NULL);
    json_object_set_new(r, "event_type", json_string("m.test.keys"));
    json_object_set_new(r, "messages", json_pack("{s:{s:{s:s}}}", "@alice:localhost", "*", "k", "v"));
    gwt_publish(&x.f, "matrix.send", x.lobby, r);
    send_text(&x, GWT_ROUTER, x.lobby, "mr.sentinel.1", "sentinel one");
    wait_for(&x, "sentinel one");
    /* The typing notice goes out beside the room's lane, not in its order. */
    wait_typing_handled(&x, 1);
    assert_int_equal(count_in_room(&x, "reply two", NULL), 0);
    mr_matrix_sync_req req = {0};
    json_t *sync = NULL;
    mr_err err = {0};
    assert_int_equal(mr_matrix_sync(x.alice, &req, &sync, &err), MR_OK);
    json_t *td = json_array_get(json_object_get(json_object_get(sync, "to_device"), "events"), 0);
    assert_string_equal(json_string_value(json_object_get(td, "type")), "m.test.keys");
    assert_string_equal(json_string_value(json_object_get(td, "sender")), GWT_ROUTER);
    json_t *typing = json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(
        sync, "rooms"), "join"), x.lobby), "ephemeral"), "events");
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(
                            json_array_get(typing, 0), "content"), "user_ids"), 0)), GWT_MIND);
    json_decref(sync);

    /* Refused for good: dropped with an error, and the queue goes on. */
    char closed[MR_MATRIX_ID_SIZE];
    json_t *body = json_object();
    assert_int_equal(mr_matrix_create_room(x.alice, body, closed, &err), MR_OK);
    json_decref(body);
    send_text(&x, GWT_ROUTER, closed, "mr.ev4.0", "into a closed room");
    send_text(&x, "@stranger:localhost", x.lobby, "mr.ev5.0", "from a stranger");
    gwt_publish(&x.f, "matrix.send", x.lobby, json_pack("{s:i, s:s}", "v", 1, "type", "turn"));
    /* The schema's rules beyond the fields a kind needs: a transaction ID is URL-safe. */
    send_text(&x, GWT_ROUTER, x.lobby, "bad txn", "with a space in its transaction ID");
    send_text(&x, GWT_ROUTER, x.lobby, "mr.sentinel.2", "sentinel two");
    wait_for(&x, "sentinel two");
    gwt_wait_log(&x.f, "dropped room_event request: PUT ", 1);
    gwt_assert_log(&x.f, "dropped: the account is not one this gateway manages", 1);
    gwt_assert_log(&x.f, "dropped: type: expected", 1);
    gwt_assert_log(&x.f, "dropped: txn_id: ", 1);
    assert_int_equal(count_in_room(&x, "from a stranger", NULL), 0);
    assert_int_equal(count_in_room(&x, "with a space in its transaction ID", NULL), 0);
    assert_true(gwt_metric(&x.f, "mindroom_gateway_matrix_errors_total{endpoint=\"send\",errcode=\"M_FORBIDDEN\"} ") == 1);
    assert_true(gwt_metric(&x.f, "mindroom_gateway_sends_total{kind=\"room_event\",outcome=\"sent\"} ") == 5);
    assert_true(gwt_metric(&x.f, "mindroom_gateway_sends_total{kind=\"room_event\",outcome=\"dropped\"} ") == 2);
    assert_true(gwt_metric(&x.f, "mindroom_gateway_sends_total{kind=\"invalid\",outcome=\"dropped\"} ") == 2);
    assert_true(gwt_metric(&x.f, "mindroom_gateway_send_seconds_count{kind=\"room_event\"} ") == 5);
    assert_int_equal(gwt_stop(&x.f), 0);
    finish(&x);
}

/* The edit's m.relates_to of the lobby message with this body. */
static json_t *relation_of(fixture *x, const char *body)
{
    json_t *hist = NULL, *rel = NULL;
    mr_err err = {0};
    if (mr_matrix_messages(x->alice, x->lobby, NULL, NULL, 'b', 200, &hist, &err) != MR_OK)
        fail_msg("%s", err.msg);
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(hist, "chunk"), i, ev) {
        json_t *c = json_object_get(ev, "content");
        const char *b = json_string_value(json_object_get(c, "body"));
        if (b && strcmp(b, body) == 0)
            rel = json_incref(json_object_get(c, "m.relates_to"));
    }
    json_decref(hist);
    return rel;
}

static void send_edit(fixture *x, const char *txn, const char *replaces, const char *body)
{
    json_t *r = request(GWT_MIND, "room_event", txn, x->lobby);
    char starred[128];
    snprintf(starred, sizeof starred, "* %s", body);
    json_object_set_new(r, "event_type", json_string("m.room.message"));
    json_object_set_new(r, "replaces_txn", json_string(replaces));
    json_object_set_new(r, "content", json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "msgtype", "m.text", "body",
                                                starred, "m.new_content", "msgtype", "m.text", "body", body,
                                                "m.relates_to", "rel_type", "m.replace"));
    gwt_publish(&x->f, "matrix.send", x->lobby, r);
}

/* An edit names the message it replaces by transaction ID; the gateway, which sent that message,
 * puts its event ID into the relation. One naming a transaction never sent is dropped with a
 * message saying so, and the room goes on. */
static void test_edit_names_the_message_by_txn(void **state)
{
    (void)state;
    fixture x;
    start(&x, NULL);
    send_text(&x, GWT_MIND, x.lobby, "mr.ev3.m", "first part \xe2\x8b\xaf");
    send_edit(&x, "mr.ev3.e1", "mr.ev3.m", "first part, grown");
    send_edit(&x, "mr.ev4.f", "mr.ev4.m", "an edit of nothing");
    send_text(&x, GWT_MIND, x.lobby, "mr.ev5.m", "after the edits");
    wait_for(&x, "after the edits");
    char first[MR_MATRIX_ID_SIZE];
    assert_int_equal(count_in_room(&x, "first part \xe2\x8b\xaf", first), 1);
    json_t *rel = relation_of(&x, "* first part, grown");
    assert_non_null(rel);
    assert_string_equal(json_string_value(json_object_get(rel, "rel_type")), "m.replace");
    assert_string_equal(json_string_value(json_object_get(rel, "event_id")), first);
    json_decref(rel);
    assert_int_equal(count_in_room(&x, "* an edit of nothing", NULL), 0);
    gwt_wait_log(&x.f, "replaces_txn mr.ev4.m: this gateway sent no message of that transaction ID", 1);
    assert_int_equal(gwt_stop(&x.f), 0);
    finish(&x);
}

/* GET and MGET calls Redis has answered so far (INFO commandstats): the gateway's store reads. */
static long long store_reads(fixture *x)
{
    redisContext *c = redisConnect("127.0.0.1", x->f.redis.port);
    if (!c || c->err)
        fail_msg("connecting to redis on port %d: %s", x->f.redis.port, c ? c->errstr : "out of memory");
    redisReply *rep = redisCommand(c, "INFO commandstats");
    if (!rep || rep->type != REDIS_REPLY_STRING)
        fail_msg("INFO commandstats: no answer");
    long long n = 0;
    static const char *const cmds[] = {"cmdstat_get:calls=", "cmdstat_mget:calls="};
    for (size_t i = 0; i < 2; i++) {
        const char *p = strstr(rep->str, cmds[i]);
        n += p ? strtoll(p + strlen(cmds[i]), NULL, 10) : 0;
    }
    freeReplyObject(rep);
    redisFree(c);
    return n;
}

/* A room event's send reads the store once: whether it went out already (sent:), the room's
 * encryption record and, for an edit, the replaced message's event ID, in one call. Edits of a
 * streamed answer are most of the sends; each read all three one after another. The sync loop's
 * reads of the same run are counted too: one per batch carrying the lobby's events, so at most
 * one per event it published or left off as an echo (two more for a batch read but not yet
 * counted at either end). */
static void test_send_reads_the_store_once(void **state)
{
    (void)state;
    fixture x;
    start(&x, NULL);
    send_text(&x, GWT_MIND, x.lobby, "mr.once.m", "streamed \xe2\x8b\xaf");
    wait_for(&x, "streamed \xe2\x8b\xaf");
    enum { EDITS = 10 };
    static const char published[] = "mindroom_gateway_events_published_total{topic=\"matrix.inbound\"} ",
                      echoes[] = "mindroom_gateway_echoes_unpublished_total ";
    long long before = store_reads(&x);
    double events_before = gwt_metric(&x.f, published) + gwt_metric(&x.f, echoes);
    char txn[32], body[32];
    for (int i = 1; i <= EDITS; i++) {
        snprintf(txn, sizeof txn, "mr.once.e%d", i);
        snprintf(body, sizeof body, "streamed, part %d", i);
        send_edit(&x, txn, "mr.once.m", body);
    }
    wait_for(&x, "* streamed, part 10");
    long long reads = store_reads(&x) - before;
    long long batches = (long long)(gwt_metric(&x.f, published) + gwt_metric(&x.f, echoes) - events_before) + 2;
    if (reads > EDITS + batches)
        fail_msg("%lld store reads for %d edits and the sync batches of at most %lld events; at most %lld were "
                 "expected", reads, EDITS, batches - 2, EDITS + batches);
    json_t *rel = relation_of(&x, "* streamed, part 10");
    char first[MR_MATRIX_ID_SIZE];
    assert_int_equal(count_in_room(&x, "streamed \xe2\x8b\xaf", first), 1);
    assert_string_equal(json_string_value(json_object_get(rel, "event_id")), first);
    json_decref(rel);
    assert_int_equal(gwt_stop(&x.f), 0);
    finish(&x);
}

static bool three_read(json_t *msgs, void *ctx)
{
    (void)ctx;
    return json_array_size(msgs) >= 3;
}

/* The send_failure of txn among msgs, checked to be the only one. */
static json_t *failure_of(json_t *msgs, const char *txn)
{
    json_t *found = NULL, *m;
    size_t i;
    json_array_foreach(msgs, i, m) {
        if (strcmp(json_string_value(json_object_get(m, "txn_id")), txn) == 0) {
            assert_null(found);
            found = m;
        }
    }
    assert_non_null(found);
    assert_string_equal(json_string_value(json_object_get(found, "type")), "send_failure");
    return found;
}

static void expect_failure(json_t *msgs, const char *txn, long status, const char *errcode, const char *reason)
{
    json_t *f = failure_of(msgs, txn);
    assert_int_equal(json_integer_value(json_object_get(f, "status")), status);
    assert_string_equal(json_string_value(json_object_get(f, "errcode")), errcode);
    assert_non_null(strstr(json_string_value(json_object_get(f, "reason")), reason));
}

/* A room event the homeserver refuses for good (413 over Synapse's 64 KiB, 403 in a room the
 * account is not in) or that edits a message never sent is reported on matrix.send_failed, once,
 * with the homeserver's status and errcode, for the agent to tell the person. */
static void test_refused_room_events_are_reported(void **state)
{
    (void)state;
    fixture x;
    start(&x, NULL);
    gwt_reader r;
    gwt_reader_open(&x.f, &r, "test-failed", "matrix.send_failed");
    size_t big = 70 * 1024;
    char *body = malloc(big + 1);
    assert_non_null(body);
    memset(body, 'x', big);
    body[big] = '\0';
    send_text(&x, GWT_MIND, x.lobby, "mr.big.m", body);
    free(body);
    char closed[MR_MATRIX_ID_SIZE];
    json_t *opts = json_object();
    mr_err err = {0};
    assert_int_equal(mr_matrix_create_room(x.alice, opts, closed, &err), MR_OK);
    json_decref(opts);
    send_text(&x, GWT_ROUTER, closed, "mr.closed.m", "into a closed room");
    send_edit(&x, "mr.ev9.f", "mr.ev9.m", "an edit of nothing");
    gwt_read_until(&r, three_read, NULL);
    expect_failure(r.msgs, "mr.big.m", 413, "M_TOO_LARGE", "too large");
    expect_failure(r.msgs, "mr.closed.m", 403, "M_FORBIDDEN", "not in room");
    expect_failure(r.msgs, "mr.ev9.f", 0, "", "replaces_txn mr.ev9.m");
    assert_string_equal(json_string_value(json_object_get(failure_of(r.msgs, "mr.big.m"), "room_id")), x.lobby);
    gwt_reader_check_proto(&r);
    gwt_reader_close(&r);
    assert_int_equal(gwt_stop(&x.f), 0);
    finish(&x);
}

static bool one_read(json_t *msgs, void *ctx)
{
    (void)ctx;
    return json_array_size(msgs) >= 1;
}

/* In an encrypted room a cleartext m.room.message is refused before any request and reported
 * (crypto never saw the room's m.room.encryption, so it passed the answer on as it came); what
 * crypto encrypted goes out. */
static void test_cleartext_refused_in_encrypted_room(void **state)
{
    (void)state;
    fixture x;
    start_with(&x, NULL, CONFIG_ENCRYPTED);
    gwt_reader r;
    gwt_reader_open(&x.f, &r, "test-failed", "matrix.send_failed");
    send_text(&x, GWT_MIND, x.lobby, "mr.clear.m", "a secret in clear");
    json_t *enc = request(GWT_MIND, "room_event", "mr.enc.m", x.lobby);
    json_object_set_new(enc, "event_type", json_string("m.room.encrypted"));
    json_object_set_new(enc, "content", json_pack("{s:s, s:s, s:s, s:s, s:s}", "algorithm", "m.megolm.v1.aes-sha2",
                                                  "sender_key", "c2VuZGVy", "ciphertext", "AwgA", "session_id",
                                                  "c2Vzc2lvbg", "device_id", "MINDDEV"));
    gwt_publish(&x.f, "matrix.send", x.lobby, enc);
    gwt_read_until(&r, one_read, NULL);
    expect_failure(r.msgs, "mr.clear.m", 0, "", "is encrypted");
    gwt_reader_check_proto(&r);
    gwt_reader_close(&r);
    /* The encrypted one went out after it: the homeserver has it, and never the cleartext. */
    gwt_wait_log(&x.f, "refusing to send an m.room.message in clear", 1);
    json_t *hist = NULL;
    mr_err err = {0};
    long long deadline = mr_clock_mono_ms() + 60000;
    bool found = false;
    while (!found) {
        assert_int_equal(mr_matrix_messages(x.alice, x.lobby, NULL, NULL, 'b', 200, &hist, &err), MR_OK);
        size_t i;
        json_t *ev;
        json_array_foreach(json_object_get(hist, "chunk"), i, ev)
            found = found || strcmp(json_string_value(json_object_get(ev, "type")), "m.room.encrypted") == 0;
        json_decref(hist);
        if (!found && mr_clock_mono_ms() > deadline)
            fail_msg("the encrypted message never reached the lobby; see %s", x.f.log);
        if (!found)
            mr_clock_sleep_ms(50);
    }
    assert_int_equal(count_in_room(&x, "a secret in clear", NULL), 0);
    assert_int_equal(gwt_stop(&x.f), 0);
    finish(&x);
}

static void test_rate_limit_storm(void **state)
{
    (void)state;
    fixture x;
    start(&x, NULL);
    gwt_hs_control(&x.f, "/_test/ratelimit", json_pack("{s:i, s:i}", "count", 25, "retry_after_ms", 10));
    static const char *const bodies[] = {"storm 1", "storm 2", "storm 3", "storm 4", "storm 5"};
    for (int i = 0; i < 5; i++) {
        char txn[32];
        snprintf(txn, sizeof txn, "mr.storm.%d", i);
        send_text(&x, i % 2 ? GWT_MIND : GWT_ROUTER, x.lobby, txn, bodies[i]);
    }
    wait_for(&x, "storm 5");
    for (int i = 0; i < 5; i++)
        assert_int_equal(count_in_room(&x, bodies[i], NULL), 1);
    assert_int_equal(gwt_stop(&x.f), 0);
    finish(&x);
}

/* Six managed rooms, so two of them fall on different partitions of matrix.send. */
#define CONFIG_ROOMS                                                                               \
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"                                        \
    "agents:\n  mind: {rooms: [lobby, side1, side2, side3, side4, side5]}\n"                        \
    "authorization:\n  global_users: [\"@alice:localhost\"]\n"
#define N_ROOMS 6
#define PARTITIONS 8 /* the bus's default */

/* The gateway recorded the event ID of this transaction ID's message: the homeserver took it. */
static bool sent(fixture *x, const char *txn)
{
    char key[64], *v = NULL;
    size_t len = 0;
    snprintf(key, sizeof key, "sent:%s", txn);
    mr_err err = {0};
    mr_code rc = mr_store_get(x->f.store, key, &v, &len, &err);
    free(v);
    if (rc != MR_OK && rc != MR_ENOTFOUND)
        fail_msg("%s", err.msg);
    return rc == MR_OK;
}

static void wait_sent(fixture *x, const char *txn, const char *why)
{
    long long deadline = mr_clock_mono_ms() + 60000;
    while (!sent(x, txn)) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("%s was never sent: %s; see %s", txn, why, x->f.log);
        mr_clock_sleep_ms(50);
    }
}

/* Which consumer leases partition p of matrix.send on the Redis bus ("" for none). */
static void lease_holder(fixture *x, int p, char *out, size_t cap)
{
    char port[16], key[96], file[700];
    snprintf(port, sizeof port, "%d", x->f.redis.port);
    snprintf(key, sizeof key, "mr:bus:matrix.send:lease:gateway:%d", p);
    snprintf(file, sizeof file, "%s/lease.txt", x->f.dir);
    /* mr_tp_run appends to its output file. */
    unlink(file);
    char *argv[] = {"redis-cli", "-p", port, "-n", "0", "GET", key, NULL};
    int code = -1;
    mr_err err = {0};
    if (mr_tp_run(argv, file, &code, &err) != MR_OK || code != 0)
        fail_msg("redis-cli GET %s: %s", key, err.msg);
    char *text = mr_tp_read_text(file);
    text[strcspn(text, "\n")] = '\0';
    snprintf(out, cap, "%s", text);
    free(text);
}

/* Until two consumers lease partitions a and b: at start one consumer may hold every partition
 * for a rebalance interval, as a lone member of the group takes them all. */
static void wait_two_lanes(fixture *x, int a, int b)
{
    long long deadline = mr_clock_mono_ms() + 60000;
    for (;;) {
        char ha[128], hb[128];
        lease_holder(x, a, ha, sizeof ha);
        lease_holder(x, b, hb, sizeof hb);
        if (ha[0] && hb[0] && strcmp(ha, hb) != 0)
            return;
        if (mr_clock_mono_ms() > deadline)
            fail_msg("partitions %d and %d of matrix.send never went to two consumers (%s, %s); see %s", a, b, ha,
                     hb, x->f.log);
        mr_clock_sleep_ms(100);
    }
}

/* While the homeserver keeps one room's send waiting, a send into a room on another partition
 * goes out: rooms do not queue behind each other. */
static void test_a_slow_room_does_not_hold_up_another(void **state)
{
    (void)state;
    fixture x;
    gwt_setup(&x.f, NULL, CONFIG_ROOMS);
    x.alice = gwt_human(&x.f, "alice");
    gwt_start(&x.f, NULL);
    gwt_wait_ready(&x.f);
    char rooms[N_ROOMS][MR_MATRIX_ID_SIZE];
    static const char *const aliases[N_ROOMS] = {"#lobby:localhost", "#side1:localhost", "#side2:localhost",
                                                 "#side3:localhost", "#side4:localhost", "#side5:localhost"};
    size_t other = 0;
    for (size_t i = 0; i < N_ROOMS; i++) {
        gwt_room_id(&x.f, aliases[i], rooms[i]);
        if (!other && mr_bus_partition(rooms[i], PARTITIONS) != mr_bus_partition(rooms[0], PARTITIONS))
            other = i;
    }
    if (!other) {
        finish(&x);
        skip();
    }
    wait_two_lanes(&x, mr_bus_partition(rooms[0], PARTITIONS), mr_bus_partition(rooms[other], PARTITIONS));
    gwt_hs_control(&x.f, "/_test/hold", json_pack("{s:s}", "room_id", rooms[0]));
    send_text(&x, GWT_MIND, rooms[0], "mr.held.m", "held back");
    send_text(&x, GWT_MIND, rooms[other], "mr.beside.m", "goes out beside it");
    wait_sent(&x, "mr.beside.m", "it waited behind the held room's send");
    assert_false(sent(&x, "mr.held.m"));
    gwt_hs_control(&x.f, "/_test/hold", json_pack("{s:n}", "room_id"));
    wait_sent(&x, "mr.held.m", "released, it should have gone out");
    assert_int_equal(gwt_stop(&x.f), 0);
    finish(&x);
}

/* While the homeserver holds the lobby's typing notices (a slow typing writer), the answer
 * published after one still goes out, in order with the room's other messages, each once; once
 * released, the typing notice and the one ending it follow, and no one is left typing. */
static void test_held_typing_holds_up_no_answer(void **state)
{
    (void)state;
    fixture x;
    start(&x, NULL);
    gwt_hs_control(&x.f, "/_test/hold_typing", json_pack("{s:s}", "room_id", x.lobby));
    send_text(&x, GWT_ROUTER, x.lobby, "mr.tq1.m", "before the typing");
    publish_typing(&x, "mr.tq2.t0", true);
    send_text(&x, GWT_MIND, x.lobby, "mr.tq2.m", "the answer");
    publish_typing(&x, "mr.tq2.t1", false);
    send_text(&x, GWT_ROUTER, x.lobby, "mr.tq3.m", "after the answer");
    wait_for(&x, "after the answer");
    wait_typing_waiting(&x, 1);
    char bodies[512];
    lobby_bodies(&x, bodies, sizeof bodies);
    assert_non_null(strstr(bodies, "before the typing|the answer|after the answer|"));
    assert_int_equal(count_in_room(&x, "the answer", NULL), 1);
    gwt_hs_control(&x.f, "/_test/hold_typing", json_pack("{s:n}", "room_id"));
    expect_typing_sent(&x, 2, 2);
    finish_not_typing(&x);
}

/* Typing notices of one account and room that pile up behind one the homeserver holds are
 * folded into the last: after the held "on", five more make one "off". */
static void test_typing_notices_coalesce(void **state)
{
    (void)state;
    fixture x;
    start(&x, NULL);
    gwt_hs_control(&x.f, "/_test/hold_typing", json_pack("{s:s}", "room_id", x.lobby));
    publish_typing(&x, "mr.tc.t0", true);
    wait_typing_waiting(&x, 1);
    static const char *const txns[] = {"mr.tc.t1", "mr.tc.t2", "mr.tc.t3", "mr.tc.t4", "mr.tc.t5"};
    for (size_t i = 0; i < 5; i++)
        publish_typing(&x, txns[i], i % 2 == 1);
    send_text(&x, GWT_MIND, x.lobby, "mr.tc.m", "typed");
    wait_for(&x, "typed");
    gwt_hs_control(&x.f, "/_test/hold_typing", json_pack("{s:n}", "room_id"));
    expect_typing_sent(&x, 6, 2);
    finish_not_typing(&x);
}

/* The first "off" of an account and room goes out (the homeserver may show typing from before
 * the gateway started); after it, an "off" has nothing to end and costs no request. */
static void test_needless_off_sends_nothing(void **state)
{
    (void)state;
    fixture x;
    start(&x, NULL);
    publish_typing(&x, "mr.tk1.t0", false);
    expect_typing_sent(&x, 1, 1);
    publish_typing(&x, "mr.tk2.t0", false);
    send_text(&x, GWT_MIND, x.lobby, "mr.tk2.m", "an answer");
    wait_for(&x, "an answer");
    expect_typing_sent(&x, 2, 1);
    finish_not_typing(&x);
}

/* Killed after the homeserver took the message and before the bus heard it was done: the
 * request comes again to the next gateway, whose send with the same transaction ID on the same
 * device makes no second message. */
static void test_crash_after_send_no_duplicate(void **state)
{
    (void)state;
    fixture x;
    start(&x, "after_send");
    send_text(&x, GWT_MIND, x.lobby, "mr.once.0", "only once");
    assert_int_equal(gwt_wait_exit(&x.f), -9);
    assert_int_equal(count_in_room(&x, "only once", NULL), 1);
    gwt_start(&x.f, NULL);
    gwt_wait_ready(&x.f);
    long long deadline = mr_clock_mono_ms() + 60000;
    while (gwt_metric(&x.f, "mindroom_gateway_sends_total{kind=\"room_event\",outcome=\"sent\"} ") < 1) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("the request was not delivered again; see %s", x.f.log);
        mr_clock_sleep_ms(100);
    }
    assert_int_equal(count_in_room(&x, "only once", NULL), 1);
    send_text(&x, GWT_MIND, x.lobby, "mr.after.0", "after the restart");
    wait_for(&x, "after the restart");
    assert_int_equal(count_in_room(&x, "only once", NULL), 1);
    assert_int_equal(gwt_stop(&x.f), 0);
    finish(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind_once),
        cmocka_unit_test(test_edit_names_the_message_by_txn),
        cmocka_unit_test(test_send_reads_the_store_once),
        cmocka_unit_test(test_refused_room_events_are_reported),
        cmocka_unit_test(test_cleartext_refused_in_encrypted_room),
        cmocka_unit_test(test_rate_limit_storm),
        cmocka_unit_test(test_a_slow_room_does_not_hold_up_another),
        cmocka_unit_test(test_crash_after_send_no_duplicate),
        cmocka_unit_test(test_held_typing_holds_up_no_answer),
        cmocka_unit_test(test_typing_notices_coalesce),
        cmocka_unit_test(test_needless_off_sends_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
