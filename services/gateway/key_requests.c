/* key_requests.c -- the keys_* send requests of mindroom-crypto: POST /keys/upload, /keys/query,
 * /keys/claim, /keys/device_signing/upload or /keys/signatures/upload as the account, the homeserver's answer published on matrix.keys (keyed by
 * account) for crypto to read. The gateway holds the access tokens, so crypto asks it to make
 * these calls as it asks for every other. */
#include "gateway_internal.h"

#include <string.h>

#define TOPIC_KEYS "matrix.keys"

bool gw_keys_kind(const char *kind)
{
    return strcmp(kind, "keys_upload") == 0 || strcmp(kind, "keys_query") == 0 || strcmp(kind, "keys_claim") == 0 ||
           strcmp(kind, "keys_device_signing_upload") == 0 || strcmp(kind, "keys_signatures_upload") == 0;
}

/* password: the account's, for the user-interactive auth of /keys/device_signing/upload (NULL
 * for appservice users and given tokens: Synapse lets a first upload through without it). */
static mr_code call(mr_matrix *m, const char *kind, json_t *body, const char *password, json_t **out, mr_err *err)
{
    if (strcmp(kind, "keys_device_signing_upload") == 0)
        return mr_matrix_keys_device_signing_upload(m, body, password, out, err);
    if (strcmp(kind, "keys_signatures_upload") == 0)
        return mr_matrix_keys_signatures_upload(m, body, out, err);
    if (strcmp(kind, "keys_upload") == 0)
        return mr_matrix_keys_upload(m, body, out, err);
    if (strcmp(kind, "keys_query") == 0)
        return mr_matrix_keys_query(m, body, out, err);
    return mr_matrix_keys_claim(m, body, out, err);
}

mr_code gw_keys_perform(gw *g, mr_matrix *m, json_t *req, const char *kind, mr_err *err)
{
    json_t *out = NULL;
    mr_err herr = {0};
    const gw_account *a = gw_account_by_user(g, json_string_value(json_object_get(req, "account")));
    mr_code rc = call(m, kind, json_object_get(req, "body"), a ? a->password : NULL, &out, &herr);
    /* Left for redelivery, or for the caller's relogin. */
    if (rc == MR_EUNAVAIL || rc == MR_ENOMEM || rc == MR_EAUTH) {
        json_decref(out);
        *err = herr;
        return rc;
    }
    /* A refusal is an answer too: crypto must not wait for one that never comes. */
    json_t *reply = json_pack("{s:i, s:s, s:O, s:s, s:O, s:b}", "v", 1, "type", "keys_reply", "account",
                              json_object_get(req, "account"), "kind", kind, "txn_id",
                              json_object_get(req, "txn_id"), "ok", rc == MR_OK);
    if (reply && json_object_set_new(reply, rc == MR_OK ? "response" : "error",
                                     rc == MR_OK ? json_incref(json_is_object(out) ? out : NULL)
                                                 : json_string(herr.msg)) != 0) {
        json_decref(reply);
        reply = NULL;
    }
    json_decref(out);
    char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    json_decref(reply);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "out of memory answering a %s request", kind);
    const char *account = json_string_value(json_object_get(req, "account"));
    mr_code prc = mr_bus_publish(g->rt->bus, TOPIC_KEYS, account, text, strlen(text), err);
    free(text);
    if (prc == MR_OK)
        prc = mr_bus_flush(g->rt->bus, GW_FLUSH_TIMEOUT_MS, err);
    if (prc == MR_OK && rc != MR_OK)
        mr_log_warn(GW, "%s of %s refused: %s", kind, account, herr.msg);
    return prc;
}
