/* hs_keys.c -- the test homeserver's end-to-end encryption plumbing: device keys, one-time
 * and fallback keys, and to-device messages. */
#include "hs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The algorithm part of "algorithm:key_id". */
static void key_alg(const char *key_id, char *alg, size_t cap)
{
    snprintf(alg, cap, "%.*s", (int)strcspn(key_id, ":"), key_id);
}

/* Synapse's count_e2e_one_time_keys: signed_curve25519 is always there, 0 when none are left,
 * since clients assume it is. */
json_t *hs_otk_counts(const hs_device *d)
{
    json_t *counts = json_pack("{s:i}", "signed_curve25519", 0);
    const char *key;
    json_t *v;
    json_object_foreach(d->otks, key, v) {
        char alg[128];
        key_alg(key, alg, sizeof alg);
        json_object_set_new(counts, alg,
                            json_integer(json_integer_value(json_object_get(counts, alg)) + 1));
    }
    return counts;
}

/* Synapse's get_e2e_unused_fallback_key_types: a fallback key handed out by /keys/claim is
 * used, and stays so until a different one is uploaded. */
json_t *hs_fallback_types(const hs_device *d)
{
    json_t *types = json_array();
    const char *alg;
    json_t *v;
    json_object_foreach(d->fallback, alg, v)
        if (!json_is_true(json_object_get(v, "used")))
            json_array_append_new(types, json_string(alg));
    return types;
}

/* Synapse's KeyUploadServlet validators: every key ID is "<algorithm>:<id>", one colon. */
static mr_http_response *check_key_ids(json_t *keys, const char *field)
{
    const char *id;
    json_t *v;
    json_object_foreach(keys, id, v) {
        const char *colon = strchr(id, ':');
        if (!colon || strchr(colon + 1, ':'))
            return hs_error(400, "M_BAD_JSON", "Invalid %s key '%s'. Expected \"<algorithm>:<device_id>\".",
                            field, id);
        if (!json_is_string(v) && !json_is_string(json_object_get(v, "key")))
            return hs_error(400, "M_BAD_JSON", "%s.%s: not a key string or a key object", field, id);
    }
    return NULL;
}

/* Synapse's DeviceKeys model (explicit null refused), then the check that it names the caller:
 * both M_BAD_JSON with Synapse's messages. */
static mr_http_response *check_device_keys(hs_call *c, json_t *dk)
{
    if (json_is_null(dk))
        return hs_error(400, "M_BAD_JSON", "device_keys must not be null");
    if (!dk)
        return NULL;
    const char *uid = json_string_value(json_object_get(dk, "user_id"));
    const char *did = json_string_value(json_object_get(dk, "device_id"));
    if (!json_is_object(dk) || !uid || !did || !json_is_array(json_object_get(dk, "algorithms")) ||
        !json_is_object(json_object_get(dk, "keys")) || !json_is_object(json_object_get(dk, "signatures")))
        return hs_error(400, "M_BAD_JSON", "device_keys: algorithms, device_id, keys, signatures and user_id are "
                        "required");
    if (strcmp(uid, c->user->user_id) != 0)
        return hs_error(400, "M_BAD_JSON", "Provided `user_id` in `device_keys` does not match that of the "
                        "authenticated user");
    if (strcmp(did, c->device->device_id) != 0)
        return hs_error(400, "M_BAD_JSON", "Provided `device_id` in `device_keys` does not match that of the "
                        "authenticated user device");
    return NULL;
}

/* Synapse's _one_time_keys_match: equal once signatures are set aside. */
static bool otk_same(json_t *a, json_t *b)
{
    if (!json_is_object(a) || !json_is_object(b))
        return json_equal(a, b);
    json_t *x = json_copy(a), *y = json_copy(b);
    json_object_del(x, "signatures");
    json_object_del(y, "signatures");
    bool same = json_equal(x, y);
    json_decref(x);
    json_decref(y);
    return same;
}

