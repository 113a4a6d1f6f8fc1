#!/usr/bin/python3
"""test_encrypted.py -- MindRoom end to end in an end-to-end encrypted room: matrix-nio with
python3-olm as the person (a real E2EE client), the test homeserver, the model stub.

usage: test_encrypted.py --mode embedded|redis|kafka [--keep]

alice joins the agent's encrypted room (config `rooms: {vault: {encrypted: true}}`). nio finds
the agent's device keys through /keys/query (mindroom-crypto made them, the gateway uploaded
them), claims a one-time key, sends the Megolm room key over Olm and the message as
m.room.encrypted; crypto decrypts it and the agent answers in a thread, encrypted: crypto
claims alice's one-time key, sends her its Megolm room key over Olm, and nio decrypts the
answer and each of its streamed edits. Every event the homeserver stored for the room, but
the room's state, is m.room.encrypted. bob joins and reads the next answer; when he leaves, the
answer after has a new Megolm session. Then MindRoom restarts and the next encrypted message is
answered with the keys it kept. alice checks the agent's cross-signing chain (master key ->
self-signing key -> device) as an MSC4153 client would, and a second device of hers, logged in
later, writes too: its keys are accepted once the device list changes. Last, MindRoom forgets what
it knew of the room's encryption (a room joined before it kept such records) and still answers
encrypted. Exit 0 when all passed.
"""
import json
import os
import sqlite3
import subprocess
import signal
import sys
import time
import urllib.parse
import urllib.request

import olm
from nio import (AsyncClient, AsyncClientConfig, KeysQueryResponse, KeysUploadResponse, LoginResponse,
                 RoomSendResponse)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_human import Human, check, is_edit, relation  # noqa: E402
from e2e_stack import DEADLINE_S, STUB_MODELS, StackError, run_main  # noqa: E402

MIND = "@mindroom_mind:localhost"

CONFIG = STUB_MODELS + """\
agents:
  mind:
    display_name: Mind
    role: Answers anything.
    rooms: [vault]
rooms:
  vault:
    encrypted: true
router:
  model: default
authorization:
  global_users: ["@alice:localhost"]
"""


class EncryptedHuman(Human):
    """A Human whose nio client does end-to-end encryption, its keys in store_dir."""

    def __init__(self, url, localpart, store_dir):
        super().__init__(url, localpart)
        os.makedirs(store_dir)
        self.client = AsyncClient(url, self.user_id, store_path=store_dir,
                                  config=AsyncClientConfig(encryption_enabled=True,
                                                           store_sync_tokens=False))

    async def register(self):
        await super().register()
        check(await self.client.keys_upload(), KeysUploadResponse)

    async def knows_devices_of(self, user_id):
        """Syncs and queries keys until nio knows a device of user_id."""
        end = time.monotonic() + DEADLINE_S
        while not list(self.client.device_store.active_user_devices(user_id)):
            if time.monotonic() > end:
                raise StackError(f"{self.user_id} never learnt a device of {user_id}")
            await self.sync()
            if self.client.should_query_keys:
                check(await self.client.keys_query(), KeysQueryResponse)

    async def send_encrypted(self, room_id, body):
        resp = check(await self.client.room_send(room_id, "m.room.message",
                                                 {"msgtype": "m.text", "body": body},
                                                 ignore_unverified_devices=True),
                     RoomSendResponse)
        return resp.event_id


def stored_events(stack, room_id):
    """Every event the homeserver holds for the room, as stored."""
    url = f"{stack.hs.url}/_test/rooms/{urllib.parse.quote(room_id, safe='')}/events"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)["events"]


def assert_all_encrypted(stack, room_id):
    """Only state may be readable by the server: every other event is m.room.encrypted."""
    events = stored_events(stack, room_id)
    clear = [(e["sender"], e["type"]) for e in events
             if "state_key" not in e and e["type"] != "m.room.encrypted"]
    assert not clear, f"the homeserver could read {clear}"
    return events


def forget(stack, keys):
    """Deletes keys from MindRoom's store while it is stopped: Redis db 1 apart, the SQLite
    state.db of the storage path embedded."""
    if stack.mode != "embedded":
        subprocess.run(["redis-cli", "-p", str(stack.redis.port), "-n", "1", "DEL", *keys],
                       check=True, capture_output=True, timeout=30)
        return
    dbs = [os.path.join(d, "state.db") for d, _, files in os.walk(stack.work) if "state.db" in files]
    assert len(dbs) == 1, f"expected one state.db under {stack.work}: {dbs}"
    with sqlite3.connect(dbs[0]) as db:
        db.executemany("DELETE FROM kv WHERE key = ?", [(k,) for k in keys])


