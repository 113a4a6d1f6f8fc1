/* human_device.h -- the human's side of end-to-end encryption, driven from C through libs/olm:
 * a device with its own Olm account that claims the agent's one-time key, sends it a Megolm
 * room key over Olm and writes encrypted room messages, as Element or matrix-nio would. */
#ifndef MR_CRYPTO_HUMAN_DEVICE_H
#define MR_CRYPTO_HUMAN_DEVICE_H

#include <jansson.h>

#include "mindroom/olm.h"

typedef struct human_device {
    const char *user_id;
    const char *device_id;
    mr_olm_account *account;
    mr_olm_session *olm;              /* to the agent's device, once started */
    mr_olm_outbound_group *megolm;    /* the human's room session */
} human_device;

/* A new device with a fresh account and Megolm session (fails the test on error). */
void human_new(human_device *h, const char *user_id, const char *device_id);
void human_free(human_device *h);
/* A new Megolm session for the device's next messages (a rotation). */
void human_rotate(human_device *h);
/* The signed device_keys, as /keys/query would show them (a new reference). */
json_t *human_device_keys(human_device *h);
/* Starts the Olm session to the agent's device from a claimed one-time key object. */
void human_start_olm(human_device *h, const char *agent, const char *agent_device, const char *agent_curve,
                     const char *agent_ed, json_t *claimed_key);
/* The content of an m.room.encrypted to-device event carrying an event of type with content
 * (taken) over the Olm session. */
json_t *human_olm_to_agent(human_device *h, const char *type, json_t *content, const char *agent,
                           const char *agent_curve, const char *agent_ed);
/* The content of an m.forwarded_room_key of the current Megolm session (from the index it is at)
 * naming sender_key as the session's sender key. */
json_t *human_forwarded_key(human_device *h, const char *room_id, const char *sender_key);
/* The content of an m.room.encrypted to-device event carrying m.room_key for room_id. */
json_t *human_room_key(human_device *h, const char *room_id, const char *agent, const char *agent_curve,
                       const char *agent_ed);
/* The content of an m.room.encrypted room event for a text message. */
json_t *human_encrypt_text(human_device *h, const char *room_id, const char *body);

#endif
