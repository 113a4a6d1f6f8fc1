/* pair_codes.c -- pair codes, random tokens and namespaces, SHA-256 digests and timestamps. */
#include "prov_internal.h"
#include "mindroom/b64.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

const char pair_code_alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const char pair_namespace_alphabet[] = "abcdefghjkmnpqrstuvwxyz23456789";

static mr_code random_bytes(unsigned char *buf, size_t n, mr_err *err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return mr_err_errno(err, MR_EIO, errno, "getrandom");
        }
        got += (size_t)r;
    }
    return MR_OK;
}

/* n characters drawn uniformly from alphabet (rejection sampling keeps every character
 * equally likely whatever the alphabet's size). */
static mr_code random_chars(const char *alphabet, char *out, size_t n, mr_err *err)
{
    size_t k = strlen(alphabet);
    unsigned limit = 256u - 256u % (unsigned)k;
    size_t filled = 0;
    while (filled < n) {
        unsigned char buf[32];
        mr_code rc = random_bytes(buf, sizeof buf, err);
        if (rc != MR_OK)
            return rc;
        for (size_t i = 0; i < sizeof buf && filled < n; i++)
            if (buf[i] < limit)
                out[filled++] = alphabet[buf[i] % k];
        OPENSSL_cleanse(buf, sizeof buf);
    }
    out[n] = '\0';
    return MR_OK;
}

mr_code pair_code_generate(char out[PAIR_CODE_LEN + 1], mr_err *err)
{
    char raw[9];
    mr_code rc = random_chars(pair_code_alphabet, raw, 8, err);
    if (rc != MR_OK)
        return rc;
    snprintf(out, PAIR_CODE_LEN + 1, "%.4s-%.4s", raw, raw + 4);
    OPENSSL_cleanse(raw, sizeof raw);
    return MR_OK;
}

bool pair_code_normalize(const char *in, char out[PAIR_CODE_LEN + 1])
{
    while (isspace((unsigned char)*in))
        in++;
    size_t n = strlen(in);
    while (n > 0 && isspace((unsigned char)in[n - 1]))
        n--;
    if (n != PAIR_CODE_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)toupper((unsigned char)in[i]);
        bool ok = i == 4 ? c == '-' : (isdigit(c) || (c >= 'A' && c <= 'Z'));
        if (!ok)
            return false;
        out[i] = (char)c;
    }
    out[n] = '\0';
    return true;
}

mr_code pair_random_token(size_t nbytes, char out[PAIR_TOKEN_MAX], mr_err *err)
{
    unsigned char raw[48] = {0};
    if (MR_B64URL_LEN(nbytes) >= PAIR_TOKEN_MAX || nbytes > sizeof raw)
        return mr_err_set(err, MR_EINVAL, "token of %zu bytes is too long", nbytes);
    mr_code rc = random_bytes(raw, nbytes, err);
    if (rc != MR_OK)
        return rc;
    mr_b64url_encode(raw, nbytes, out);
    OPENSSL_cleanse(raw, sizeof raw);
    return MR_OK;
}

bool pair_token_shape_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < PAIR_TOKEN_MAX &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

mr_code pair_namespace_generate(char out[PAIR_NAMESPACE_LEN + 1], mr_err *err)
{
    return random_chars(pair_namespace_alphabet, out, PAIR_NAMESPACE_LEN, err);
}

void pair_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

void pair_time_format(long long t, char out[PAIR_TIME_LEN + 1])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, PAIR_TIME_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

long long pair_now(void)
{
    return (long long)time(NULL);
}
