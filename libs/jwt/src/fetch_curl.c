/* fetch_curl.c -- the default JWKS fetcher: one GET with libcurl, bounded in time and size. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "jwt_internal.h"

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc;

static void curl_init_once(void)
{
    g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct body {
    char *buf;
    size_t len;
    bool too_big;
} body;

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
    body *b = ud;
    size_t n = size * nmemb;
    if (n > MR_JWT_JWKS_MAX - b->len) {
        b->too_big = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    char *grown = realloc(b->buf, b->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + b->len, data, n);
    b->buf = grown;
    b->len += n;
    b->buf[b->len] = '\0';
    return n;
}

mr_code mr_jwt_fetch_curl(void *ctx, const char *url, long timeout_ms, char **out, size_t *len, mr_err *err)
{
    (void)ctx;
    *out = NULL;
    *len = 0;
    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init_rc != CURLE_OK)
        return mr_err_set(err, MR_EUNAVAIL, "fetching JWKS from %s: libcurl did not initialise: %s", url,
                          curl_easy_strerror(g_curl_init_rc));
    CURL *curl = curl_easy_init();
    if (!curl)
        return mr_err_set(err, MR_ENOMEM, "fetching JWKS from %s: out of memory", url);
    char curl_msg[CURL_ERROR_SIZE] = "";
    body b = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Signals cannot carry the timeout in a threaded program. */
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MR_JWT_JWKS_MAX);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "mindroom-jwt/" MR_VERSION);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_msg);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);

    mr_code code = MR_OK;
    if (b.too_big || rc == CURLE_FILESIZE_EXCEEDED)
        code = mr_err_set(err, MR_EUNAVAIL, "fetching JWKS from %s: the document exceeds %d bytes", url,
                          MR_JWT_JWKS_MAX);
    else if (rc != CURLE_OK)
        code = mr_err_set(err, MR_EUNAVAIL, "fetching JWKS from %s: %s", url,
                          curl_msg[0] ? curl_msg : curl_easy_strerror(rc));
    else if (status != 200)
        code = mr_err_set(err, MR_EUNAVAIL, "fetching JWKS from %s: HTTP status %ld", url, status);
    else if (!b.buf)
        code = mr_err_set(err, MR_EUNAVAIL, "fetching JWKS from %s: the response is empty", url);
    if (code != MR_OK) {
        free(b.buf);
        return code;
    }
    *out = b.buf;
    *len = b.len;
    return MR_OK;
}
