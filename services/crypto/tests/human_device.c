/* human_device.c -- the human's device of the crypto tests (see human_device.h). */
#include "human_device.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void ok(mr_code rc, const mr_err *err, const char *what)
{
    if (rc != MR_OK)
        fail_msg("human device: %s: %s", what, err->msg);
}

void human_new(human_device *h, const char *user_id, const char *device_id)
{
    memset(h, 0, sizeof *h);
    h->user_id = user_id;
    h->device_id = device_id;
    mr_err err = {0};
    ok(mr_olm_account_new(&h->account, &err), &err, "account");
    ok(mr_olm_outbound_group_new(&h->megolm, &err), &err, "Megolm session");
}

void human_free(human_device *h)
{
    mr_olm_session_free(h->olm);
    mr_olm_outbound_group_free(h->megolm);
    mr_olm_account_free(h->account);
    memset(h, 0, sizeof *h);
}

void human_rotate(human_device *h)
{
    mr_err err = {0};
    mr_olm_outbound_group_free(h->megolm);
    h->megolm = NULL;
    ok(mr_olm_outbound_group_new(&h->megolm, &err), &err, "Megolm session");
}

json_t *human_device_keys(human_device *h)
{
    json_t *keys = NULL;
    mr_err err = {0};
    ok(mr_olm_account_device_keys(h->account, h->user_id, h->device_id, &keys, &err), &err, "device keys");
    return keys;
}

void human_start_olm(human_device *h, const char *agent, const char *agent_device, const char *agent_curve,
                     const char *agent_ed, json_t *claimed_key)
{
    const mr_olm_device dev = {.user_id = agent, .device_id = agent_device, .curve25519 = agent_curve,
                               .ed25519 = agent_ed};
    mr_err err = {0};
    mr_olm_session_free(h->olm);
    h->olm = NULL;
    ok(mr_olm_session_new_outbound(h->account, &dev, claimed_key, &h->olm, &err), &err, "Olm session");
}

json_t *human_olm_to_agent(human_device *h, const char *type, json_t *content, const char *agent,
                           const char *agent_curve, const char *agent_ed)
{
    mr_err err = {0};
    char *plain = NULL, *body = NULL;
    const mr_olm_payload_parties parties = {.sender = h->user_id,
                                            .sender_ed25519 = mr_olm_account_ed25519(h->account),
                                            .recipient = agent, .recipient_ed25519 = agent_ed};
    ok(mr_olm_payload_build(&parties, type, content, &plain, &err), &err, "payload");
    int kind = 0;
    ok(mr_olm_session_encrypt(h->olm, plain, strlen(plain), &kind, &body, &err), &err, "Olm encrypt");
    json_t *out = json_pack("{s:s, s:s, s:{s:{s:i, s:s}}}", "algorithm", MR_OLM_ALGORITHM_OLM, "sender_key",
                            mr_olm_account_curve25519(h->account), "ciphertext", agent_curve, "type", kind, "body",
                            body);
    mr_olm_free_secret(plain, strlen(plain));
    free(body);
    json_decref(content);
    return out;
}

json_t *human_room_key(human_device *h, const char *room_id, const char *agent, const char *agent_curve,
                       const char *agent_ed)
{
    mr_err err = {0};
    char id[MR_OLM_KEY_SIZE], *session_key = NULL;
    mr_olm_outbound_group_id(h->megolm, id);
    ok(mr_olm_outbound_group_key(h->megolm, &session_key, &err), &err, "session key");
    json_t *content = json_pack("{s:s, s:s, s:s, s:s}", "algorithm", MR_OLM_ALGORITHM_MEGOLM, "room_id", room_id,
                                "session_id", id, "session_key", session_key);
    mr_olm_free_secret(session_key, strlen(session_key));
    return human_olm_to_agent(h, "m.room_key", content, agent, agent_curve, agent_ed);
}

json_t *human_forwarded_key(human_device *h, const char *room_id, const char *sender_key)
{
    mr_err err = {0};
    char id[MR_OLM_KEY_SIZE], *session_key = NULL, *exported = NULL;
    mr_olm_inbound_group *g = NULL;
    mr_olm_outbound_group_id(h->megolm, id);
    ok(mr_olm_outbound_group_key(h->megolm, &session_key, &err), &err, "session key");
    ok(mr_olm_inbound_group_new(session_key, &g, &err), &err, "inbound session");
    ok(mr_olm_inbound_group_export(g, mr_olm_inbound_group_first_index(g), &exported, &err), &err, "export");
    json_t *content = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[]}", "algorithm", MR_OLM_ALGORITHM_MEGOLM,
                                "room_id", room_id, "session_id", id, "session_key", exported, "sender_key",
                                sender_key, "sender_claimed_ed25519_key", mr_olm_account_ed25519(h->account),
                                "forwarding_curve25519_key_chain");
    mr_olm_inbound_group_free(g);
    mr_olm_free_secret(session_key, strlen(session_key));
    mr_olm_free_secret(exported, strlen(exported));
    return content;
}

json_t *human_encrypt_text(human_device *h, const char *room_id, const char *body)
{
    json_t *plain = json_pack("{s:s, s:s, s:{s:s, s:s}}", "type", "m.room.message", "room_id", room_id, "content",
                              "msgtype", "m.text", "body", body);
    char *text = json_dumps(plain, JSON_COMPACT), *ct = NULL, id[MR_OLM_KEY_SIZE];
    mr_err err = {0};
    ok(mr_olm_outbound_group_encrypt(h->megolm, text, strlen(text), &ct, &err), &err, "Megolm encrypt");
    mr_olm_outbound_group_id(h->megolm, id);
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:s}", "algorithm", MR_OLM_ALGORITHM_MEGOLM, "sender_key",
                            mr_olm_account_curve25519(h->account), "ciphertext", ct, "session_id", id, "device_id",
                            h->device_id);
    free(ct);
    free(text);
    json_decref(plain);
    return out;
}
