/* matrix_internal.h -- what the endpoint files of libs/matrix share: the client struct, one
 * request with retries, and path building. */
#ifndef MINDROOM_MATRIX_INTERNAL_H
#define MINDROOM_MATRIX_INTERNAL_H

#include <time.h>

#include "mindroom/http.h"
#include "mindroom/matrix.h"

#define MX_CLIENT "/_matrix/client/v3"

struct mr_matrix {
    mr_http_client *http;
    char user_id[MR_MATRIX_ID_SIZE];
    char device_id[MR_MATRIX_ID_SIZE];
    char *token;
    long timeout_ms;
    int max_attempts;
    int max_rate_limited;
    long backoff_ms;
    long max_backoff_ms;
    mr_matrix_sleep_fn sleep;
    void *sleep_ctx;
    mr_matrix_observe_fn observe;
    void *observe_ctx;
    bool (*stopping)(void *ctx);
    void *stopping_ctx;
    unsigned int seed;      /* for backoff jitter */
    mr_matrix_status last;
    /* The sync running inside an mr_http_multi (sync.c), while path is set. */
    struct mx_sync_run {
        char *path;
        char *auth;
        const char *headers[3];
        mr_http_result res;
        struct timespec t0;
    } run;
};

typedef struct mx_req {
    const char *endpoint;   /* name for the observer */
    const char *method;
    const char *path;       /* encoded, under the homeserver */
    json_t *body;           /* not taken; NULL for none */
    bool retry;             /* safe to repeat after a transport failure or 502/503/504 */
    bool anonymous;         /* send no access token */
    const char *bearer;     /* send this token instead of the session's */
    long timeout_ms;        /* 0: the client's */
    bool error_body;        /* on an HTTP error, still hand the parsed body to *out */
} mx_req;

/* Performs r with the retry rules of matrix.h. On MR_OK *out (may be NULL) gets the parsed
 * body, or an empty object when there was none. */
mr_code mx_call(mr_matrix *m, const mx_req *r, json_t **out, mr_err *err);

/* The pieces of mx_call a request driven by an mr_http_multi shares (mr_matrix_sync_start):
 * r's Authorization header line (NULL for none), freed with mx_auth_free; */
mr_code mx_auth_header(mr_matrix *m, const mx_req *r, char **auth, mr_err *err);
void mx_auth_free(char *auth);
/* the reply parsed into res->json (a 2xx that is not JSON is MR_EINVAL); */
mr_code mx_parse_reply(mr_code rc, mr_http_result *res, mr_err *err);
/* the attempt recorded in mr_matrix_last and told to the observer; */
void mx_observe(mr_matrix *m, const mx_req *r, mr_code rc, const mr_http_result *res,
                const struct timespec *t0);
/* the delay a 429 asks for: the body's retry_after_ms, else Retry-After, else the backoff. */
long mx_rate_limit_delay(mr_matrix *m, const mr_http_result *res, int attempt);

/* A path from fmt where each "%s" is replaced by the next argument percent-encoded and each
 * "%S" by the next argument as it is; NULL when out of memory. */
char *mx_path(const char *fmt, ...);

/* Copies a string member of obj into out; false when absent, not a string or too long. */
bool mx_copy_str(json_t *obj, const char *key, char *out, size_t cap);

/* Takes the session (user_id, device_id, access_token) out of a login or registration reply. */
mr_code mx_take_session(mr_matrix *m, json_t *reply, const char *what, mr_err *err);

#endif
