/* verify.c -- one token: shape and header parsed here, the algorithm taken from the key, the
 * signature checked by OpenSSL on the key parsed at fetch time (sig.c), the claims checked here.
 * Header members other than alg, kid, typ and crit (jku, x5u, jwk, x5c above all) are never
 * read: keys come from the configured JWKS only, and a kid is only a name to look one up by. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jwt_internal.h"
#include "mindroom/b64.h"

/* Seconds since the epoch beyond year 9999 are not a time anyone means. */
#define TIME_MAX_S 253402300799.0

__attribute__((format(printf, 2, 3)))
static mr_code invalid(mr_err *err, const char *fmt, ...)
{
    char why[MR_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return mr_err_set(err, MR_EAUTH, "invalid JWT: %s", why);
}

/* The three base64url parts of a compact JWS, decoded into one buffer (one allocation a token:
 * this runs on every request of a strict-mode forward-auth service), each NUL-terminated. */
typedef struct parts {
    unsigned char *buf;
    unsigned char *header;
    size_t header_len;
    unsigned char *payload;
    size_t payload_len;
    unsigned char *sig;
    size_t sig_len;
    size_t signing_len;   /* header.payload as sent: what the signature covers */
} parts;

static void parts_free(parts *p)
{
    free(p->buf);
}

static mr_code split(const char *token, size_t len, parts *p, mr_err *err)
{
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
        size_t dots = 0;
        for (size_t i = 0; i < len; i++)
            dots += token[i] == '.';
        return invalid(err, "the token has %zu parts; a signed JWT has 3", dots + 1);
    }
    p->signing_len = (size_t)(dot2 - token);
    const char *start[3] = {token, dot1 + 1, dot2 + 1};
    size_t n[3] = {(size_t)(dot1 - token), (size_t)(dot2 - dot1 - 1), len - (size_t)(dot2 + 1 - token)};
    unsigned char **out[3] = {&p->header, &p->payload, &p->sig};
    size_t *out_len[3] = {&p->header_len, &p->payload_len, &p->sig_len};
    static const char *const names[3] = {"header", "payload", "signature"};
    /* n characters of base64 hold at most n / 4 * 3 + 2 bytes; each part gets those and a NUL. */
    size_t room = 0;
    for (int i = 0; i < 3; i++)
        room += n[i] / 4 * 3 + 3;
    unsigned char *at = p->buf = malloc(room);
    if (!at)
        return mr_err_set(err, MR_ENOMEM, "out of memory decoding a %zu-byte JWT", len);
    for (int i = 0; i < 3; i++) {
        size_t cap = n[i] / 4 * 3 + 2;
        mr_err e;
        if (mr_b64_decode(start[i], n[i], MR_B64_STRICT, at, cap, out_len[i], &e) != MR_OK)
            return invalid(err, "%s: %s", names[i], e.msg);
        at[*out_len[i]] = '\0';
        *out[i] = at;
        at += *out_len[i] + 1;
    }
    if (p->sig_len == 0)
        return invalid(err, "the signature is empty");
    return MR_OK;
}

/* A JSON object, rejecting duplicate names so that nobody reads a different value than we do. */
static mr_code parse_object(const unsigned char *text, size_t len, const char *what, mr_jwt_json *out, mr_err *err)
{
    char why[128];
    switch (mr_jwt_json_parse((const char *)text, len, out, why, sizeof why)) {
    case MR_JWT_JSON_OK: return MR_OK;
    case MR_JWT_JSON_NOT_OBJECT: return invalid(err, "%s is not a JSON object", what);
    case MR_JWT_JSON_NOMEM: return mr_err_set(err, MR_ENOMEM, "%s: %s", what, why);
    case MR_JWT_JSON_INVALID: break;
    }
    return invalid(err, "%s is not JSON: %s", what, why);
}

typedef struct header {
    ja_alg alg;
    const char *alg_name;
    const char *kid;
} header;

