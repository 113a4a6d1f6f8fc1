/* reply.c -- the JSON error reply of the services' own HTTP APIs. */
#include <stdio.h>

#include <jansson.h>

#include "mindroom/runtime.h"

mr_http_response *mr_runtime_vreply_detail(int status, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return mr_http_reply_json(status, json_pack("{s:s}", "detail", msg));
}

mr_http_response *mr_runtime_reply_detail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mr_http_response *r = mr_runtime_vreply_detail(status, fmt, ap);
    va_end(ap);
    return r;
}
