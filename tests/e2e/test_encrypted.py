#!/usr/bin/python3
"""test_encrypted.py -- MindRoom end to end in an end-to-end encrypted room: matrix-nio with
python3-olm as the person (a real E2EE client), the test homeserver, the model stub.

usage: test_encrypted.py --mode embedded|redis|kafka [--keep]

alice joins the agent's encrypted room (config `rooms: {vault: {encrypted: true}}`). nio finds
the agent's device keys through /keys/query (mindroom-crypto made them, the gateway uploaded
them), claims a one-time key, sends the Megolm room key over Olm and the message as
m.room.encrypted; crypto decrypts it and the agent answers. Then MindRoom restarts and the
next encrypted message is answered with the keys it kept. The answers themselves are sent in
clear until outbound encryption lands, so alice reads them as plain m.room.message events.
Exit 0 when all passed.
"""
import os
import sys
import time

from nio import AsyncClient, AsyncClientConfig, KeysQueryResponse, KeysUploadResponse, RoomSendResponse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_human import Human, check  # noqa: E402
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


async def converse(stack, mode):
    alice = EncryptedHuman(stack.hs.url, "alice", os.path.join(stack.work, "alice-store"))
    try:
        await alice.register()
        stack.start()
        room_id = await alice.join_when_invited("#vault:localhost")
        assert alice.client.rooms[room_id].encrypted, "the vault room is not encrypted"
        await alice.knows_devices_of(MIND)
        print("ok - the agent's device keys are on the homeserver", flush=True)

        body = "A secret question for Mind"
        trigger = await alice.send_encrypted(room_id, body)
        text = await alice.answer(room_id, trigger, MIND)
        assert text == f"Echo: {body}", text
        print("ok - an encrypted message is decrypted and answered", flush=True)

        stack.stop()
        stack.start()
        body = "Still there after a restart?"
        trigger = await alice.send_encrypted(room_id, body)
        text = await alice.answer(room_id, trigger, MIND)
        assert text == f"Echo: {body}", text
        print("ok - after a restart, the kept keys decrypt the next message", flush=True)
        return 0
    finally:
        await alice.close()


def main():
    return run_main(__doc__, CONFIG, converse, "mr-e2e-enc")


if __name__ == "__main__":
    sys.exit(main())
