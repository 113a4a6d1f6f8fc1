/* http_internal.h -- what the files of libs/http share and nobody else sees. */
#ifndef MINDROOM_HTTP_INTERNAL_H
#define MINDROOM_HTTP_INTERNAL_H

#include "mindroom/http.h"

struct mr_http_response {
    int status;
    char *content_type;
    char *body;
    size_t len;
    mr_http_param *headers;
    size_t nheaders;
    mr_http_stream_fn stream;      /* set for mr_http_reply_stream; body is then unused */
    void *stream_ctx;
    void (*stream_done)(void *ctx);
};

#endif
