/* fuzz_olm_keys.c -- libFuzzer target: the key JSON parsers never crash or leak: canonical JSON
 * (which must be idempotent), signature checks, claimed one-time keys, Olm payload checks and
 * Megolm session keys from arbitrary input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/olm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mr_olm_account *account;

/* canonical(parse(canonical(v))) must be canonical(v). */
static void check_canonical(const json_t *v)
{
    char *once = NULL, *twice = NULL;
    size_t n1 = 0, n2 = 0;
    mr_err err = {0};
    if (mr_olm_canonical_json(v, &once, &n1, &err) != MR_OK) {
        if (once || !err.msg[0])
            abort();
        return;
    }
    json_t *back = json_loadb(once, n1, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!back || mr_olm_canonical_json(back, &twice, &n2, &err) != MR_OK || n1 != n2 || memcmp(once, twice, n1) != 0)
        abort();
    json_decref(back);
    free(once);
    free(twice);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mr_err err = {0};
    if (!account && mr_olm_account_new(&account, &err) != MR_OK)
        abort();
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (v) {
        check_canonical(v);
        const char *ed = mr_olm_account_ed25519(account);
        mr_olm_verify_json(v, "@bob:x", "ed25519:BOB", ed, &err);
        mr_olm_device dev = {"@bob:x", "BOB", mr_olm_account_curve25519(account), ed};
        mr_olm_session *s = NULL;
        if (mr_olm_session_new_outbound(account, &dev, v, &s, &err) == MR_OK)
            mr_olm_session_free(s);
        const char *key = json_string_value(json_object_get(v, "session_key"));
        mr_olm_inbound_group *g = NULL;
        if (mr_olm_inbound_group_new(key, &g, &err) == MR_OK)
            mr_olm_inbound_group_free(g);
        if (mr_olm_inbound_group_import(key, &g, &err) == MR_OK)
            mr_olm_inbound_group_free(g);
        json_decref(v);
    }
    mr_olm_payload_expect want = {"@alice:x", NULL, NULL, "@bob:x", mr_olm_account_ed25519(account)};
    json_t *ev = NULL;
    if (mr_olm_payload_check((const char *)data, size, &want, &ev, &err) == MR_OK)
        json_decref(ev);
    return 0;
}
