/* hs_state.c -- the test homeserver's in-memory model: accounts, devices, rooms, events,
 * current state and power levels. Callers hold hs->lock (for writing, unless they only read). */
#include "hs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

mr_code hs_init(hs *h, const hs_opts *opts, mr_err *err)
{
    memset(h, 0, sizeof *h);
    h->opts = *opts;
    pthread_rwlockattr_t la;
    pthread_rwlockattr_init(&la);
    pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&h->lock, &la);
    pthread_rwlockattr_destroy(&la);
    pthread_mutex_init(&h->wake_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->changed, &ca);
    pthread_condattr_destroy(&ca);
    h->aliases = json_object();
    h->uia = json_object();
    h->nonces = json_object();
    h->soft_tokens = json_object();
    h->orphan_tokens = json_object();
    if (!h->aliases || !h->uia || !h->nonces || !h->soft_tokens || !h->orphan_tokens) {
        hs_free(h);
        return mr_err_set(err, MR_ENOMEM, "out of memory initialising the homeserver");
    }
    return MR_OK;
}

static void device_free(hs_device *d)
{
    free(d->device_id);
    free(d->display_name);
    free(d->token);
    json_decref(d->keys);
    json_decref(d->otks);
    json_decref(d->fallback);
    json_decref(d->inbox);
    json_decref(d->txns);
    json_decref(d->xsigs);
    free(d);
}

static void room_free(hs_room *r)
{
    for (size_t i = 0; i < r->nevents; i++) {
        json_decref(r->events[i].ev);
        free(r->events[i].txn_device);
        free(r->events[i].txn_id);
    }
    free(r->events);
    free(r->room_id);
    json_decref(r->state);
    json_decref(r->typing);
    free(r);
}

static void user_free(hs_user *u)
{
    for (size_t j = 0; j < u->ndevices; j++)
        device_free(u->devices[j]);
    free(u->devices);
    free(u->rooms);
    free(u->user_id);
    free(u->password);
    free(u->displayname);
    json_decref(u->filters);
    json_decref(u->xsign);
    free(u);
}

void hs_free(hs *h)
{
    for (size_t i = 0; i < h->nusers; i++)
        user_free(h->users[i]);
    free(h->users);
    for (size_t i = 0; i < h->nrooms; i++)
        room_free(h->rooms[i]);
    free(h->rooms);
    json_decref(h->aliases);
    json_decref(h->uia);
    json_decref(h->nonces);
    json_decref(h->soft_tokens);
    free(h->held_room);
    free(h->held_typing_room);
    json_decref(h->orphan_tokens);
    pthread_cond_destroy(&h->changed);
    pthread_mutex_destroy(&h->wake_lock);
    pthread_rwlock_destroy(&h->lock);
}

long long hs_now_ms(const hs *h)
{
    return h->frozen_ms ? h->frozen_ms : mr_clock_wall_ms();
}

void hs_wake(hs *h)
{
    pthread_mutex_lock(&h->wake_lock);
    __atomic_add_fetch(&h->wakes, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&h->changed);
    pthread_mutex_unlock(&h->wake_lock);
}

bool hs_wait(hs *h, bool write, const struct timespec *deadline)
{
    /* Read before the lock is given up: a wake after that is not missed. */
    unsigned long seen = __atomic_load_n(&h->wakes, __ATOMIC_ACQUIRE);
    pthread_rwlock_unlock(&h->lock);
    int rc = 0;
    pthread_mutex_lock(&h->wake_lock);
    while (__atomic_load_n(&h->wakes, __ATOMIC_ACQUIRE) == seen && rc != ETIMEDOUT)
        rc = deadline ? pthread_cond_timedwait(&h->changed, &h->wake_lock, deadline)
                      : pthread_cond_wait(&h->changed, &h->wake_lock);
    bool woken = __atomic_load_n(&h->wakes, __ATOMIC_ACQUIRE) != seen;
    pthread_mutex_unlock(&h->wake_lock);
    if (write)
        pthread_rwlock_wrlock(&h->lock);
    else
        pthread_rwlock_rdlock(&h->lock);
    return woken;
}

long long hs_bump(hs *h)
{
    h->pos++;
    hs_wake(h);
    return h->pos;
}

void hs_keys_changed(hs *h, hs_user *u)
{
    u->keys_pos = h->keys_pos_max = hs_bump(h);
}