def session_of(stack, room_id, event_id):
    """The Megolm session ID of a stored event."""
    for e in stored_events(stack, room_id):
        if e["event_id"] == event_id:
            return e["content"]["session_id"]
    raise StackError(f"the homeserver holds no {event_id}")


# The model holds the answer after its first chunk until the agent has shown it in progress,
# so the agent must edit it to the whole text (a timed stall could be outlasted by a loaded
# machine, and the answer would come whole in one message).
STREAMED = {"hold": True, "stall_after_chunks": 1}


def mine(human, room_id, trigger):
    """The agent's replies to trigger that human has seen."""
    return [ev for ev in human.replies(room_id, trigger) if ev["sender"] == MIND]


async def ask(stack, human, room_id, body, streamed=False):
    """human asks; returns the agent's reply event, checked as a decrypted thread reply whose
    edits were all decrypted too (streamed: there is at least one)."""
    if streamed:
        stack.stub_script(STREAMED)
    trigger = await human.send_encrypted(room_id, body)
    if streamed:
        await human.until("the answer in progress", lambda: mine(human, room_id, trigger))
        stack.stub_release()
    text = await human.answer(room_id, trigger, MIND)
    assert text == f"Echo: {body}", text
    reply = mine(human, room_id, trigger)[0]
    rel = relation(reply)
    assert rel.get("rel_type") == "m.thread" and rel.get("event_id") == trigger, rel
    edits = [ev for ev in human.events[room_id]
             if relation(ev).get("event_id") == reply["event_id"] and ev["sender"] == MIND]
    assert all(is_edit(ev) and ev["type"] == "m.room.message" for ev in edits), edits
    assert edits or not streamed, "the streamed answer has no edit"
    return reply


def canonical(obj):
    """The signed part of a Matrix JSON object, canonically encoded."""
    rest = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify(obj, user_id, key_id, public):
    sig = obj.get("signatures", {}).get(user_id, {}).get(key_id)
    if not sig:
        raise StackError(f"no signature by {key_id} of {user_id} on {obj}")
    olm.ed25519_verify(public, canonical(obj), sig)  # raises OlmVerifyError when forged


def only_key(k):
    (key_id, public), = k["keys"].items()
    return key_id, public


