/* b64url.c -- strict base64url decoding, and quoting of untrusted strings for messages. */
#include <stdlib.h>
#include <string.h>

#include "jwt_internal.h"
#include "mindroom/b64.h"

mr_code mr_jwt_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len,
                             mr_err *err)
{
    *out = NULL;
    *out_len = 0;
    size_t cap = len / 4 * 3 + 2;
    unsigned char *buf = malloc(cap + 1);
    if (!buf)
        return mr_err_set(err, MR_ENOMEM, "out of memory decoding base64url");
    size_t n = 0;
    mr_code rc = mr_b64_decode(in, len, MR_B64_STRICT, buf, cap, &n, err);
    if (rc != MR_OK) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return MR_OK;
}

char *mr_jwt_quote(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; s[n] && n + 1 < cap; n++) {
        unsigned char c = (unsigned char)s[n];
        out[n] = (c < 0x20 || c > 0x7e || c == '"' || c == '\\') ? '?' : (char)c;
    }
    out[n] = '\0';
    return out;
}