/* Notes r among u's rooms (once); false when out of memory. */
static bool user_room_add(hs_user *u, hs_room *r)
{
    for (size_t i = 0; i < u->nrooms; i++)
        if (u->rooms[i] == r)
            return true;
    hs_room **rooms = realloc(u->rooms, (u->nrooms + 1) * sizeof *rooms);
    if (!rooms)
        return false;
    u->rooms = rooms;
    rooms[u->nrooms++] = r;
    return true;
}

void hs_random_id(char *out, size_t len, const char *alphabet)
{
    unsigned char raw[64];
    size_t n = strlen(alphabet);
    for (size_t done = 0; done < len;) {
        size_t chunk = len - done < sizeof raw ? len - done : sizeof raw;
        if (getrandom(raw, chunk, 0) != (ssize_t)chunk)
            abort(); /* the kernel's entropy source failing is not a test condition */
        for (size_t i = 0; i < chunk; i++)
            out[done + i] = alphabet[raw[i] % n];
        done += chunk;
    }
    out[len] = '\0';
}

/* ---- accounts ---- */

hs_user *hs_user_find(hs *h, const char *user_id)
{
    for (size_t i = 0; i < h->nusers; i++)
        if (strcmp(h->users[i]->user_id, user_id) == 0)
            return h->users[i];
    return NULL;
}

bool hs_localpart_chars_valid(const char *lp)
{
    for (const char *p = lp; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("._=/+-", *p)))
            return false;
    return true;
}

bool hs_user_id_from(const hs *h, const char *name, char *out, size_t cap)
{
    if (name[0] != '@')
        return snprintf(out, cap, "@%s:%s", name, h->opts.server_name) < (int)cap;
    const char *colon = strchr(name, ':');
    if (!colon || strcmp(colon + 1, h->opts.server_name) != 0)
        return false;
    return snprintf(out, cap, "%s", name) < (int)cap;
}

/* Synapse stores the device and token of an appservice login without checking that the user
 * exists; its token lookup joins the users table, so the token is refused until the user is
 * registered and valid from then on. */
static bool adopt_orphan_tokens(hs *h, hs_user *u)
{
    const char *token;
    json_t *o, *tmp;
    json_object_foreach_safe(h->orphan_tokens, tmp, token, o) {
        if (strcmp(json_string_value(json_object_get(o, "user_id")), u->user_id) != 0)
            continue;
        hs_device *d = hs_device_create(u, json_string_value(json_object_get(o, "device_id")),
                                        json_string_value(json_object_get(o, "display_name")));
        char *copy = d ? strdup(token) : NULL;
        if (!copy)
            return false;
        free(d->token);
        d->token = copy;
        json_object_del(h->orphan_tokens, token);
    }
    return true;
}

hs_user *hs_user_create(hs *h, const char *localpart, const char *password)
{
    hs_user **users = realloc(h->users, (h->nusers + 1) * sizeof *users);
    if (!users)
        return NULL;
    h->users = users;
    hs_user *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    size_t n = strlen(localpart) + strlen(h->opts.server_name) + 3;
    u->user_id = malloc(n);
    u->displayname = strdup(localpart); /* as Synapse does: the localpart until set */
    u->password = password ? strdup(password) : NULL;
    u->filters = json_array();
    if (u->user_id)
        snprintf(u->user_id, n, "@%s:%s", localpart, h->opts.server_name);
    bool rooms_ok = true;
    /* Memberships made before the account existed (an invite by user ID). */
    for (size_t i = 0; u->user_id && rooms_ok && i < h->nrooms; i++)
        if (hs_membership(h->rooms[i], u->user_id))
            rooms_ok = user_room_add(u, h->rooms[i]);
    if (!u->user_id || !u->displayname || (password && !u->password) || !u->filters || !rooms_ok ||
        !adopt_orphan_tokens(h, u)) {
        user_free(u);
        return NULL;
    }
    users[h->nusers++] = u;
    return u;
}

