#!/usr/bin/python3
"""nio_client.py -- a matrix-nio client, a real Matrix client, speaking to the homeserver the
gateway manages: logs in, accepts the invite to a room and sends a text message.

usage: nio_client.py HOMESERVER_URL USER PASSWORD ROOM_ALIAS BODY

Exit 0 once the message is sent, 1 with the reason on stderr otherwise.
"""
import asyncio
import sys

from nio import (AsyncClient, AsyncClientConfig, JoinResponse, LoginResponse, RoomSendResponse,
                 SyncResponse)


def check(resp, kind):
    if not isinstance(resp, kind):
        raise AssertionError(f"expected {kind.__name__}, got {type(resp).__name__}: {resp}")
    return resp


async def chat(url, user, password, alias, body):
    c = AsyncClient(url, user, config=AsyncClientConfig(encryption_enabled=False))
    try:
        check(await c.login(password, device_name="nio test client"), LoginResponse)
        # The gateway invited this user; the invite shows in the first sync.
        sync = check(await c.sync(timeout=0, full_state=True), SyncResponse)
        joined = check(await c.join(alias), JoinResponse)
        if joined.room_id not in sync.rooms.invite and joined.room_id not in c.rooms:
            raise AssertionError(f"{user} was not invited to {alias}")
        check(await c.room_send(joined.room_id, "m.room.message",
                                {"msgtype": "m.text", "body": body}), RoomSendResponse)
        print(f"{user} sent {body!r} to {alias} ({joined.room_id})")
    finally:
        await c.close()


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        asyncio.run(chat(*sys.argv[1:]))
    except AssertionError as e:
        print(f"nio_client: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
