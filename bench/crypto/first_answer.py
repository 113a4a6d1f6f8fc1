#!/usr/bin/python3
"""first_answer.py -- the first answer in a new encrypted room (the agent's keys_query,
keys_claim and room key over Olm included) beside the first answer in a new plain room, in the
same run of `mindroom run` against the test homeserver and the model stub, alice a matrix-nio
client with python3-olm. Then the second answer in each, when the session is already shared.

usage: first_answer.py --mode embedded|redis [--keep]   (ROOMS pairs of rooms, default 3)

Needs the binaries the end-to-end tests name (MINDROOM_BIN, MR_HS_BIN, MR_MODEL_STUB_BIN, ...);
run.sh sets them from its build tree. Prints seconds from alice's send to the finished answer
she decrypted, the median over the rooms, and the ratio encrypted / plain.
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "e2e"))
from e2e_stack import STUB_MODELS, run_main  # noqa: E402
from test_encrypted import MIND, EncryptedHuman  # noqa: E402

PAIRS = int(os.environ.get("ROOMS", "3"))

CONFIG = STUB_MODELS + """\
agents:
  mind:
    display_name: Mind
    role: Answers anything.
    rooms: [warm, %s]
rooms:
  warm:
    encrypted: false
%s
router:
  model: default
authorization:
  global_users: ["@alice:localhost"]
""" % (", ".join(f"plain{i}, vault{i}" for i in range(PAIRS)),
       "".join(f"  plain{i}:\n    encrypted: false\n  vault{i}:\n    encrypted: true\n" for i in range(PAIRS)))


async def timed_answer(alice, room_id, body):
    start = time.monotonic()
    trigger = await alice.send_encrypted(room_id, body)
    text = await alice.answer(room_id, trigger, MIND)
    took = time.monotonic() - start
    assert text == f"Echo: {body}", text
    return took


async def measure(stack, mode):
    alice = EncryptedHuman(stack.hs.url, "alice", os.path.join(stack.work, "alice-store"))
    try:
        await alice.register()
        stack.start()
        rooms = {"warm": await alice.join_when_invited("#warm:localhost")}
        for i in range(PAIRS):
            for kind in ("plain", "vault"):
                rooms[(kind, i)] = await alice.join_when_invited(f"#{kind}{i}:localhost")
        await alice.knows_devices_of(MIND)
        # One answer first, so neither side pays for the first model call of the process.
        await timed_answer(alice, rooms["warm"], "warm up")
        times = {(kind, n): [] for kind in ("plain", "vault") for n in ("first", "second")}
        for i in range(PAIRS):
            # Plain first in even pairs, encrypted first in odd ones: neither always goes first.
            order = ("plain", "vault") if i % 2 == 0 else ("vault", "plain")
            for n in ("first", "second"):
                for kind in order:
                    times[(kind, n)].append(await timed_answer(alice, rooms[(kind, i)],
                                                               f"{n} question in {kind}{i}"))
        print(f"seconds from send to the finished answer, median of {PAIRS} new rooms ({mode})")
        print(f"{'answer':<10} {'plain':>8} {'encrypted':>10} {'ratio':>7}")
        for n in ("first", "second"):
            p = statistics.median(times[("plain", n)])
            v = statistics.median(times[("vault", n)])
            print(f"{n:<10} {p:8.3f} {v:10.3f} {v / p:7.2f}")
        return 0
    finally:
        await alice.close()


def main():
    return run_main(__doc__, CONFIG, measure, "mr-bench-first-answer")


if __name__ == "__main__":
    sys.exit(main())
