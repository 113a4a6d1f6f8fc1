/* hs_cross_signing.c -- the test homeserver's cross-signing endpoints, as Synapse's
 * SigningKeyUploadServlet, SignaturesUploadServlet and E2eKeysHandler do them: master and
 * self-signing keys (user-interactive auth only once a master key exists, MSC3967, and not for
 * the same keys again), signatures of a user's own devices by its self-signing key, and the keys
 * and signatures /keys/query hands out. Signatures are checked through libs/olm as Synapse checks
 * them with signedjson. */
#include "hs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/olm.h"

/* The one Ed25519 key of a cross-signing key object ("ed25519:<pub>" -> "<pub>"), or NULL. */
static const char *one_key(json_t *k, const char **key_id)
{
    json_t *keys = json_object_get(k, "keys");
    const char *id;
    json_t *v;
    if (json_object_size(keys) != 1)
        return NULL;
    json_object_foreach(keys, id, v) {
        *key_id = id;
        return json_string_value(v);
    }
    return NULL;
}

/* Synapse's _check_cross_signing_key: the key names the user and the usage, and is signed by
 * signer (the master key) when one is given. */
static mr_http_response *check_key(hs_call *c, json_t *k, const char *usage, json_t *signer)
{
    const char *id = NULL, *pub = one_key(k, &id);
    json_t *usages = json_object_get(k, "usage");
    bool has_usage = false;
    size_t i;
    json_t *u;
    json_array_foreach(usages, i, u)
        has_usage = has_usage || strcmp(json_string_value(u) ? json_string_value(u) : "", usage) == 0;
    const char *uid = json_string_value(json_object_get(k, "user_id"));
    if (!pub || !has_usage || !uid || strcmp(uid, c->user->user_id) != 0)
        return hs_error(400, "M_INVALID_PARAM", "Invalid %s key", usage);
    const char *signer_id = NULL, *signer_pub = signer ? one_key(signer, &signer_id) : NULL;
    mr_err err = {0};
    if (signer && (!signer_pub || mr_olm_verify_json(k, c->user->user_id, signer_id, signer_pub, &err) != MR_OK))
        return hs_error(400, "M_INVALID_SIGNATURE", "Invalid signature");
    return NULL;
}

/* Synapse's E2eKeysHandler.has_different_keys: a key of the body that is not the stored one. */
static bool different_keys(hs_user *u, json_t *body)
{
    static const char *const kinds[] = {"master_key", "self_signing_key", "user_signing_key"};
    static const char *const stored[] = {"master", "self_signing", "user_signing"};
    for (size_t i = 0; i < 3; i++) {
        json_t *k = json_object_get(body, kinds[i]);
        if (k && !json_equal(k, json_object_get(u->xsign, stored[i])))
            return true;
    }
    return false;
}

/* Synapse's validate_user_via_ui_auth with the one flow a password account has: NULL when auth
 * completes m.login.password for this user, else the 401 (or 400 for an unknown session). */