hs_device *hs_device_create(hs_user *u, const char *device_id, const char *display_name)
{
    hs_device **devs = realloc(u->devices, (u->ndevices + 1) * sizeof *devs);
    if (!devs)
        return NULL;
    u->devices = devs;
    hs_device *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    char id[11];
    hs_random_id(id, 10, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    d->user_id = u->user_id;
    d->device_id = strdup(device_id && *device_id ? device_id : id);
    d->display_name = display_name ? strdup(display_name) : NULL;
    hs_device_retoken(d);
    d->otks = json_object();
    d->fallback = json_object();
    d->inbox = json_array();
    d->txns = json_object();
    if (!d->device_id || (display_name && !d->display_name) || !d->token || !d->otks ||
        !d->fallback || !d->inbox || !d->txns) {
        device_free(d);
        return NULL;
    }
    devs[u->ndevices++] = d;
    return d;
}

void hs_token_new(char out[41])
{
    memcpy(out, "syt_", 4);
    hs_random_id(out + 4, 36, alnum);
}

bool hs_device_retoken(hs_device *d)
{
    char tok[41];
    hs_token_new(tok);
    char *copy = strdup(tok);
    if (!copy)
        return false;
    free(d->token);
    d->token = copy;
    return true;
}

void hs_device_remove(hs *h, hs_user *u, hs_device *d)
{
    for (size_t i = 0; i < u->ndevices; i++) {
        if (u->devices[i] != d)
            continue;
        memmove(&u->devices[i], &u->devices[i + 1], (u->ndevices - i - 1) * sizeof *u->devices);
        u->ndevices--;
        if (d->keys)
            hs_keys_changed(h, u); /* a device with keys is gone: its device list changed */
        device_free(d);
        h->tokens_gen++;
        return;
    }
}

bool hs_token_find(hs *h, const char *token, hs_user **u, hs_device **d)
{
    for (size_t i = 0; i < h->nusers; i++)
        for (size_t j = 0; j < h->users[i]->ndevices; j++)
            if (strcmp(h->users[i]->devices[j]->token, token) == 0) {
                *u = h->users[i];
                *d = h->users[i]->devices[j];
                return true;
            }
    return false;
}

/* ---- rooms ---- */

hs_room *hs_room_find(hs *h, const char *room_id)
{
    for (size_t i = 0; i < h->nrooms; i++)
        if (strcmp(h->rooms[i]->room_id, room_id) == 0)
            return h->rooms[i];
    return NULL;
}

hs_room *hs_room_new(hs *h)
{
    hs_room **rooms = realloc(h->rooms, (h->nrooms + 1) * sizeof *rooms);
    if (!rooms)
        return NULL;
    h->rooms = rooms;
    hs_room *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    char local[19];
    hs_random_id(local, 18, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    size_t n = strlen(h->opts.server_name) + 22;
    r->room_id = malloc(n);
    r->state = json_object();
    r->typing = json_object();
    if (!r->room_id || !r->state || !r->typing) {
        room_free(r);
        return NULL;
    }
    snprintf(r->room_id, n, "!%s:%s", local, h->opts.server_name);
    rooms[h->nrooms++] = r;
    return r;
}

const hs_event *hs_state_get(const hs_room *r, const char *type, const char *key)
{
    json_t *idx = json_object_get(json_object_get(r->state, type), key);
    return idx ? &r->events[json_integer_value(idx)] : NULL;
}

json_t *hs_state_content(const hs_room *r, const char *type, const char *key)
{
    const hs_event *e = hs_state_get(r, type, key);
    return e ? json_object_get(e->ev, "content") : NULL;
}

const char *hs_membership(const hs_room *r, const char *user_id)
{
    return json_string_value(json_object_get(hs_state_content(r, "m.room.member", user_id),
                                             "membership"));
}

long long hs_membership_pos(const hs_room *r, const char *user_id)
{
    const hs_event *e = hs_state_get(r, "m.room.member", user_id);
    return e ? e->pos : 0;
}

size_t hs_count_members(const hs_room *r, const char *membership)
{
    size_t n = 0;
    const char *key;
    json_t *idx;
    json_object_foreach(json_object_get(r->state, "m.room.member"), key, idx) {
        const char *m = json_string_value(json_object_get(
            json_object_get(r->events[json_integer_value(idx)].ev, "content"), "membership"));
        if (m && strcmp(m, membership) == 0)
            n++;
    }
    return n;
}

hs_event *hs_room_append(hs *h, hs_room *r, const char *sender, const char *type,
                         const char *state_key, json_t *content, const hs_device *txn_dev,
                         const char *txn_id)
{
    if (!content)
        return NULL;
    /* The member's syncs look at this room from now on (a user on another server has none). */
    hs_user *member = state_key && strcmp(type, "m.room.member") == 0 ? hs_user_find(h, state_key) : NULL;
    if (member && !user_room_add(member, r)) {
        json_decref(content);
        return NULL;
    }
    if (r->nevents == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 32;
        hs_event *ev = realloc(r->events, cap * sizeof *ev);
        if (!ev) {
            json_decref(content);
            return NULL;
        }
        r->events = ev;
        r->cap = cap;
    }
    char id[45] = "$";
    hs_random_id(id + 1, 43, b64url);
    json_t *unsig = json_object();
    json_t *ev = json_pack("{s:s, s:s, s:s, s:o, s:I, s:s, s:o}", "event_id", id, "type", type,
                           "sender", sender, "content", content, "origin_server_ts",
                           (json_int_t)mr_clock_wall_ms(), "room_id", r->room_id, "unsigned", unsig);
    if (!ev)
        return NULL;
    if (state_key) {
        json_object_set_new(ev, "state_key", json_string(state_key));
        const hs_event *prev = hs_state_get(r, type, state_key);
        if (prev) {
            json_object_set(unsig, "prev_content", json_object_get(prev->ev, "content"));
            json_object_set(unsig, "replaces_state", json_object_get(prev->ev, "event_id"));
            json_object_set(unsig, "prev_sender", json_object_get(prev->ev, "sender"));
        }
        json_t *by_type = json_object_get(r->state, type);
        if (!by_type) {
            by_type = json_object();
            json_object_set_new(r->state, type, by_type);
        }
        json_object_set_new(by_type, state_key, json_integer((json_int_t)r->nevents));
    }
    hs_event *e = &r->events[r->nevents++];
    *e = (hs_event){.ev = ev, .pos = hs_bump(h)};
    if (state_key && strcmp(type, "m.room.member") == 0)
        r->member_pos = e->pos;
    if (txn_dev && txn_id) {
        e->txn_device = strdup(txn_dev->device_id);
        e->txn_id = strdup(txn_id);
    }
    return e;
}

json_t *hs_event_view(const hs_event *e, const hs_device *viewer)
{
    const char *sender = json_string_value(json_object_get(e->ev, "sender"));
    if (!viewer || !e->txn_device || strcmp(e->txn_device, viewer->device_id) != 0 ||
        strcmp(sender, viewer->user_id) != 0)
        return json_incref(e->ev);
    json_t *copy = json_deep_copy(e->ev);
    json_object_set_new(json_object_get(copy, "unsigned"), "transaction_id", json_string(e->txn_id));
    return copy;
}

json_t *hs_event_stripped(const hs_event *e)
{
    return json_pack("{s:O, s:O, s:O, s:O}", "type", json_object_get(e->ev, "type"), "state_key",
                     json_object_get(e->ev, "state_key"), "content",
                     json_object_get(e->ev, "content"), "sender", json_object_get(e->ev, "sender"));
}

/* ---- power levels, with the spec's defaults for absent keys ---- */

static json_t *power_levels(const hs_room *r)
{
    return hs_state_content(r, "m.room.power_levels", "");
}

static int level_of(json_t *v, int dflt)
{
    if (json_is_integer(v))
        return (int)json_integer_value(v);
    /* Room versions before 10 allowed levels as strings. */
    if (json_is_string(v))
        return atoi(json_string_value(v));
    return dflt;
}

int hs_power_level(const hs_room *r, const char *user_id)
{
    json_t *pl = power_levels(r);
    if (!pl) {
        /* Without a power levels event the creator has 100 and everyone else 0. */
        const hs_event *create = hs_state_get(r, "m.room.create", "");
        const char *creator = create ? json_string_value(json_object_get(create->ev, "sender")) : NULL;
        return creator && strcmp(creator, user_id) == 0 ? 100 : 0;
    }
    json_t *users = json_object_get(pl, "users");
    json_t *v = json_object_get(users, user_id);
    return v ? level_of(v, 0) : level_of(json_object_get(pl, "users_default"), 0);
}

/* The level needed to send type (state or not) according to m.room.power_levels. */
static int power_needed(const hs_room *r, const char *type, bool state)
{
    json_t *pl = power_levels(r);
    json_t *v = json_object_get(json_object_get(pl, "events"), type);
    if (v)
        return level_of(v, 0);
    if (state)
        return level_of(json_object_get(pl, "state_default"), pl ? 50 : 0);
    return level_of(json_object_get(pl, "events_default"), 0);
}

int hs_power_action(const hs_room *r, const char *action)
{
    int dflt = strcmp(action, "invite") == 0 ? 0 : 50;
    return level_of(json_object_get(power_levels(r), action), dflt);
}

/* One level changing from old to new (NULL when absent), per the auth rules for
 * m.room.power_levels: neither side may exceed the sender's level, and another user's level
 * at or above the sender's may not be touched. */
static mr_http_response *check_level_change(const char *sender, int mine, const char *what,
                                            const char *key, json_t *old, json_t *new, int dflt,
                                            bool other_user)
{
    int vo = level_of(old, dflt), vn = level_of(new, dflt);
    if ((old != NULL) == (new != NULL) && vo == vn)
        return NULL;
    if ((old && vo > mine) || (new && vn > mine) || (other_user && old && vo >= mine))
        return hs_error(403, "M_FORBIDDEN", "%s (power level %d) may not change %s%s%s from %d "
                        "to %d", sender, mine, what, key ? " " : "", key ? key : "", vo, vn);
    return NULL;
}

/* Keys of either object, each checked once per side it appears on. */
static mr_http_response *check_map_change(const char *sender, int mine, const char *what,
                                          json_t *old, json_t *new, bool users)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *key;
        json_t *v;
        json_object_foreach(pass ? new : old, key, v) {
            if (pass && json_object_get(old, key))
                continue;
            mr_http_response *e = check_level_change(
                sender, mine, what, key, json_object_get(old, key), json_object_get(new, key), 0,
                users && strcmp(key, sender) != 0);
            if (e)
                return e;
        }
    }
    return NULL;
}

