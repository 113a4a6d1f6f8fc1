/* hs_keys.c -- the test homeserver's end-to-end encryption plumbing: device keys, one-time
 * and fallback keys, and to-device messages. */
#include "hs.h"

#include <stdio.h>
#include <string.h>

/* The algorithm part of "algorithm:key_id". */
static void key_alg(const char *key_id, char *alg, size_t cap)
{
    snprintf(alg, cap, "%.*s", (int)strcspn(key_id, ":"), key_id);
}

json_t *hs_otk_counts(const hs_device *d)
{
    json_t *counts = json_object();
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

json_t *hs_fallback_types(const hs_device *d)
{
    json_t *types = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(d->fallback, key, v) {
        char alg[128];
        key_alg(key, alg, sizeof alg);
        json_array_append_new(types, json_string(alg));
    }
    return types;
}

mr_http_response *hs_keys_upload(hs_call *c)
{
    json_t *dk, *otks, *fallback;
    mr_http_response *e;
    if ((e = hs_field_obj(c->body, "device_keys", false, &dk)) ||
        (e = hs_field_obj(c->body, "one_time_keys", false, &otks)) ||
        (e = hs_field_obj(c->body, "fallback_keys", false, &fallback)))
        return e;
    if (dk) {
        const char *uid = json_string_value(json_object_get(dk, "user_id"));
        const char *did = json_string_value(json_object_get(dk, "device_id"));
        if (!uid || !did || strcmp(uid, c->user->user_id) != 0 ||
            strcmp(did, c->device->device_id) != 0)
            return hs_error(400, "M_INVALID_PARAM", "device_keys must name this user and device "
                            "(%s, %s)", c->user->user_id, c->device->device_id);
        json_decref(c->device->keys);
        c->device->keys = json_deep_copy(dk);
        c->user->keys_pos = hs_bump(c->h);
    }
    json_object_update(c->device->otks, otks);
    if (fallback) {
        /* A new fallback key replaces the old one of its algorithm. */
        json_object_clear(c->device->fallback);
        json_object_update(c->device->fallback, fallback);
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

mr_http_response *hs_keys_query(hs_call *c)
{
    json_t *want;
    mr_http_response *e = hs_field_obj(c->body, "device_keys", true, &want);
    if (e)
        return e;
    json_t *out = json_object();
    const char *uid;
    json_t *devs;
    json_object_foreach(want, uid, devs) {
        hs_user *u = hs_user_find(c->h, uid);
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
                json_object_set_new(mine, d->device_id, keys_view(d));
        }
    }
    return hs_ok(json_pack("{s:o, s:{}}", "device_keys", out, "failures"));
}

/* Takes one key of the algorithm from keys ("alg:id" -> key); removes it when consume. */
static bool take_key(json_t *keys, const char *alg, bool consume, json_t *into)
{
    size_t n = strlen(alg);
    const char *id;
    json_t *key;
    json_object_foreach(keys, id, key) {
        if (strncmp(id, alg, n) != 0 || id[n] != ':')
            continue;
        json_object_set(into, id, key);
        if (consume)
            json_object_del(keys, id);
        return true;
    }
    return false;
}

mr_http_response *hs_keys_claim(hs_call *c)
{
    json_t *want;
    mr_http_response *e = hs_field_obj(c->body, "one_time_keys", true, &want);
    if (e)
        return e;
    json_t *out = json_object();
    const char *uid;
    json_t *devs;
    json_object_foreach(want, uid, devs) {
        hs_user *u = hs_user_find(c->h, uid);
        const char *did;
        json_t *alg;
        json_object_foreach(devs, did, alg) {
            hs_device *d = device_find(u, did);
            if (!d || !json_is_string(alg))
                continue;
            json_t *got = json_object();
            /* One-time keys first; the fallback key stays until replaced. */
            if (take_key(d->otks, json_string_value(alg), true, got) ||
                take_key(d->fallback, json_string_value(alg), false, got)) {
                if (!json_object_get(out, uid))
                    json_object_set_new(out, uid, json_object());
                json_object_set(json_object_get(out, uid), did, got);
            }
            json_decref(got);
        }
    }
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