async def agent_cross_signed(alice):
    """Queries the agent's keys as a client would until its device carries the self-signing
    signature, and checks the chain: master signs self-signing, self-signing signs the device."""
    end = time.monotonic() + DEADLINE_S
    while True:
        req = urllib.request.Request(
            alice.client.homeserver + "/_matrix/client/v3/keys/query",
            data=json.dumps({"device_keys": {MIND: []}}).encode(), method="POST",
            headers={"Authorization": f"Bearer {alice.client.access_token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            keys = json.load(r)
        master = keys.get("master_keys", {}).get(MIND)
        ssk = keys.get("self_signing_keys", {}).get(MIND)
        devices = keys["device_keys"].get(MIND, {})
        if master and ssk and devices:
            ssk_id, ssk_pub = only_key(ssk)
            signed = [d for d in devices.values() if ssk_id in d.get("signatures", {}).get(MIND, {})]
            if signed:
                break
        if time.monotonic() > end:
            raise StackError(f"the agent's device was never cross-signed: {keys}")
        await alice.sync()
    master_id, master_pub = only_key(master)
    assert master["usage"] == ["master"] and ssk["usage"] == ["self_signing"], (master, ssk)
    verify(ssk, MIND, master_id, master_pub)
    device = signed[0]
    verify(device, MIND, ssk_id, ssk_pub)
    device_id = device["device_id"]
    verify(device, MIND, f"ed25519:{device_id}", device["keys"][f"ed25519:{device_id}"])
    return master_pub


async def second_device_writes(stack, room_id):
    """alice logs in on a second device, which uploads keys later than the agent first queried
    hers; its room key reaches the agent (device_lists.changed, a new /keys/query) and the agent
    answers its message."""
    alice2 = EncryptedHuman(stack.hs.url, "alice", os.path.join(stack.work, "alice-store-2"))
    try:
        check(await alice2.client.login(alice2.password, device_name="second device"), LoginResponse)
        check(await alice2.client.keys_upload(), KeysUploadResponse)
        await alice2.knows_devices_of(MIND)
        body = "Written on my second device"
        trigger = await alice2.send_encrypted(room_id, body)
        text = await alice2.answer(room_id, trigger, MIND)
        assert text == f"Echo: {body}", text
    finally:
        await alice2.close()


async def converse(stack, mode):
    alice = EncryptedHuman(stack.hs.url, "alice", os.path.join(stack.work, "alice-store"))
    bob = EncryptedHuman(stack.hs.url, "bob", os.path.join(stack.work, "bob-store"))
    try:
        await alice.register()
        await bob.register()
        stack.start()
        room_id = await alice.join_when_invited("#vault:localhost")
        assert alice.client.rooms[room_id].encrypted, "the vault room is not encrypted"
        await alice.knows_devices_of(MIND)
        print("ok - the agent's device keys are on the homeserver", flush=True)

        await ask(stack, alice, room_id, "A secret question for Mind", streamed=True)
        print("ok - an encrypted message is answered in a thread, encrypted; nio decrypts the "
              "answer and its edits", flush=True)
        assert_all_encrypted(stack, room_id)
        print("ok - the homeserver stored only ciphertext besides the room's state", flush=True)

        await alice.invite(room_id, bob.user_id)
        await bob.until("bob's invite", lambda: room_id in bob.invites)
        await bob.join(room_id)
        body = "Can bob read this answer?"
        reply = await ask(stack, alice, room_id, body)
        assert await bob.answer(room_id, reply["content"]["m.relates_to"]["event_id"], MIND) == \
            f"Echo: {body}"
        with_bob = session_of(stack, room_id, reply["event_id"])
        print("ok - a member who joined reads the next answer", flush=True)

        await bob.client.room_leave(room_id)
        reply = await ask(stack, alice, room_id, "And now that bob left?")
        without_bob = session_of(stack, room_id, reply["event_id"])
        assert without_bob != with_bob, "the Megolm session did not rotate when bob left"
        print("ok - a member leaves: the next answer has a new Megolm session", flush=True)

        master = await agent_cross_signed(alice)
        print("ok - the agent's device is cross-signed (master -> self-signing -> device)", flush=True)
        await second_device_writes(stack, room_id)
        print("ok - a second device of alice added later is read", flush=True)

        stack.stop()
        stack.start()
        reply = await ask(stack, alice, room_id, "Still there after a restart?")
        assert session_of(stack, room_id, reply["event_id"]) == without_bob, \
            "a restart made a new Megolm session"
        assert_all_encrypted(stack, room_id)
        print("ok - after a restart, the kept keys decrypt the next message and encrypt its "
              "answer", flush=True)
        assert await agent_cross_signed(alice) == master, "the cross-signing keys changed on restart"
        print("ok - after a restart, the same cross-signing identity", flush=True)

        # SIGKILL while an encrypted answer streams: after the restart the half-written answer is
        # completed by an edit (one reply, no second), encrypted, by the same device identity.
        stack.stub_script(STREAMED)
        body = "Killed while you answer?"
        trigger = await alice.send_encrypted(room_id, body)
        await alice.until("the answer in progress", lambda: mine(alice, room_id, trigger))
        stack.stop(sig=signal.SIGKILL)
        stack.stub_release()
        stack.start()
        text = await alice.answer(room_id, trigger, MIND)
        assert text == f"Echo: {body}", text
        replies = mine(alice, room_id, trigger)
        assert len(replies) == 1, f"the answer was sent {len(replies)} times"
        assert_all_encrypted(stack, room_id)
        assert await agent_cross_signed(alice) == master, "the cross-signing keys changed after SIGKILL"
        print("ok - SIGKILL mid-answer: completed by an edit, once, encrypted, same identity", flush=True)

        # A room joined before MindRoom kept what it knows of it: neither crypto nor the gateway
        # has a record of its m.room.encryption, and no sync repeats the room's state.
        stack.stop()
        forget(stack, [f"crypto:room:{room_id}", f"encryption:{room_id}"])
        stack.start()
        await ask(stack, alice, room_id, "Do you still know this room is encrypted?")
        assert_all_encrypted(stack, room_id)
        print("ok - a room whose encryption MindRoom had no record of is still answered "
              "encrypted", flush=True)
        return 0
    finally:
        await alice.close()
        await bob.close()


def main():
    return run_main(__doc__, CONFIG, converse, "mr-e2e-enc")


if __name__ == "__main__":
    sys.exit(main())
