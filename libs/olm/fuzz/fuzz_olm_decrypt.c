/* fuzz_olm_decrypt.c -- libFuzzer target: the decrypt-and-parse path never crashes or leaks:
 * Olm messages (pre-key into a new inbound session, or either type into an existing one),
 * Megolm messages, and the payload check of whatever decrypts. The first byte picks the path
 * and whether the rest goes in as it is or base64-encoded (so libolm's own parsers see
 * arbitrary bytes past our base64 check). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/b64.h"
#include "mindroom/olm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mr_olm_account *alice, *bob;
static mr_olm_session *a2b, *b2a;
static mr_olm_inbound_group *room;

static void need(mr_code rc)
{
    if (rc != MR_OK)
        abort();
}

/* Two accounts with a session each way and a room session, made once. */
static void setup(void)
{
    mr_err err = {0};
    need(mr_olm_account_new(&alice, &err));
    need(mr_olm_account_new(&bob, &err));
    need(mr_olm_account_generate_one_time_keys(bob, 1, &err));
    json_t *body = NULL;
    need(mr_olm_account_keys_upload_body(bob, "@bob:x", "BOB", false, &body, &err));
    mr_olm_account_mark_published(bob);
    json_t *claimed = json_object_iter_value(json_object_iter(json_object_get(body, "one_time_keys")));
    mr_olm_device dev = {"@bob:x", "BOB", mr_olm_account_curve25519(bob), mr_olm_account_ed25519(bob)};
    need(mr_olm_session_new_outbound(alice, &dev, claimed, &a2b, &err));
    json_decref(body);
    int type;
    char *msg = NULL, *plain = NULL;
    size_t len = 0;
    need(mr_olm_session_encrypt(a2b, "x", 1, &type, &msg, &err));
    need(mr_olm_session_new_inbound(bob, mr_olm_account_curve25519(alice), msg, &b2a, &plain, &len, &err));
    free(msg);
    mr_olm_free_secret(plain, len);
    mr_olm_outbound_group *g = NULL;
    char *key = NULL;
    need(mr_olm_outbound_group_new(&g, &err));
    need(mr_olm_outbound_group_key(g, &key, &err));
    need(mr_olm_inbound_group_new(key, &room, &err));
    mr_olm_free_secret(key, strlen(key));
    mr_olm_outbound_group_free(g);
}

/* The input as a NUL-terminated string: the bytes, or their standard unpadded base64. */
static char *as_text(const uint8_t *data, size_t size, int encode)
{
    char *s = malloc(encode ? MR_B64URL_LEN(size) + 1 : size + 1);
    if (!s)
        abort();
    if (!encode) {
        memcpy(s, data, size);
        s[size] = '\0';
        return s;
    }
    mr_b64url_encode(data, size, s);
    for (char *p = s; *p; p++)
        *p = *p == '-' ? '+' : *p == '_' ? '/' : *p;
    return s;
}

static void check_payload(const char *plain, size_t len)
{
    mr_olm_payload_expect want = {"@alice:x", mr_olm_account_curve25519(alice), mr_olm_account_ed25519(alice),
                                  "@bob:x", mr_olm_account_ed25519(bob)};
    json_t *ev = NULL;
    mr_err err = {0};
    if (mr_olm_payload_check(plain, len, &want, &ev, &err) == MR_OK && !ev)
        abort();
    json_decref(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!alice)
        setup();
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    char *text = as_text(data + 1, size - 1, mode & 0x10);
    mr_err err = {0};
    char *plain = NULL;
    size_t len = 0;
    mr_code rc;
    switch (mode & 0x3) {
    case 0: {
        mr_olm_session *s = NULL;
        rc = mr_olm_session_new_inbound(bob, mr_olm_account_curve25519(alice), text, &s, &plain, &len, &err);
        mr_olm_session_free(s);
        break;
    }
    case 1:
        rc = mr_olm_session_decrypt(b2a, (mode >> 2) & 1, text, &plain, &len, &err);
        break;
    case 2: {
        uint32_t index = 0;
        rc = mr_olm_inbound_group_decrypt(room, text, &plain, &len, &index, &err);
        break;
    }
    default:
        check_payload((const char *)data + 1, size - 1);
        free(text);
        return 0;
    }
    /* A refusal leaves nothing allocated and always says why. */
    if (rc != MR_OK && (plain || !err.msg[0]))
        abort();
    if (rc == MR_OK)
        check_payload(plain, len);
    mr_olm_free_secret(plain, len);
    free(text);
    return 0;
}
