/* fuzz_mcp_message.c -- libFuzzer target: anything an MCP server may send, through the router that
 * sorts answers from the server's requests, and through the result-to-text reader. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/mcp_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mr_mcp_client c;
    memset(&c, 0, sizeof c);
    c.name = "fuzz";
    json_t *answer = NULL;
    char *reply = NULL;
    long long id = -1;
    mr_err err;
    if (mr_mcp_route(&c, (const char *)data, size, &answer, &id, &reply, &err) == MR_OK && answer && id == 1) {
        mr_strbuf out;
        mr_strbuf_init(&out, 4096);
        mr_mcp_result_text(json_object_get(answer, "result"), &out);
        mr_strbuf_free(&out);
    }
    json_decref(answer);
    free(reply);
    return 0;
}
