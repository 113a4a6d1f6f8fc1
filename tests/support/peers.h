/* peers.h -- starting real test peers (redis-server, helper programs) on loopback for tests. */
#ifndef MINDROOM_TEST_PEERS_H
#define MINDROOM_TEST_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "mindroom/err.h"

/* A private temp directory (0700) under $TMPDIR or /tmp; removed with mr_tp_rmtree. */
mr_code mr_tp_mkdtemp(const char *prefix, char *out, size_t cap, mr_err *err);
mr_code mr_tp_rmtree(const char *path, mr_err *err);

/* A free TCP port on 127.0.0.1, as the kernel picks it for a bind to port 0. */
mr_code mr_tp_free_port(int *port, mr_err *err);
/* Waits until something accepts TCP connections on 127.0.0.1:port. */
mr_code mr_tp_wait_port(int port, int timeout_ms, mr_err *err);

/* fork+exec argv[0] (searched in PATH) with stdout and stderr appended to log_path (or
 * /dev/null when NULL). The child gets its own process group so tests can kill it whole, and
 * dies with the test: its group is killed when the test process exits (a failed cmocka run
 * included) and the child gets SIGKILL when the test process dies without exiting (abort). */
mr_code mr_tp_spawn(char *const argv[], const char *log_path, pid_t *pid, mr_err *err);
/* For a child forked without mr_tp_spawn: in the child, right after fork (parent: the test's
 * pid, taken before fork), what mr_tp_spawn does there; in the test, mr_tp_adopt(pid) so its
 * group is killed at exit. Reaping it with the helpers below drops it from that list. */
void mr_tp_child_prepare(pid_t parent);
void mr_tp_adopt(pid_t pid);
/* A child of this process whose command line holds needle; 0 when there is none. */
pid_t mr_tp_child_running(const char *needle);
/* Sends sig and waits for the process; returns its wait status in *status (may be NULL).
 * MR_EINVAL for pid <= 0, which would signal the caller's own process group or every process. */
mr_code mr_tp_kill_wait(pid_t pid, int sig, int *status, mr_err *err);
/* Waits up to timeout_ms for pid to exit, its wait status in *status. When it does not, kills it
 * (SIGKILL), reaps it and returns MR_EUNAVAIL. */
mr_code mr_tp_wait_exit(pid_t pid, int timeout_ms, int *status, mr_err *err);
/* Kills pid and its process group (SIGKILL) and reaps it when it is still running: for
 * teardowns. */
void mr_tp_stop_if_running(pid_t pid);
/* Runs argv (as mr_tp_spawn does) to its end; *exit_code is its exit status, -1 when a signal
 * ended it. */
mr_code mr_tp_run(char *const argv[], const char *log_path, int *exit_code, mr_err *err);

/* What mr_tp_http_do read. */
typedef struct mr_tp_http_reply {
    long status;         /* 0 when no answer came */
    char *body;          /* NUL-terminated, "" when empty; the caller frees it */
    size_t len;
    char headers[4096];  /* the response's header lines, as sent, cut at this size */
} mr_tp_http_reply;

/* One request with libcurl: header_lines (NULL-terminated, may be NULL) added as they are, body
 * (may be NULL) sent as it is; HEAD asks for no body. MR_EUNAVAIL, with curl's reason, when no
 * answer came within timeout_s (out->body is "" then, still the caller's to free). */
mr_code mr_tp_http_do(const char *method, const char *url, const char *const *header_lines, const char *body,
                      long timeout_s, mr_tp_http_reply *out, mr_err *err);
/* GET http://127.0.0.1:<port><path> (at most 20 s): the HTTP status, 0 when no answer came; the
 * body in *body (NULL: not wanted), "" without an answer, which the caller frees. */
long mr_tp_http_get(int port, const char *path, char **body);

/* A TCP connection to 127.0.0.1:port from the loopback address `from` ("127.0.0.2" is a second
 * client address); -1 with errno set when it fails. */
int mr_tp_connect_from(const char *from, int port);
/* Reads fd until `until` has arrived (NULL: until the peer closes) or timeout_ms passes, and
 * sets *closed when the peer closed the connection. Returns what came, NUL-terminated, which
 * the caller frees; NULL when out of memory. */
char *mr_tp_read_until(int fd, const char *until, int timeout_ms, bool *closed);
/* Sends len raw bytes on a new connection from `from` and reads the answer until the server
 * closes the connection (send "Connection: close"). *answer is the caller's to free, also after a
 * failure: MR_EUNAVAIL when the connection fails or stays open past timeout_ms. */
mr_code mr_tp_raw_exchange(const char *from, int port, const void *raw, size_t len, int timeout_ms,
                           char **answer, mr_err *err);
/* Slow-client starvation: opens up to `crowd` connections from crowd_from to 127.0.0.1:port and
 * leaves them silent, then sends GET path from client_from while they are still open, and closes
 * them. *held: how many connected; *answer: the whole answer, the caller's to free also after a
 * failure (as for mr_tp_raw_exchange). */
mr_code mr_tp_get_while_crowded(int port, const char *crowd_from, size_t crowd, const char *client_from,
                                const char *path, char **answer, size_t *held, mr_err *err);

/* The text of the file at path, "" when it cannot be read; the caller frees. */
char *mr_tp_read_text(const char *path);
/* Times needle occurs in the file at path; 0 when it cannot be read. */
int mr_tp_count_in_file(const char *path, const char *needle);
/* Waits up to timeout_ms until needle occurs times (or more) in the file at path. MR_EUNAVAIL
 * when it does not, or as soon as process watch (when > 0) has exited, which it then reaps. */
mr_code mr_tp_wait_in_file(const char *path, const char *needle, int times, int timeout_ms, pid_t watch,
                           mr_err *err);
/* Removes a test's temp dir, or keeps it and says so on stderr when MR_KEEP_TMP is set. */
void mr_tp_cleanup_dir(const char *dir);
/* Checks a file of JSON lines against the topic's schema with proto/check.py ($MR_PYTHON3
 * $MR_PROTO_CHECK messages <topic> <path>); its report goes to <path>.check, and on failure to
 * stderr too. MR_EINVAL when the messages do not match. */
mr_code mr_tp_proto_check(const char *topic, const char *path, mr_err *err);
/* The entry point of the MCP reference server (@modelcontextprotocol/server-everything, run
 * with node) from $MR_MCP_EVERYTHING; NULL after a SKIPPED line on stdout when it or node is
 * missing, for the test to exit with 77. */
const char *mr_tp_mcp_everything(void);

typedef struct mr_tp_redis {
    pid_t pid;
    int port;
    char dir[256];   /* working dir: append-only file and log live here */
    char url[64];    /* "redis://127.0.0.1:<port>/0" */
} mr_tp_redis;

/* Starts redis-server on a free loopback port with appendonly (fsync always) so a restart
 * keeps its data, and waits until it answers PING. */
mr_code mr_tp_redis_start(mr_tp_redis *r, mr_err *err);
/* Stops it (SIGTERM, or SIGKILL when hard), keeping dir for a restart. */
mr_code mr_tp_redis_stop(mr_tp_redis *r, bool hard, mr_err *err);
/* Starts it again on the same port and dir. */
mr_code mr_tp_redis_restart(mr_tp_redis *r, mr_err *err);
/* Stops it and removes dir. */
void mr_tp_redis_destroy(mr_tp_redis *r);

#endif
