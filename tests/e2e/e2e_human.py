"""e2e_human.py -- a person in the conversation: a matrix-nio client (a real Matrix client) that
registers, joins the agents' rooms, sends messages and keeps every room event it syncs, so a
test can read the agents' replies, their edits and how many there are."""


from nio import (AsyncClient, AsyncClientConfig, JoinResponse, RegisterResponse, RoomInviteResponse,
                 RoomSendResponse, SyncResponse)

from e2e_stack import DEADLINE_S, StackError, attempts

# Timeline events per room and sync: more than a test ever sends between two syncs.
SYNC_FILTER = {"room": {"timeline": {"limit": 500}}}
STREAMING_MARK = " \u22ef"  # the agent ends every edit but the last with " ⋯"


def check(resp, kind):
    if not isinstance(resp, kind):
        raise StackError(f"expected {kind.__name__}, got {type(resp).__name__}: {resp}")
    return resp


def relation(event):
    return event.get("content", {}).get("m.relates_to") or {}


def is_edit(event):
    return relation(event).get("rel_type") == "m.replace"


class Human:
    def __init__(self, url, localpart, password="e2e-password"):
        self.user_id = f"@{localpart}:localhost"
        self.localpart, self.password = localpart, password
        self.client = AsyncClient(url, self.user_id,
                                  config=AsyncClientConfig(encryption_enabled=False))
        self.events = {}  # room ID -> raw events in timeline order
        self.invites = set()

    async def register(self):
        check(await self.client.register(self.localpart, self.password, "e2e"), RegisterResponse)

    async def close(self):
        await self.client.close()

    async def sync(self, timeout_ms=500):
        resp = check(await self.client.sync(timeout=timeout_ms, sync_filter=SYNC_FILTER),
                     SyncResponse)
        for room_id, room in resp.rooms.join.items():
            if room.timeline.limited:
                raise StackError(f"{self.user_id}: a sync of {room_id} was cut short (limited)")
            self.events.setdefault(room_id, []).extend(ev.source for ev in room.timeline.events)
        self.invites.update(resp.rooms.invite)
        return resp

    async def until(self, what, pred, deadline_s=DEADLINE_S):
        """Syncs until pred() returns something true."""
        for _ in attempts(f"{what} (as {self.user_id})", deadline_s):
            got = pred()
            if got:
                return got
            await self.sync()

    async def join_when_invited(self, alias):
        """Waits for the gateway's invite to the room of `alias`, then joins it by alias."""
        room_id = await self.room_id(alias)
        await self.until(f"an invite to {alias}", lambda: room_id in self.invites)
        joined = check(await self.client.join(alias), JoinResponse)
        await self.until(f"joining {alias}", lambda: room_id in self.events)
        return joined.room_id

    async def room_id(self, alias):
        resp = await self.client.room_resolve_alias(alias)
        room_id = getattr(resp, "room_id", None)
        if not room_id:
            raise StackError(f"{alias} does not resolve: {resp}")
        return room_id

    async def invite(self, room_id, user_id):
        check(await self.client.room_invite(room_id, user_id), RoomInviteResponse)

    async def join(self, room_id):
        check(await self.client.join(room_id), JoinResponse)
        await self.until(f"joining {room_id}", lambda: room_id in self.events)

    async def send(self, room_id, body, mention=None):
        content = {"msgtype": "m.text", "body": body}
        if mention:
            content["m.mentions"] = {"user_ids": [mention]}
        resp = check(await self.client.room_send(room_id, "m.room.message", content),
                     RoomSendResponse)
        return resp.event_id

    # ---- reading the conversation ----

    def replies(self, room_id, trigger):
        """Messages (not edits) in the thread of `trigger` or replying to it, by anyone else."""
        out = []
        for ev in self.events.get(room_id, []):
            rel = relation(ev)
            if ev.get("type") != "m.room.message" or is_edit(ev) or ev["sender"] == self.user_id:
                continue
            in_reply = rel.get("m.in_reply_to", {}).get("event_id")
            if (rel.get("rel_type") == "m.thread" and rel.get("event_id") == trigger) or in_reply == trigger:
                out.append(ev)
        return out

    def text(self, room_id, event):
        """The text of a message as a client shows it: its last edit by the same sender."""
        body = event["content"].get("body")
        for ev in self.events.get(room_id, []):
            rel = relation(ev)
            if (is_edit(ev) and rel.get("event_id") == event["event_id"]
                    and ev["sender"] == event["sender"]):
                body = ev["content"].get("m.new_content", {}).get("body", body)
        return body

    def finished(self, room_id, event):
        text = self.text(room_id, event)
        return text is not None and not text.endswith(STREAMING_MARK)

    async def answer(self, room_id, trigger, sender, deadline_s=DEADLINE_S):
        """Waits for sender's reply to trigger to be complete (its final edit in); its text."""
        def done():
            for ev in self.replies(room_id, trigger):
                if ev["sender"] == sender and self.finished(room_id, ev):
                    return ev
            return None
        try:
            ev = await self.until(f"{sender}'s finished reply to {trigger}", done, deadline_s)
        except StackError as e:
            seen = [(ev["sender"], self.text(room_id, ev)) for ev in self.replies(room_id, trigger)]
            raise StackError(f"{e}; replies so far: {seen}") from None
        return self.text(room_id, ev)
