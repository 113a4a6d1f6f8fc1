#!/usr/bin/python3
"""test_nio.py -- python3-matrix-nio, a real Matrix client, registers, logs in, creates and
joins rooms and chats through mr-test-homeserver, in a plain room and end-to-end encrypted
(device keys, one-time key claims and Olm to-device messages all pass through the server).

usage: test_nio.py PATH/TO/mr-test-homeserver
"""
import asyncio
import os
import subprocess
import sys
import tempfile

from nio import (AsyncClient, AsyncClientConfig, JoinResponse, KeysQueryResponse,
                 KeysUploadResponse, LoginResponse, RegisterResponse, RoomCreateResponse,
                 RoomMessageText, RoomPreset, RoomSendResponse, SyncResponse)
from nio.responses import WhoamiResponse


def check(resp, kind):
    if not isinstance(resp, kind):
        raise AssertionError(f"expected {kind.__name__}, got {type(resp).__name__}: {resp}")
    return resp


def client(url, user, store=None):
    """A plain client, or with store (a directory) one that does end-to-end encryption."""
    if store is None:
        return AsyncClient(url, user, config=AsyncClientConfig(encryption_enabled=False))
    os.makedirs(store)
    return AsyncClient(url, user, store_path=store,
                       config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False))


async def wait_for_text(c, room_id, body, polls=10):
    """Long-polls /sync until a text message with `body` arrives in room_id."""
    for _ in range(polls):
        sync = check(await c.sync(timeout=5000), SyncResponse)
        joined = sync.rooms.join.get(room_id)
        for ev in joined.timeline.events if joined else []:
            if isinstance(ev, RoomMessageText) and ev.body == body:
                return ev
    raise AssertionError(f"{c.user_id} never saw {body!r} in {room_id}")


async def chat(url):
    alice = client(url, "alice")
    bob = client(url, "bob")
    bob_again = client(url, "@bob:localhost")
    try:
        reg = check(await alice.register("alice", "wonderland", "alice's laptop"), RegisterResponse)
        assert reg.user_id == "@alice:localhost", reg.user_id
        check(await bob.register("bob", "builder"), RegisterResponse)
        # A second device for bob through the password login.
        login = check(await bob_again.login("builder", device_name="bob's phone"), LoginResponse)
        assert login.user_id == "@bob:localhost", login.user_id
        who = check(await bob_again.whoami(), WhoamiResponse)
        assert who.user_id == "@bob:localhost", who.user_id

        created = check(await alice.room_create(alias="tea", name="Tea party",
                                                preset=RoomPreset.public_chat),
                        RoomCreateResponse)
        room_id = created.room_id
        joined = check(await bob_again.join("#tea:localhost"), JoinResponse)
        assert joined.room_id == room_id, (joined.room_id, room_id)

        # Initial syncs: both see the room with its name and both members.
        for c in (alice, bob_again):
            check(await c.sync(timeout=0, full_state=True), SyncResponse)
            room = c.rooms[room_id]
            assert room.name == "Tea party", room.name
            assert set(room.users) == {"@alice:localhost", "@bob:localhost"}, room.users

        sent = check(await alice.room_send(room_id, "m.room.message",
                                           {"msgtype": "m.text", "body": "hello bob"}),
                     RoomSendResponse)
        seen = await wait_for_text(bob_again, room_id, "hello bob")
        assert seen.event_id == sent.event_id and seen.sender == "@alice:localhost"

        check(await bob_again.room_send(room_id, "m.room.message",
                                        {"msgtype": "m.text", "body": "hi alice"}),
              RoomSendResponse)
        seen = await wait_for_text(alice, room_id, "hi alice")
        assert seen.sender == "@bob:localhost", seen.sender
    finally:
        for c in (alice, bob, bob_again):
            await c.close()


async def encrypted_chat(url, store):
    carol = client(url, "carol", os.path.join(store, "carol"))
    dave = client(url, "dave", os.path.join(store, "dave"))
    try:
        for c, name in ((carol, "carol"), (dave, "dave")):
            check(await c.register(name, "secret"), RegisterResponse)
            assert c.should_upload_keys
            check(await c.keys_upload(), KeysUploadResponse)
        encryption = {"type": "m.room.encryption", "state_key": "",
                      "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        created = check(await carol.room_create(invite=["@dave:localhost"],
                                                initial_state=[encryption]),
                        RoomCreateResponse)
        room_id = created.room_id
        check(await dave.sync(timeout=0), SyncResponse)
        assert room_id in dave.invited_rooms, dave.invited_rooms
        check(await dave.join(room_id), JoinResponse)
        check(await carol.sync(timeout=0), SyncResponse)
        assert carol.rooms[room_id].encrypted
        assert carol.should_query_keys
        check(await carol.keys_query(), KeysQueryResponse)
        # nio claims a one-time key, opens an Olm session and sends the Megolm key to-device.
        check(await carol.room_send(room_id, "m.room.message",
                                    {"msgtype": "m.text", "body": "for dave only"},
                                    ignore_unverified_devices=True),
              RoomSendResponse)
        seen = await wait_for_text(dave, room_id, "for dave only")
        assert seen.decrypted and seen.sender == "@carol:localhost", seen
    finally:
        for c in (carol, dave):
            await c.close()


def main():
    proc = subprocess.Popen([sys.argv[1], "--listen", "127.0.0.1:0", "--open-registration"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on http://"):
            raise AssertionError(f"unexpected first line {line!r}")
        url = line[len("listening on "):]
        asyncio.run(chat(url))
        with tempfile.TemporaryDirectory() as store:
            asyncio.run(encrypted_chat(url, store))
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
    if code != 0:
        raise AssertionError(f"mr-test-homeserver exited with {code}")
    print("nio registered, logged in, joined and chatted, in the clear and encrypted")


if __name__ == "__main__":
    main()
