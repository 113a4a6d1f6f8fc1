/* fuzz_turn_event.c -- libFuzzer target: authz's cleartext_event parser, the skip decision and
 * the turn it builds never crash on any message; a parsed event has its required fields. */
#include <stdint.h>
#include <stdlib.h>

#include "authz_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    turn_event ev;
    mr_err err = {0};
    if (turn_event_parse((const char *)data, size, &ev, &err) != MR_OK)
        return 0;
    if (!ev.root || !ev.event || !ev.room_id || !ev.event_id || !ev.sender || !ev.type)
        abort();
    turn_event_skip_reason(&ev);
    turn_event_free(&ev);
    return 0;
}
