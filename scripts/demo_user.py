#!/usr/bin/python3
"""demo_user.py -- the person in the local demo: a matrix-nio client (a real Matrix client) that
registers, accepts the agents' invites, talks to them and prints the conversation as it goes.

usage: demo_user.py register HOMESERVER_URL USER PASSWORD
       demo_user.py chat HOMESERVER_URL USER PASSWORD [--script STUB_URL]

`register` must run before `mindroom run` starts, so its first start invites the user. `chat`
joins #personal (Mind alone) and #lobby (Mind and Coder), then sends a plain message, one that
mentions Coder, and one the router hands over. With --script, the model stub is told what to
answer (otherwise the model answers for itself). Exit 0 when every message got its reply.
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from nio import LoginResponse  # noqa: E402

from e2e_human import Human, check  # noqa: E402
from e2e_stack import StackError, post_json  # noqa: E402

MIND = "@mindroom_mind:localhost"
CODER = "@mindroom_coder:localhost"
ROUTER = "@mindroom_router:localhost"
REPLY_DEADLINE_S = 120

# What the stub answers, request by request, in the order the conversation asks.
STUB_SCRIPT = [
    {"reply": "Hi! I'm Mind. I answer in a thread under your message, streaming as I write. "
              "Mention @coder for code, or just ask and the router picks one of us."},
    {"reply": "Here you go:\n\n#include <stdio.h>\nint main(void) { puts(\"hello, world\"); }"},
    {"reply": '{"entity_name": "mind", "reasoning": "travel advice, not code"}'},
    {"reply": "Walk the Alfama early, take tram 28 before the crowds, and keep an evening for "
              "fado in Mouraria."},
]

CONVERSATION = [
    # (room alias, text, mentioned user, who answers)
    ("#personal:localhost", "Hi Mind! What can you do?", None, MIND),
    ("#lobby:localhost", "@coder can you write hello world in C?", CODER, CODER),
    ("#lobby:localhost", "Any tips for a weekend in Lisbon?", None, MIND),
]


class Printer:
    """Prints each reply once, when it is finished (the final edit replaced the stream)."""

    def __init__(self, human):
        self.human, self.shown = human, set()

    def name(self, room_id, user_id):
        room = self.human.client.rooms.get(room_id)
        return room.user_name(user_id) if room else user_id

    def show(self, room_id, trigger):
        for ev in self.human.replies(room_id, trigger):
            if ev["event_id"] in self.shown or not self.human.finished(room_id, ev):
                continue
            self.shown.add(ev["event_id"])
            text = self.human.text(room_id, ev).replace("\n", "\n    ")
            print(f"  {self.name(room_id, ev['sender'])}: {text}", flush=True)

    def answered_by(self, room_id, trigger, sender):
        self.show(room_id, trigger)
        return any(ev["sender"] == sender and ev["event_id"] in self.shown
                   for ev in self.human.replies(room_id, trigger))


async def register(url, user, password):
    human = Human(url, user, password)
    try:
        await human.register()
        print(f"registered {human.user_id}")
    finally:
        await human.close()


async def chat(url, user, password, stub_url):
    human = Human(url, user, password)
    try:
        check(await human.client.login(password, device_name="demo"), LoginResponse)
        rooms = {}
        for alias in dict.fromkeys(a for a, _, _, _ in CONVERSATION):
            rooms[alias] = await human.join_when_invited(alias)
            print(f"(joined {alias} after the agents' invite)", flush=True)
        if stub_url:
            post_json(stub_url + "/_stub/script", STUB_SCRIPT)
        printer = Printer(human)
        for alias, text, mention, answerer in CONVERSATION:
            print(f"\n[{alias}]\n  you: {text}", flush=True)
            room_id = rooms[alias]
            trigger = await human.send(room_id, text, mention)
            await human.until(f"{answerer}'s reply to {text!r}",
                              lambda: printer.answered_by(room_id, trigger, answerer),
                              REPLY_DEADLINE_S)
    finally:
        await human.close()


def main(argv):
    if len(argv) < 5 or argv[1] not in ("register", "chat"):
        print(__doc__, file=sys.stderr)
        return 2
    url, user, password = argv[2:5]
    stub_url = argv[6] if len(argv) == 7 and argv[5] == "--script" else None
    try:
        if argv[1] == "register":
            asyncio.run(register(url, user, password))
        else:
            asyncio.run(chat(url, user, password, stub_url))
    except StackError as e:
        print(f"demo_user: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