mr_http_response *hs_keys_upload(hs_call *c)
{
    json_t *dk = json_object_get(c->body, "device_keys"), *otks, *fallback;
    mr_http_response *e;
    if ((e = check_device_keys(c, dk)) || (e = hs_field_obj(c->body, "one_time_keys", false, &otks)) ||
        (e = hs_field_obj(c->body, "fallback_keys", false, &fallback)) ||
        (e = check_key_ids(otks, "one_time_keys")) || (e = check_key_ids(fallback, "fallback_keys")))
        return e;
    /* Synapse's _upload_one_time_keys_for_user: a key ID uploaded again must carry the same key;
     * the whole upload is refused before anything is stored. */
    const char *id;
    json_t *k;
    json_object_foreach(otks, id, k) {
        json_t *old = json_object_get(c->device->otks, id);
        if (old && !otk_same(old, k)) {
            char *o = json_dumps(old, JSON_COMPACT | JSON_SORT_KEYS), *n = json_dumps(k, JSON_COMPACT);
            e = hs_error(400, "M_UNKNOWN", "One time key %s already exists. Old key: %s; new key: %s", id,
                         o ? o : "", n ? n : "");
            free(o);
            free(n);
            return e;
        }
    }
    /* Synapse's upload_device_keys_for_user notifies a device list change only when they changed. */
    if (dk && !json_equal(dk, c->device->keys)) {
        json_decref(c->device->keys);
        c->device->keys = json_deep_copy(dk);
        hs_keys_changed(c->h, c->user);
    }
    json_object_update(c->device->otks, otks);
    /* Synapse's _set_e2e_fallback_keys_txn: one key per algorithm; a different key replaces it
     * unused, the same key again changes nothing (a used key stays used). */
    json_object_foreach(fallback, id, k) {
        char alg[128];
        key_alg(id, alg, sizeof alg);
        json_t *cur = json_object_get(c->device->fallback, alg);
        if (!cur || !json_equal(json_object_get(cur, "key"), k))
            json_object_set_new(c->device->fallback, alg, json_pack("{s:s, s:O, s:b}", "id", id, "key", k, "used", 0));
    }
    return hs_ok(json_pack("{s:o}", "one_time_key_counts", hs_otk_counts(c->device)));
}

static hs_device *device_find(hs_user *u, const char *device_id)
{
    for (size_t i = 0; u && i < u->ndevices; i++)
        if (strcmp(u->devices[i]->device_id, device_id) == 0)
            return u->devices[i];
    return NULL;
}

/* Device keys as others see them, with the device's display name in unsigned. */
static json_t *keys_view(const hs_device *d)
{
    json_t *k = json_deep_copy(d->keys);
    if (d->display_name)
        json_object_set_new(k, "unsigned", json_pack("{s:s}", "device_display_name", d->display_name));
    return k;
}

/* For each user the body's field asks about ({user_id: what is asked}), fn with the user (NULL
 * when unknown), what is asked and *out, a new object it fills; *want is the field. */
static mr_http_response *each_user(hs_call *c, const char *field,
                                   void (*fn)(hs_user *u, const char *uid, json_t *asked, json_t *out), json_t **want,
                                   json_t **out)
{
    mr_http_response *e = hs_field_obj(c->body, field, true, want);
    if (e)
        return e;
    *out = json_object();
    const char *uid;
    json_t *asked;
    json_object_foreach(*want, uid, asked)
        fn(hs_user_find(c->h, uid), uid, asked, *out);
    return NULL;
}

/* The keys of the user's devices listed in devs (every device when empty). */
static void query_user(hs_user *u, const char *uid, json_t *devs, json_t *out)
{
    json_t *mine = json_object();
    json_object_set_new(out, uid, mine);
    for (size_t i = 0; u && i < u->ndevices; i++) {
        hs_device *d = u->devices[i];
        bool asked = !json_array_size(devs);
        size_t j;
        json_t *v;
        json_array_foreach(devs, j, v)
            asked = asked || strcmp(json_string_value(v) ? json_string_value(v) : "", d->device_id) == 0;
        if (asked && d->keys)
            json_object_set_new(mine, d->device_id, hs_xsign_device_keys(d, keys_view(d)));
    }
}