static mr_http_response *check_power_change(const hs_room *r, const char *sender, json_t *next)
{
    int mine = hs_power_level(r, sender);
    json_t *cur = power_levels(r);
    static const struct { const char *key; int dflt; } scalars[] = {
        {"ban", 50}, {"kick", 50}, {"redact", 50}, {"invite", 0}, {"state_default", 50},
        {"events_default", 0}, {"users_default", 0}};
    for (size_t i = 0; i < sizeof scalars / sizeof *scalars; i++) {
        mr_http_response *e = check_level_change(sender, mine, scalars[i].key, NULL,
                                                 json_object_get(cur, scalars[i].key),
                                                 json_object_get(next, scalars[i].key),
                                                 scalars[i].dflt, false);
        if (e)
            return e;
    }
    mr_http_response *e = check_map_change(sender, mine, "the level of event",
                                           json_object_get(cur, "events"),
                                           json_object_get(next, "events"), false);
    if (!e)
        e = check_map_change(sender, mine, "the level of user", json_object_get(cur, "users"),
                             json_object_get(next, "users"), true);
    return e;
}

/* Synapse's event_auth._check_size_limits: type, state_key, sender and room ID at most 255 bytes,
 * and the whole event in its federation form, as canonical JSON, at most MAX_PDU_SIZE (65536)
 * bytes, else 413 M_TOO_LARGE. That form adds hashes, signatures, auth and prev events, depth and
 * the server's time to what the client sent: PDU_OVERHEAD is a fixed estimate of those fields. */
