/* gw_harness.h -- running mindroom-gateway as a process against mr-test-homeserver and a real
 * redis-server (bus and store), and reading what it publishes. */
#ifndef MINDROOM_GW_HARNESS_H
#define MINDROOM_GW_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "hs_peer.h"
#include "mindroom/bus.h"
#include "mindroom/clock.h"
#include "mindroom/matrix.h"
#include "mindroom/store.h"
#include "peers.h"

#define GWT_TOKEN "reg-token-gw"
#define GWT_SECRET_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define GWT_PASSWORD "human-password"
#define GWT_ROUTER "@mindroom_router:localhost"
#define GWT_MIND "@mindroom_mind:localhost"
/* One agent in #lobby, and alice may talk to it. */
#define GWT_CONFIG_MIND                                                                            \
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"                                        \
    "agents:\n  mind: {rooms: [lobby]}\n"                                                           \
    "authorization:\n  global_users: [\"@alice:localhost\"]\n"
/* The same without the root Space: alice is in no room of the instance until she joins one. */
#define GWT_CONFIG_MIND_NO_SPACE                                                                   \
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"                                        \
    "agents:\n  mind: {display_name: Mind, rooms: [lobby]}\n"                                     \
    "matrix_space: {enabled: false}\n"                                                              \
    "authorization:\n  global_users: [\"@alice:localhost\"]\n"

typedef struct gwt {
    mr_hs_peer hs;
    mr_tp_redis redis;
    char dir[512];
    char config[600];
    char log[600];
    char bus_url[96];
    char store_url[96];
    int http_port;
    pid_t pid;
    mr_bus *bus;
    mr_store *store;
} gwt;

/* Starts the homeserver (opts may be NULL: registration token GWT_TOKEN) and redis, writes
 * config.yaml and sets the gateway's environment (every MATRIX_ACCOUNT_* setting cleared). */
void gwt_setup(gwt *f, const mr_hs_peer_opts *opts, const char *config);
void gwt_teardown(gwt *f);
void gwt_write_config(gwt *f, const char *config);

/* Spawns mindroom-gateway; crash is MR_GATEWAY_TEST_CRASH or NULL. */
void gwt_start(gwt *f, const char *crash);
/* Waits until /readyz says 200, failing when the gateway exits first. */
void gwt_wait_ready(gwt *f);
/* SIGTERM, then its exit status. */
int gwt_stop(gwt *f);
/* The exit status of a gateway expected to end on its own (-SIG when a signal ended it). */
int gwt_wait_exit(gwt *f);

void gwt_wait_log(const gwt *f, const char *needle, int times);
/* Fails, showing the end of the log, unless needle occurs exactly times in it. */
void gwt_assert_log(const gwt *f, const char *needle, int times);

/* The homeserver's /_test/state. */
json_t *gwt_hs_state(gwt *f);
/* The parts of it the gateway could change (long polls asleep left out). */
json_t *gwt_hs_snapshot(gwt *f);
/* Fails unless the homeserver's users are exactly want, in any order (accounts are registered
 * a few at once). */
void gwt_assert_users(json_t *state, const char *const *want, size_t n);
/* Starts the gateway again, waits until it is ready and stops it, failing
 * unless the homeserver is as before and each entity's sealed token in the store is the same
 * (no login, so no new device). */
void gwt_restart_changes_nothing(gwt *f, const char *const *entities, size_t n);
/* A POST to a homeserver test control. */
void gwt_hs_control(gwt *f, const char *path, json_t *body);
/* A human account registered through the token stage, logged in. */
mr_matrix *gwt_human(gwt *f, const char *localpart);
/* gwt_setup without homeserver options, the human localpart, then the gateway started and
 * ready: the start of a test that talks in the gateway's rooms. Returns the human. */
mr_matrix *gwt_start_with_human(gwt *f, const char *config, const char *localpart);
/* gwt_start_with_human for alice (registered first, so that the gateway invites her), joined to
 * #lobby, whose ID goes to lobby. */
mr_matrix *gwt_alice_in_lobby(gwt *f, const char *config, char lobby[MR_MATRIX_ID_SIZE]);
/* gwt_setup without homeserver options, then alice makes #lobby herself with the createRoom
 * preset, as a person would before MindRoom starts; its ID goes to lobby. Returns alice. */
mr_matrix *gwt_alice_made_lobby(gwt *f, const char *config, const char *preset, char lobby[MR_MATRIX_ID_SIZE]);
/* Sends an m.text message with this transaction ID (fails the test when refused). */
void gwt_say(mr_matrix *m, const char *room, const char *txn, const char *body);
/* The room ID an alias points at (fails the test when unknown). */
void gwt_room_id(gwt *f, const char *alias, char out[MR_MATRIX_ID_SIZE]);

/* A consumer group of the test reading one topic; every message goes to msgs and, one per
 * line, to a JSONL file for proto/check.py. */
typedef struct gwt_reader {
    mr_bus_consumer *c;
    json_t *msgs;
    FILE *jsonl;
    char path[700];
    char topic[64];
} gwt_reader;

void gwt_reader_open(gwt *f, gwt_reader *r, const char *group, const char *topic);
void gwt_reader_close(gwt_reader *r);
/* Reads until pred holds for the messages read so far (or fails at the deadline). */
typedef bool (*gwt_pred)(json_t *msgs, void *ctx);
void gwt_read_until(gwt_reader *r, gwt_pred pred, void *ctx);
/* Reads until the topic has nothing more for now (a poll of 500 ms brings nothing). */
void gwt_read_all(gwt_reader *r);
/* How many messages so far have event.content.body == body (and account == account unless
 * NULL). */
size_t gwt_count_body(json_t *msgs, const char *body, const char *account);
/* A gwt_pred: some message so far has event.content.body == body (a const char *). */
bool gwt_seen_body(json_t *msgs, void *body);
/* The value of a series of the gateway's /metrics, named with its labels and the space after
 * them ("mindroom_gateway_sends_total{kind=\"typing\",outcome=\"sent\"} "); 0 when absent. */
double gwt_metric(gwt *f, const char *series);
/* Runs proto/check.py on everything read. */
void gwt_reader_check_proto(gwt_reader *r);

/* The end of a test that read a topic: what it read checked against proto/, the reader closed,
 * the gateway stopped cleanly (exit 0), the human freed, the fixture torn down. */
void gwt_end(gwt *f, gwt_reader *in, mr_matrix *human);

/* Runs tests/nio_client.py with the arguments (NULL-terminated); returns its exit status. */
int gwt_nio(gwt *f, const char *const *args);

/* A field of a hash in the gateway's store (caller frees), failing the test on error. */
char *gwt_store_field(gwt *f, const char *key, const char *field);
/* A sealed value of the gateway's store (caller frees), NULL when absent. */
char *gwt_store_secret(gwt *f, const char *key);
/* Sends a JSON message on the bus and flushes. */
void gwt_publish(gwt *f, const char *topic, const char *key, json_t *msg);

#endif
