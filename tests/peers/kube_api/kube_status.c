/* kube_status.c -- errors as the apiserver sends them: a metav1.Status object
 * (k8s.io/apimachinery/pkg/api/errors: NewNotFound, NewBadRequest, NewConflict, ...), with
 * "status": "Failure", the HTTP code repeated in "code", a machine "reason" and details naming
 * the object. */
#include "kube.h"

#include <stdarg.h>
#include <stdio.h>

json_t *kube_details(const kube_resource *r, const char *name)
{
    /* StatusDetails: "kind" holds the resource (plural), "group" is left out when empty. */
    json_t *d = json_object();
    if (!d)
        return NULL;
    if ((name && json_object_set_new(d, "name", json_string(name)) != 0) ||
        (*r->group && json_object_set_new(d, "group", json_string(r->group)) != 0) ||
        json_object_set_new(d, "kind", json_string(r->name)) != 0) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static mr_http_response *vstatus(int code, const char *reason, json_t *details, const char *fmt,
                                 va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    json_t *s = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion", "v1",
                          "metadata", "status", "Failure", "message", msg, "reason", reason, "code", code);
    if (!s) {
        json_decref(details);
        return NULL;
    }
    if (details && json_object_set_new(s, "details", details) != 0) {
        json_decref(s);
        return NULL;
    }
    return mr_http_reply_json(code, s);
}

mr_http_response *kube_status(int code, const char *reason, json_t *details, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mr_http_response *r = vstatus(code, reason, details, fmt, ap);
    va_end(ap);
    return r;
}

mr_http_response *kube_not_found(const kube_resource *r, const char *name)
{
    char q[128];
    kube_qualified(r, q, sizeof q);
    return kube_status(404, "NotFound", kube_details(r, name), "%s \"%s\" not found", q, name);
}

mr_http_response *kube_bad_request(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mr_http_response *r = vstatus(400, "BadRequest", NULL, fmt, ap);
    va_end(ap);
    return r;
}