static mr_code check_header(const mr_jwt_json *h, header *out, mr_err *err)
{
    char q[64];
    out->alg_name = mr_jwt_json_string(h, "alg");
    if (!out->alg_name)
        return invalid(err, "the header has no alg string");
    out->alg = mr_jwt_alg_lookup(out->alg_name);
    if (out->alg == JA_INVALID)
        return invalid(err, "alg \"%s\" is not accepted (RS256, RS384, RS512, ES256, ES384 are)",
                       mr_jwt_quote(out->alg_name, q, sizeof q));
    const mr_jwt_json_value *kid = mr_jwt_json_get(h, "kid");
    if (kid && kid->kind != MR_JWT_JSON_STRING)
        return invalid(err, "kid is not a string");
    out->kid = kid ? kid->str : NULL;
    const mr_jwt_json_value *typ = mr_jwt_json_get(h, "typ");
    if (typ && !(typ->kind == MR_JWT_JSON_STRING && strcasecmp(typ->str, "JWT") == 0))
        return invalid(err, "typ is not \"JWT\"");
    /* RFC 7515 4.1.11: extensions marked critical must be understood, and we know none. */
    if (mr_jwt_json_get(h, "crit"))
        return invalid(err, "the header has crit extensions");
    return MR_OK;
}

/* Checks a NumericDate claim; *present tells whether it was there. */
static mr_code time_claim(const mr_jwt_json *claims, const char *name, bool *present, double *value, mr_err *err)
{
    const mr_jwt_json_value *c = mr_jwt_json_get(claims, name);
    *present = c != NULL;
    if (!c)
        return MR_OK;
    if (c->kind != MR_JWT_JSON_NUMBER)
        return invalid(err, "%s is not a number", name);
    *value = c->num;
    if (*value < 0 || *value > TIME_MAX_S)
        return invalid(err, "%s %.0f is out of range", name, *value);
    return MR_OK;
}

static mr_code check_times(const mr_jwt_verifier *v, const mr_jwt_json *claims, double *exp_out, mr_err *err)
{
    double now = (double)v->clock(v->clock_ctx) / 1000.0;
    double leeway = (double)v->leeway_s;
    double exp = 0, nbf = 0, iat = 0;
    bool has_exp, has_nbf, has_iat;
    mr_code rc;
    if ((rc = time_claim(claims, "exp", &has_exp, &exp, err)) != MR_OK ||
        (rc = time_claim(claims, "nbf", &has_nbf, &nbf, err)) != MR_OK ||
        (rc = time_claim(claims, "iat", &has_iat, &iat, err)) != MR_OK)
        return rc;
    if (!has_exp)
        return invalid(err, "exp is missing");
    if (exp <= now - leeway)
        return invalid(err, "expired at %.0f, %.0f s ago (leeway %ld s)", exp, now - exp, v->leeway_s);
    if (has_nbf && nbf > now + leeway)
        return invalid(err, "not valid before %.0f, %.0f s from now (leeway %ld s)", nbf, nbf - now,
                       v->leeway_s);
    if (has_iat && iat > now + leeway)
        return invalid(err, "issued at %.0f, %.0f s in the future (leeway %ld s)", iat, iat - now,
                       v->leeway_s);
    *exp_out = exp;
    return MR_OK;
}

static mr_code check_iss_aud(const mr_jwt_verifier *v, const mr_jwt_json *claims, mr_err *err)
{
    char q[96];
    const char *iss = mr_jwt_json_string(claims, "iss");
    if (!iss)
        return invalid(err, "iss is missing or not a string");
    if (strcmp(iss, v->issuer) != 0)
        return invalid(err, "issuer \"%s\" is not the expected \"%s\"", mr_jwt_quote(iss, q, sizeof q), v->issuer);
    const mr_jwt_json_value *aud = mr_jwt_json_get(claims, "aud");
    if (!aud || (aud->kind != MR_JWT_JSON_STRING && aud->kind != MR_JWT_JSON_ARRAY))
        return invalid(err, "aud is missing or neither a string nor a list");
    if (aud->kind == MR_JWT_JSON_STRING ? strcmp(aud->str, v->audience) != 0 : !mr_jwt_json_array_has(aud, v->audience))
        return invalid(err, "audience %s does not include \"%s\"",
                       aud->kind == MR_JWT_JSON_STRING ? mr_jwt_quote(aud->str, q, sizeof q) : "(a list)", v->audience);
    return MR_OK;
}

/* A configured identity claim: a non-empty string, copied to *out. */
static mr_code identity_claim(const mr_jwt_json *claims, const char *name, char **out, mr_err *err)
{
    if (!name)
        return MR_OK;
    char q[64];
    const char *s = mr_jwt_json_string(claims, name);
    if (!s || !*s)
        return invalid(err, "claim \"%s\" is missing, empty or not a string", mr_jwt_quote(name, q, sizeof q));
    *out = strdup(s);
    return *out ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory copying claim \"%s\"", name);
}

