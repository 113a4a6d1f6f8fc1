/* multi.c -- many clients' requests driven by one thread through a libcurl multi handle, so a
 * long poll per client costs a connection, not a thread. Each client runs at most one request
 * here at a time, on its own easy handle, with everything mr_http_client_do does. */
#include "http_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/resource.h>

struct mr_http_multi {
    CURLM *handle;
};

mr_code mr_http_multi_new(mr_http_multi **out, mr_err *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out || !((*out)->handle = curl_multi_init())) {
        free(*out);
        *out = NULL;
        return mr_err_set(err, MR_ENOMEM, "out of memory creating an HTTP multi handle");
    }
    return MR_OK;
}

/* The request's own allocations; the client is free for another request after. */
static void run_end(mr_http_client *c)
{
    curl_slist_free_all(c->run.hdrs);
    free(c->run.url);
    mr_strbuf_free(&c->run.t.body);
    c->run = (struct http_multi_run){0};
}

void mr_http_multi_free(mr_http_multi *mu)
{
    if (!mu)
        return;
    curl_multi_cleanup(mu->handle);
    free(mu);
}

mr_code mr_http_multi_start(mr_http_multi *mu, mr_http_client *c, const mr_http_call *call,
                            mr_http_result *out, void *tag, mr_err *err)
{
    if (c->run.tag || !tag)
        return mr_err_set(err, MR_EINTERNAL, "HTTP multi: %s", tag ? "the client is busy" : "no tag");
    /* What curl_easy_perform kept for this client (a connection, a socket pair) would sit idle
     * beside the multi's connection: a fresh handle lets them go, so a client costs one. */
    if (c->own_used) {
        CURL *fresh = curl_easy_init();
        if (!fresh)
            return mr_err_set(err, MR_ENOMEM, "out of memory renewing an HTTP handle");
        curl_easy_cleanup(c->easy);
        c->easy = fresh;
        c->own_used = false;
    }
    c->run.call = *call;
    mr_code rc = http_client_prepare(c, &c->run.call, out, &c->run.t, &c->run.url, &c->run.hdrs, err);
    if (rc != MR_OK)
        return rc;
    CURLcode ec = curl_easy_setopt(c->easy, CURLOPT_PRIVATE, (void *)c);
    CURLMcode mc = ec == CURLE_OK ? curl_multi_add_handle(mu->handle, c->easy) : CURLM_OK;
    if (ec != CURLE_OK || mc != CURLM_OK) {
        run_end(c);
        return mr_err_set(err, MR_EINTERNAL, "starting %s %s: %s", out->method, out->url,
                          ec != CURLE_OK ? curl_easy_strerror(ec) : curl_multi_strerror(mc));
    }
    c->run.tag = tag;
    return MR_OK;
}

void mr_http_multi_cancel(mr_http_multi *mu, mr_http_client *c)
{
    if (!c->run.tag)
        return;
    curl_multi_remove_handle(mu->handle, c->easy);
    run_end(c);
}

mr_code mr_http_multi_step(mr_http_multi *mu, int wait_ms, mr_http_multi_done_fn done, void *ctx,
                           mr_err *err)
{
    int running = 0, left = 0;
    CURLMcode mc = curl_multi_perform(mu->handle, &running);
    CURLMsg *msg;
    while (mc == CURLM_OK && (msg = curl_multi_info_read(mu->handle, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode result = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        mr_http_client *c = (mr_http_client *)(void *)priv;
        curl_multi_remove_handle(mu->handle, e);
        mr_err why = {0};
        mr_code rc = http_client_finish(c, result, &c->run.t, &why);
        void *tag = c->run.tag;
        run_end(c);
        done(ctx, tag, rc, &why);
    }
    if (mc == CURLM_OK)
        mc = curl_multi_poll(mu->handle, NULL, 0, wait_ms, NULL);
    return mc == CURLM_OK ? MR_OK : mr_err_set(err, MR_EINTERNAL, "HTTP multi: %s", curl_multi_strerror(mc));
}

void mr_http_multi_wakeup(mr_http_multi *mu)
{
    curl_multi_wakeup(mu->handle);
}

mr_code mr_http_fd_limit_raise(unsigned long want, unsigned long *got, mr_err *err)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return mr_err_errno(err, MR_EINTERNAL, errno, "reading the open file limit");
    rlim_t target = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)want ? (rlim_t)want : rl.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= target) {
        *got = rl.rlim_cur == RLIM_INFINITY ? want : (unsigned long)rl.rlim_cur;
        return MR_OK;
    }
    rl.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return mr_err_errno(err, MR_EINTERNAL, errno, "raising the open file limit to %lu", (unsigned long)target);
    *got = (unsigned long)target;
    return MR_OK;
}