mr_http_response *hs_keys_query(hs_call *c)
{
    json_t *want, *out;
    mr_http_response *e = each_user(c, "device_keys", query_user, &want, &out);
    if (e)
        return e;
    json_t *reply = json_pack("{s:o, s:{}}", "device_keys", out, "failures");
    const char *uid;
    json_t *devs;
    json_object_foreach(want, uid, devs)
        hs_xsign_query(c, uid, reply);
    return hs_ok(reply);
}

/* Takes one one-time key of the algorithm into `into` and removes it. */
static bool take_otk(json_t *keys, const char *alg, json_t *into)
{
    size_t n = strlen(alg);
    const char *id;
    json_t *key;
    json_object_foreach(keys, id, key) {
        if (strncmp(id, alg, n) != 0 || id[n] != ':')
            continue;
        json_object_set(into, id, key);
        json_object_del(keys, id);
        return true;
    }
    return false;
}

/* Synapse's claim_e2e_fallback_keys: the fallback key is handed out and marked used. */
static bool take_fallback(json_t *fallback, const char *alg, json_t *into)
{
    json_t *f = json_object_get(fallback, alg);
    if (!f)
        return false;
    json_object_set(into, json_string_value(json_object_get(f, "id")), json_object_get(f, "key"));
    json_object_set_new(f, "used", json_true());
    return true;
}

/* One key of each asked algorithm ({device_id: algorithm}) from the user's devices; a user
 * none is claimed from is left out, as Synapse does. */
static void claim_user(hs_user *u, const char *uid, json_t *devs, json_t *out)
{
    const char *did;
    json_t *alg;
    json_object_foreach(devs, did, alg) {
        hs_device *d = device_find(u, did);
        if (!d || !json_is_string(alg))
            continue;
        json_t *got = json_object();
        /* One-time keys first; the fallback key stays until replaced. */
        if (take_otk(d->otks, json_string_value(alg), got) ||
            take_fallback(d->fallback, json_string_value(alg), got)) {
            if (!json_object_get(out, uid))
                json_object_set_new(out, uid, json_object());
            json_object_set(json_object_get(out, uid), did, got);
        }
        json_decref(got);
    }
}

mr_http_response *hs_keys_claim(hs_call *c)
{
    json_t *want, *out;
    mr_http_response *e = each_user(c, "one_time_keys", claim_user, &want, &out);
    if (e)
        return e;
    return hs_ok(json_pack("{s:o, s:{}}", "one_time_keys", out, "failures"));
}

static void deliver(hs *h, hs_device *d, const char *sender, const char *type, json_t *content)
{
    json_array_append_new(d->inbox, json_pack("{s:I, s:{s:s, s:s, s:O}}", "pos",
                                              (json_int_t)hs_bump(h), "event", "sender", sender,
                                              "type", type, "content", content));
}

mr_http_response *hs_send_to_device(hs_call *c)
{
    json_t *done = hs_txn_get(c);
    if (done)
        return hs_ok(json_incref(done));
    json_t *messages;
    mr_http_response *e = hs_field_obj(c->body, "messages", true, &messages);
    if (e)
        return e;
    const char *uid;
    json_t *per_device;
    json_object_foreach(messages, uid, per_device) {
        hs_user *u = hs_user_find(c->h, uid);
        const char *did;
        json_t *content;
        json_object_foreach(per_device, did, content) {
            if (!u || !json_is_object(content))
                continue;
            bool all = strcmp(did, "*") == 0;
            for (size_t i = 0; i < u->ndevices; i++)
                if (all || strcmp(u->devices[i]->device_id, did) == 0)
                    deliver(c->h, u->devices[i], c->user->user_id, c->cap[0], content);
        }
    }
    json_t *body = json_object();
    hs_txn_put(c, body);
    return hs_ok(body);
}
