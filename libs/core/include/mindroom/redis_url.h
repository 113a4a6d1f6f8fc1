/* redis_url.h -- the one parser of redis://[user:password@]host[:port][/db] URLs, shared by the
 * bus and the store, on libcurl's URL API. */
#ifndef MINDROOM_REDIS_URL_H
#define MINDROOM_REDIS_URL_H

#include "mindroom/err.h"

/* Owned strings; free with mr_redis_url_free. */
typedef struct mr_redis_url {
    char *host;     /* an IPv6 literal without its brackets */
    int port;       /* 6379 when absent */
    int db;         /* 0 when absent */
    char *user;     /* ACL user, percent-decoded; NULL when absent or empty */
    char *password; /* percent-decoded; NULL when absent; never printed */
    char *display;  /* the URL with any user and password replaced by "***", for messages */
} mr_redis_url;

/* url must start with "redis://". what names the setting in messages ("bus URL"). Errors are
 * MR_EINVAL naming the part at fault, with the URL quoted as display shows it. */
mr_code mr_redis_url_parse(const char *url, const char *what, mr_redis_url *out, mr_err *err);
void mr_redis_url_free(mr_redis_url *u);

#endif
