/* b64url.c -- strict base64url decoding, and quoting of untrusted strings for messages. */
#include <stdlib.h>
#include <string.h>

#include "jwt_internal.h"

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

mr_code mr_jwt_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len,
                             mr_err *err)
{
    *out = NULL;
    *out_len = 0;
    if (len % 4 == 1)
        return mr_err_set(err, MR_EINVAL, "base64url text of %zu characters cannot be whole bytes", len);
    unsigned char *buf = malloc(len / 4 * 3 + 3);
    if (!buf)
        return mr_err_set(err, MR_ENOMEM, "out of memory decoding base64url");
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) {
            free(buf);
            return mr_err_set(err, MR_EINVAL, "character %zu is not base64url", i + 1);
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero, or two texts would decode to the same bytes. */
    if (acc != 0) {
        free(buf);
        return mr_err_set(err, MR_EINVAL, "base64url text has non-zero trailing bits");
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
