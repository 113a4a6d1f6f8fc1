/* b64.c -- unpadded base64: encoding in the URL alphabet, strict or lenient decoding. */
#include "mindroom/b64.h"

static const char URL_ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t mr_b64url_encode(const void *data, size_t n, char *out)
{
    const unsigned char *p = data;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned long)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        size_t chars = n - i >= 3 ? 4 : n - i + 1;
        for (size_t k = 0; k < chars; k++)
            out[o++] = URL_ALPHABET[(v >> (18 - 6 * k)) & 0x3f];
    }
    out[o] = '\0';
    return o;
}

/* 1 + the value of each character of the URL alphabet, 0 for every other byte: a JWT's three
 * parts are decoded on every strict-mode request, a lookup a character. */
static const unsigned char URL_VALUE[256] = {
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, 63,  0,  0,
    53, 54, 55, 56, 57, 58, 59, 60, 61, 62,  0,  0,  0,  0,  0,  0,
     0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,  0,  0,  0,  0, 64,
     0, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41,
    42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
     0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
};

static int b64_value(unsigned char c, unsigned flags)
{
    if (URL_VALUE[c])
        return URL_VALUE[c] - 1;
    if (flags & MR_B64_STD_TOO)
        return c == '+' ? 62 : c == '/' ? 63 : -1;
    return -1;
}

/* The error for the first character of in[0..len) that is not in the alphabet flags allow. */
static mr_code bad_character(const char *in, size_t len, unsigned flags, const char *name, mr_err *err)
{
    size_t i = 0;
    while (i < len && b64_value((unsigned char)in[i], flags) >= 0)
        i++;
    return mr_err_set(err, MR_EINVAL, "character %zu is not %s", i + 1, name);
}

mr_code mr_b64_decode(const char *in, size_t len, unsigned flags, unsigned char *out, size_t cap,
                      size_t *out_len, mr_err *err)
{
    *out_len = 0;
    const char *name = flags & MR_B64_STD_TOO ? "base64" : "base64url";
    if (len % 4 == 1)
        return mr_err_set(err, MR_EINVAL, "%s text of %zu characters cannot be whole bytes", name, len);
    const unsigned char *p = (const unsigned char *)in;
    size_t n = 0, i = 0;
    /* Whole groups of four characters, three bytes each, while they fit: a JWT's parts are
     * decoded on every strict-mode request. URL_VALUE is 0 for a byte outside the alphabet, so
     * one test a group finds any (and the slow path below names it). */
    if (!(flags & MR_B64_STD_TOO)) {
        for (; i + 4 <= len && n + 3 <= cap; i += 4, n += 3) {
            unsigned a = URL_VALUE[p[i]], b = URL_VALUE[p[i + 1]], c = URL_VALUE[p[i + 2]], d = URL_VALUE[p[i + 3]];
            if (!a || !b || !c || !d)
                return bad_character(in, len, flags, name, err);
            unsigned v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
            out[n] = (unsigned char)(v >> 16);
            out[n + 1] = (unsigned char)(v >> 8);
            out[n + 2] = (unsigned char)v;
        }
    }
    unsigned acc = 0;
    int bits = 0;
    for (; i < len; i++) {
        int v = b64_value(p[i], flags);
        if (v < 0)
            return bad_character(in, len, flags, name, err);
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n < cap)
                out[n] = (unsigned char)(acc >> bits);
            n++;
            acc &= (1u << bits) - 1;
        }
    }
    /* Leftover bits must be zero, or two texts would decode to the same bytes. */
    if ((flags & MR_B64_STRICT) && acc != 0)
        return mr_err_set(err, MR_EINVAL, "%s text has non-zero trailing bits", name);
    *out_len = n;
    return MR_OK;
}