static mr_http_response *password_auth(hs_call *c, json_t *auth)
{
    const char *given = json_string_value(json_object_get(auth, "session"));
    char sid[25];
    if (given && !json_object_get(c->h->uia, given))
        return hs_error(400, "M_UNKNOWN", "Unknown session ID: %s", given);
    if (given)
        snprintf(sid, sizeof sid, "%s", given);
    else
        hs_random_id(sid, 24, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
    if (!given && json_object_set_new(c->h->uia, sid, json_pack("{s:[]}", "completed")) != 0)
        return hs_error(500, "M_UNKNOWN", "out of memory starting an auth session");
    const char *type = json_string_value(json_object_get(auth, "type"));
    json_t *ident = json_object_get(auth, "identifier");
    const char *user = json_string_value(json_object_get(ident, "user"));
    const char *password = json_string_value(json_object_get(auth, "password"));
    bool tried = type && strcmp(type, "m.login.password") == 0;
    /* Synapse takes the user as a localpart or a user ID, and refuses another user's. */
    bool me = user && (strcmp(user, c->user->user_id) == 0 ||
                       (strlen(user) + 1 < strlen(c->user->user_id) &&
                        strncmp(c->user->user_id + 1, user, strlen(user)) == 0 &&
                        c->user->user_id[strlen(user) + 1] == ':'));
    if (tried && me && password && c->user->password && strcmp(password, c->user->password) == 0) {
        json_object_del(c->h->uia, sid);
        return NULL;
    }
    json_t *body = json_pack("{s:[{s:[s]}], s:{}, s:s}", "flows", "stages", "m.login.password", "params",
                             "session", sid);
    if (!body || (tried && (json_object_set_new(body, "errcode", json_string("M_FORBIDDEN")) != 0 ||
                            json_object_set_new(body, "error", json_string("Invalid username or password")) != 0))) {
        json_decref(body);
        return hs_error(500, "M_UNKNOWN", "out of memory answering an auth stage");
    }
    return mr_http_reply_json(401, body);
}

mr_http_response *hs_keys_device_signing_upload(hs_call *c)
{
    hs_user *u = c->user;
    json_t *master = json_object_get(c->body, "master_key"), *ssk = json_object_get(c->body, "self_signing_key");
    json_t *usk = json_object_get(c->body, "user_signing_key");
    if (json_object_get(u->xsign, "master")) {
        /* Synapse: the same keys again need no auth and change nothing. */
        if (!different_keys(u, c->body))
            return hs_ok(json_object());
        mr_http_response *e = password_auth(c, json_object_get(c->body, "auth"));
        if (e)
            return e;
    }
    json_t *signer = master ? master : json_object_get(u->xsign, "master");
    mr_http_response *e = NULL;
    if (master && (e = check_key(c, master, "master", NULL)))
        return e;
    if ((ssk || usk) && !signer)
        return hs_error(400, "M_MISSING_PARAM", "No master key available to verify signature.");
    if ((ssk && (e = check_key(c, ssk, "self_signing", signer))) ||
        (usk && (e = check_key(c, usk, "user_signing", signer))))
        return e;
    if ((!u->xsign && !(u->xsign = json_object())) || (master && json_object_set(u->xsign, "master", master) != 0) ||
        (ssk && json_object_set(u->xsign, "self_signing", ssk) != 0) ||
        (usk && json_object_set(u->xsign, "user_signing", usk) != 0))
        return hs_error(500, "M_UNKNOWN", "out of memory storing cross-signing keys");
    /* Synapse notifies a device list change, so others query the new keys. */
    hs_keys_changed(c->h, u);
    return hs_ok(json_object());
}

static json_t *failure(const char *errcode, const char *message)
{
    return json_pack("{s:i, s:s, s:s}", "status", 400, "errcode", errcode, "message", message);
}

/* Synapse's _process_self_signatures for one device: the signed object is the stored device
 * keys signed by the self-signing key; its new signature is kept. NULL, or the failure. */
static json_t *sign_own_device(hs_call *c, const char *device_id, json_t *signed_keys)
{
    hs_device *d = NULL;
    for (size_t i = 0; i < c->user->ndevices; i++)
        if (strcmp(c->user->devices[i]->device_id, device_id) == 0)
            d = c->user->devices[i];
    json_t *ssk = json_object_get(c->user->xsign, "self_signing");
    const char *ssk_id = NULL, *ssk_pub = ssk ? one_key(ssk, &ssk_id) : NULL;
    if (!ssk_pub)
        return failure("M_NOT_FOUND", "No self-signing key");
    if (!d || !d->keys)
        return failure("M_NOT_FOUND", "Unknown device");
    mr_err err = {0};
    if (mr_olm_verify_json(signed_keys, c->user->user_id, ssk_id, ssk_pub, &err) != MR_OK)
        return failure("M_INVALID_SIGNATURE", "Invalid signature");
    json_t *stored = json_deep_copy(d->keys), *given = json_deep_copy(signed_keys);
    json_object_del(stored, "signatures");
    json_object_del(stored, "unsigned");
    json_object_del(given, "signatures");
    json_object_del(given, "unsigned");
    bool same = json_equal(stored, given);
    json_decref(stored);
    json_decref(given);
    if (!same)
        return failure("M_INVALID_PARAM", "Key does not match");
    const char *sig = json_string_value(
        json_object_get(json_object_get(json_object_get(signed_keys, "signatures"), c->user->user_id), ssk_id));
    json_t *mine = json_object_get(d->xsigs, c->user->user_id);
    if ((!d->xsigs && !(d->xsigs = json_object())) ||
        (!mine && json_object_set_new(d->xsigs, c->user->user_id, mine = json_object()) != 0) ||
        json_object_set_new(mine, ssk_id, json_string(sig)) != 0)
        return failure("M_UNKNOWN", "out of memory storing a signature");
    return NULL;
}

mr_http_response *hs_keys_signatures_upload(hs_call *c)
{
    json_t *failures = json_object();
    const char *uid;
    json_t *objs;
    bool changed = false;
    json_object_foreach(c->body, uid, objs) {
        const char *id;
        json_t *o;
        json_object_foreach(objs, id, o) {
            /* Signatures of other users' keys (user-signing) are not modelled: a failure, as
             * Synapse reports a key it cannot find. */
            json_t *f = strcmp(uid, c->user->user_id) == 0 && json_is_object(o)
                            ? sign_own_device(c, id, o)
                            : failure("M_NOT_FOUND", "Not a device of the uploading user");
            if (!f) {
                changed = true;
                continue;
            }
            if ((!json_object_get(failures, uid) && json_object_set_new(failures, uid, json_object()) != 0) ||
                json_object_set_new(json_object_get(failures, uid), id, f) != 0) {
                json_decref(failures);
                return hs_error(500, "M_UNKNOWN", "out of memory listing failures");
            }
        }
    }
    if (changed)
        hs_keys_changed(c->h, c->user);
    return hs_ok(json_pack("{s:o}", "failures", failures));
}

json_t *hs_xsign_device_keys(const hs_device *d, json_t *keys)
{
    const char *uid;
    json_t *sigs;
    json_t *all = json_object_get(keys, "signatures");
    json_object_foreach(d->xsigs, uid, sigs) {
        /* Out of memory: the view goes without the cross-signature, as a query racing it would. */
        if ((!json_object_get(all, uid) && json_object_set_new(all, uid, json_object()) != 0) ||
            json_object_update(json_object_get(all, uid), sigs) != 0)
            break;
    }
    return keys;
}

void hs_xsign_query(hs_call *c, const char *user_id, json_t *reply)
{
    static const char *const stored[] = {"master", "self_signing", "user_signing"};
    static const char *const fields[] = {"master_keys", "self_signing_keys", "user_signing_keys"};
    hs_user *u = hs_user_find(c->h, user_id);
    for (size_t i = 0; i < 3; i++) {
        /* Synapse's query_devices always has the three maps, empty when no key is known. */
        if (!json_object_get(reply, fields[i]) && json_object_set_new(reply, fields[i], json_object()) != 0)
            return;
        json_t *k = u ? json_object_get(u->xsign, stored[i]) : NULL;
        /* A user-signing key goes to its owner only. */
        if (k && (i != 2 || u == c->user) && json_object_set(json_object_get(reply, fields[i]), user_id, k) != 0)
            return;
    }
}
