/* stream.c -- when a streamed answer is sent and edited: the interval ramps from 0.5 s to 5 s
 * and the character threshold from 48 to 240 over the first 15 s, so a short answer shows up
 * quickly and a long one does not flood the room with edits. The rule is asked on each chunk and
 * on the model client's tick while the stream is quiet, so text held back when a model stalls
 * still goes out once the interval has passed. */
#include "agent_internal.h"

void stream_begin(stream_state *s, long long now_ms)
{
    s->started_ms = now_ms;
    s->last_ms = now_ms;
    s->chars_since = 0;
    s->updates = 0;
}

static long long ramp(long long elapsed_ms, long long from, long long to)
{
    if (elapsed_ms <= 0)
        return from;
    if (elapsed_ms >= STREAM_RAMP_MS)
        return to;
    /* Rounded to the nearest unit, as the reference rounds the threshold. */
    return from + ((to - from) * elapsed_ms * 2 + STREAM_RAMP_MS) / (2 * STREAM_RAMP_MS);
}

long stream_interval_ms(long long elapsed_ms)
{
    return (long)ramp(elapsed_ms, STREAM_MIN_INTERVAL_MS, STREAM_MAX_INTERVAL_MS);
}

size_t stream_char_threshold(long long elapsed_ms)
{
    return (size_t)ramp(elapsed_ms, STREAM_MIN_CHARS, STREAM_MAX_CHARS);
}

static size_t code_points(const char *text, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)text[i] & 0xC0) != 0x80;
    return n;
}

bool stream_due(stream_state *s, long long now_ms)
{
    long long elapsed = now_ms - s->started_ms;
    long long since = now_ms - s->last_ms;
    bool by_time = since >= stream_interval_ms(elapsed);
    bool by_chars = s->chars_since >= stream_char_threshold(elapsed) && since >= STREAM_CHAR_FLOOR_MS;
    /* The first update goes out as soon as there is enough to read, or after the first
     * interval: no floor, no ramp before it. */
    if (s->updates == 0) {
        by_time = since >= STREAM_MIN_INTERVAL_MS;
        by_chars = s->chars_since >= stream_char_threshold(elapsed);
    }
    if (!(by_time || by_chars) || s->chars_since == 0)
        return false;
    s->last_ms = now_ms;
    s->chars_since = 0;
    s->updates++;
    return true;
}

bool stream_push(stream_state *s, const char *text, size_t len, long long now_ms)
{
    s->chars_since += code_points(text, len);
    return stream_due(s, now_ms);
}