static mr_code fill_identity(const mr_jwt_verifier *v, const mr_jwt_json *claims, const header *h,
                             const mr_jwt_key *key, double exp, mr_jwt_identity *id, mr_err *err)
{
    mr_code rc;
    if ((rc = identity_claim(claims, v->email_claim, &id->email, err)) != MR_OK ||
        (rc = identity_claim(claims, v->user_id_claim, &id->user_id, err)) != MR_OK ||
        (rc = identity_claim(claims, v->matrix_user_id_claim, &id->matrix_user_id, err)) != MR_OK)
        return rc;
    const char *sub = mr_jwt_json_string(claims, "sub");
    id->subject = sub ? strdup(sub) : NULL;
    id->kid = key->kid ? strdup(key->kid) : NULL;
    if ((sub && !id->subject) || (key->kid && !id->kid))
        return mr_err_set(err, MR_ENOMEM, "out of memory copying the JWT identity");
    snprintf(id->alg, sizeof id->alg, "%s", h->alg_name);
    id->exp = (int64_t)exp;
    return MR_OK;
}

/* The algorithm is the key's: a header that names another (HS256 with an RSA key as the secret,
 * ES256 on an RSA key, ...) is refused before any signature is computed. */
static mr_code check_signature(const char *token, const parts *p, const header *h, const mr_jwt_key *key,
                               mr_err *err)
{
    char q[80];
    if (!(key->algs & (1u << h->alg)))
        return invalid(err, "alg %s does not match key \"%s\", which allows %s", h->alg_name,
                       key->kid ? mr_jwt_quote(key->kid, q, sizeof q) : "(no kid)", key->algs_str);
    if (!mr_jwt_sig_verify(h->alg, key, (const unsigned char *)token, p->signing_len, p->sig, p->sig_len))
        return invalid(err, "the %s signature does not verify with key \"%s\"", h->alg_name,
                       key->kid ? mr_jwt_quote(key->kid, q, sizeof q) : "(no kid)");
    return MR_OK;
}

static mr_code verify(mr_jwt_verifier *v, const char *token, bool *must_wait, mr_jwt_identity *out, mr_err *err)
{
    mr_jwt_identity id = {0};
    if (out)
        memset(out, 0, sizeof *out);
    if (!token || !*token)
        return invalid(err, "the token is empty");
    size_t len = strnlen(token, v->max_token_bytes + 1);
    if (len > v->max_token_bytes)
        return invalid(err, "the token is longer than %zu bytes", v->max_token_bytes);
    parts p = {0};
    mr_jwt_json hdr = {0}, claims = {0};
    mr_jwt_keyset *held = NULL;
    const mr_jwt_key *key = NULL;
    header h = {0};
    double exp = 0;
    mr_code rc;
    if ((rc = split(token, len, &p, err)) != MR_OK ||
        (rc = parse_object(p.header, p.header_len, "the header", &hdr, err)) != MR_OK ||
        (rc = check_header(&hdr, &h, err)) != MR_OK ||
        (rc = parse_object(p.payload, p.payload_len, "the payload", &claims, err)) != MR_OK)
        goto out;
    rc = mr_jwt_verifier_key(v, h.kid, must_wait, &held, &key, err);
    if (rc == MR_EAUTH)
        mr_err_prefix(err, "invalid JWT");
    if (rc != MR_OK || (rc = check_signature(token, &p, &h, key, err)) != MR_OK ||
        (rc = check_times(v, &claims, &exp, err)) != MR_OK || (rc = check_iss_aud(v, &claims, err)) != MR_OK ||
        (rc = fill_identity(v, &claims, &h, key, exp, &id, err)) != MR_OK)
        goto out;
    if (out) {
        *out = id;
        memset(&id, 0, sizeof id);
    }
out:
    mr_jwt_identity_free(&id);
    mr_jwt_keyset_free(held);
    mr_jwt_json_free(&claims);
    mr_jwt_json_free(&hdr);
    parts_free(&p);
    return rc;
}

mr_code mr_jwt_verify(mr_jwt_verifier *v, const char *token, mr_jwt_identity *out, mr_err *err)
{
    return verify(v, token, NULL, out, err);
}

mr_code mr_jwt_verify_nowait(mr_jwt_verifier *v, const char *token, mr_jwt_identity *out, bool *must_wait,
                             mr_err *err)
{
    *must_wait = false;
    return verify(v, token, must_wait, out, err);
}

void mr_jwt_identity_free(mr_jwt_identity *id)
{
    if (!id)
        return;
    free(id->email);
    free(id->user_id);
    free(id->matrix_user_id);
    free(id->subject);
    free(id->kid);
    memset(id, 0, sizeof *id);
}