#define MAX_PDU_SIZE 65536
#define PDU_OVERHEAD 600
static mr_http_response *check_size(const hs_room *r, const char *user_id, const char *type,
                                    const char *state_key, json_t *content)
{
    static const char *const names[] = {"type", "state_key", "user_id", "room_id"};
    const char *values[] = {type, state_key, user_id, r->room_id};
    for (size_t i = 0; i < 4; i++)
        if (values[i] && strlen(values[i]) > 255)
            return hs_error(413, "M_TOO_LARGE", "'%s' too large", names[i]);
    char *text = json_dumps(content, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return NULL;
    size_t size = strlen(text) + strlen(type) + (state_key ? strlen(state_key) : 0) + strlen(user_id) +
                  strlen(r->room_id) + PDU_OVERHEAD;
    free(text);
    return size > MAX_PDU_SIZE ? hs_error(413, "M_TOO_LARGE", "event too large") : NULL;
}

mr_http_response *hs_check_send(const hs_room *r, const char *user_id, const char *type,
                                const char *state_key, json_t *content)
{
    const char *m = hs_membership(r, user_id);
    if (!m || strcmp(m, "join") != 0)
        return hs_error(403, "M_FORBIDDEN", "%s is not in room %s", user_id, r->room_id);
    int have = hs_power_level(r, user_id);
    int need = power_needed(r, type, state_key != NULL);
    if (have < need)
        return hs_error(403, "M_FORBIDDEN", "sending %s in %s needs power level %d, %s has %d",
                        type, r->room_id, need, user_id, have);
    /* State keys naming a user belong to that user. */
    if (state_key && state_key[0] == '@' && strcmp(state_key, user_id) != 0)
        return hs_error(403, "M_FORBIDDEN", "state key %s belongs to another user", state_key);
    if (state_key && strcmp(type, "m.room.power_levels") == 0) {
        mr_http_response *e = check_power_change(r, user_id, content);
        if (e)
            return e;
    }
    return check_size(r, user_id, type, state_key, content);
}
