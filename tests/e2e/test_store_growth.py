#!/usr/bin/python3
"""test_store_growth.py -- what each answered message leaves in the store, and that all of it
expires (proto/store.md).

usage: test_store_growth.py --mode redis [--keep]

The services run apart over Redis, the store in db 1. alice asks WARMUP questions (the rooms,
accounts and workers' keys are made), the store's keys are listed with their TTLs, she asks
MESSAGES more, and they are listed again. Every key that appeared must belong to a key space
proto/store.md lists as written per message, and carry a TTL no longer than the one it
documents; no key without a TTL may appear (a worker's `agent:inflight:` hash, which Redis
drops while empty, aside). The keys per message are printed. Exit 0 when all
passed.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_human import Human  # noqa: E402
from e2e_stack import STUB_MODELS, StackError, run_main  # noqa: E402

MIND = "@mindroom_mind:localhost"
WARMUP = 3
MESSAGES = 12
DAY = 86400
# The key spaces written per message and the TTL proto/store.md gives each, in seconds.
PER_MESSAGE_TTL = {
    "turn:": 7 * DAY,
    "reply:": 7 * DAY,
    "begun:": 7 * DAY,
    "answer:": 7 * DAY,
    "sent:": 1 * DAY,
    "history:!": 30 * DAY,
    "crypto:megolm:idx:": 30 * DAY,
    # A room's turn lease: its holder deletes it once the room has no turn left, so it is seen
    # only when the last answer's clean-up is still under way; one per room, never per message.
    "agent:room:": 7 * DAY,
}
# Standing state that comes and goes without a TTL: a worker's record of accepted turns is a
# hash, which Redis removes while it has no field and makes again with the next turn.
STANDING = ("agent:inflight:",)

CONFIG = STUB_MODELS + """\
agents:
  mind:
    display_name: Mind
    role: Answers anything.
    rooms: [solo]
authorization:
  global_users: ["@alice:localhost"]
"""


def store_keys(port):
    """{key: ttl in seconds (-1: none)} of the store (db 1), by redis-cli."""
    def cli(*args, stdin=None):
        return subprocess.run(["redis-cli", "-p", str(port), "-n", "1", *args], input=stdin,
                              capture_output=True, text=True, check=True, timeout=60).stdout
    keys = [k for k in cli("--scan").splitlines() if k]
    if not keys:
        return {}
    # One TTL per line, in the keys' order, through one pipelined redis-cli.
    ttls = cli(stdin="".join(f'TTL "{k}"\n' for k in keys)).split()
    if len(ttls) != len(keys):
        raise StackError(f"TTL of {len(keys)} keys gave {len(ttls)} answers")
    # -2: the key went between the scan and its TTL (a room's lease, deleted by its holder).
    return {k: int(t) for k, t in zip(keys, ttls) if int(t) != -2}


def space(key):
    return next((s for s in PER_MESSAGE_TTL if key.startswith(s)), None)


async def converse(stack, mode):
    alice = Human(stack.hs.url, "alice")
    try:
        await alice.register()
        stack.start()
        room = await alice.join_when_invited("#solo:localhost")

        async def ask(i):
            body = f"Question number {i}"
            trigger = await alice.send(room, body)
            text = await alice.answer(room, trigger, MIND)
            assert text == f"Echo: {body}", text

        for i in range(WARMUP):
            await ask(i)
        before = store_keys(stack.redis.port)
        for i in range(WARMUP, WARMUP + MESSAGES):
            await ask(i)
        after = store_keys(stack.redis.port)
    finally:
        await alice.close()

    new = {k: t for k, t in after.items() if k not in before and not k.startswith(STANDING)}
    print(f"store keys: {len(before)} after {WARMUP} messages, {len(after)} after {MESSAGES} more "
          f"({len(new) / MESSAGES:.1f} per message)", flush=True)
    by_space = {}
    for k in new:
        by_space[space(k) or k] = by_space.get(space(k) or k, 0) + 1
    print("new keys by space: " + ", ".join(f"{s} {n}" for s, n in sorted(by_space.items())), flush=True)
    failed = 0
    stray = sorted(k for k in new if space(k) is None)
    if stray:
        failed += 1
        print(f"FAIL - keys outside the per-message spaces of proto/store.md: {stray[:10]}", flush=True)
    lasting = sorted(k for k, t in new.items() if space(k) and not 0 < t <= PER_MESSAGE_TTL[space(k)])
    if lasting:
        failed += 1
        print("FAIL - per-message keys without their documented TTL: "
              + ", ".join(f"{k} ({new[k]} s)" for k in lasting[:10]), flush=True)
    # Keys without a TTL are the instance's standing state: the messages must not add any.
    grown = sorted(k for k, t in new.items() if t == -1)
    if grown:
        failed += 1
        print(f"FAIL - keys without a TTL added by the messages: {grown[:10]}", flush=True)
    if not failed:
        print("ok - every key a message adds expires", flush=True)
    return failed


def main():
    return run_main(__doc__, CONFIG, converse, "mr-e2e-store")


if __name__ == "__main__":
    sys.exit(main())
