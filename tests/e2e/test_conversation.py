#!/usr/bin/python3
"""test_conversation.py -- MindRoom end to end: the test homeserver, the model stub, MindRoom in
one shape, and matrix-nio clients as the people.

usage: test_conversation.py --mode embedded|redis|kafka [--keep]

  embedded  `mindroom run`: every service on threads of one process, in-process bus, SQLite
  redis     mindroom-gateway, -crypto, -authz and -agent as processes; Redis Streams and store
  kafka     the same processes on the Kafka mock cluster, store in Redis

The conversation, in order: a message in a room with one agent gets one reply in a thread; a
mention picks the mentioned agent; with two candidates the router hands over; an unauthorized
sender gets nothing; a provider error gives a short apology and the next message works; a
SIGTERM restart between messages, and one in the middle of an answer, and a SIGKILL in the
middle of an answer (when the bus is durable) leave every message answered exactly once. The
binaries come from the environment (see tests/e2e/CMakeLists.txt). Exit 0 when all passed.
"""
import os
import re
import signal
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_human import Human  # noqa: E402
from e2e_stack import STUB_MODELS, StackError, run_main, wait_for  # noqa: E402

MIND = "@mindroom_mind:localhost"
CODER = "@mindroom_coder:localhost"
ROUTER = "@mindroom_router:localhost"
ALICE = "@alice:localhost"
SORRY_401 = ("Sorry, I could not reach the model (the provider did not accept the API key). "
             "Try again in a moment.")
# A claim left "started" by a killed agent is taken over after 90 s (services/agent).
TAKEOVER_DEADLINE_S = 240

CONFIG = STUB_MODELS + """\
agents:
  mind:
    display_name: Mind
    role: Answers anything.
    rooms: [solo, duo]
  coder:
    display_name: Coder
    role: Writes code.
    rooms: [duo]
router:
  model: default
authorization:
  global_users: ["@alice:localhost"]
"""


class Conversation:
    """The people, the rooms, and every reply each message must get (checked at the end)."""

    def __init__(self, stack, mode):
        self.stack, self.mode = stack, mode
        self.alice = Human(stack.hs.url, "alice")
        self.bob = Human(stack.hs.url, "bob")
        self.expected = []  # (room_id, trigger, body, {sender: replies})

    async def setup(self):
        # Registered before MindRoom starts, so its first start invites alice (and not bob).
        await self.alice.register()
        await self.bob.register()
        self.stack.start()
        self.solo = await self.alice.join_when_invited("#solo:localhost")
        self.duo = await self.alice.join_when_invited("#duo:localhost")

    async def close(self):
        await self.alice.close()
        await self.bob.close()

    def expect(self, room_id, trigger, body, counts):
        self.expected.append((room_id, trigger, body, counts))

    async def ask(self, room_id, body, agent, mention=None):
        """alice asks; returns (trigger, the agent's finished answer)."""
        trigger = await self.alice.send(room_id, body, mention)
        self.expect(room_id, trigger, body, {agent: 1})
        return trigger, await self.alice.answer(room_id, trigger, agent)

    # ---- the scenarios ----

    async def one_agent_answers_in_a_thread(self):
        body = "What is the capital of France?"
        trigger, text = await self.ask(self.solo, body, MIND)
        assert text == f"Echo: {body}", text
        reply = self.alice.replies(self.solo, trigger)[0]
        rel = reply["content"]["m.relates_to"]
        assert rel["rel_type"] == "m.thread" and rel["event_id"] == trigger, rel
        # The key came from .env through `api_key_env`; the stub checked it.
        auths = {r["auth"] for r in self.stack.stub_requests()}
        assert auths == {"valid"}, auths

    async def mention_picks_the_agent(self):
        body = "@coder write a haiku about C"
        _, text = await self.ask(self.duo, body, CODER, mention=CODER)
        assert text == f"Echo: {body}", text

    async def router_hands_over_between_two(self):
        body = "Who can help me plan a trip?"
        self.stack.stub_script({"reply": '{"entity_name": "coder", "reasoning": "scripted"}'})
        trigger = await self.alice.send(self.duo, body)
        self.expect(self.duo, trigger, body, {ROUTER: 1, CODER: 1})
        text = await self.alice.answer(self.duo, trigger, CODER)
        assert text == f"Echo: {body}", text
        handoff = await self.alice.answer(self.duo, trigger, ROUTER)
        assert re.search(r"coder.* could you help with this\?$", handoff, re.I), handoff

    async def unauthorized_sender_gets_nothing(self):
        await self.alice.invite(self.solo, self.bob.user_id)
        await self.bob.until("bob's invite", lambda: self.solo in self.bob.invites)
        await self.bob.join(self.solo)
        body = "I am not on the list, answer me anyway"
        trigger = await self.bob.send(self.solo, body)
        self.expect(self.solo, trigger, body, {})
        # One room keeps its order through every service: once alice's later message is
        # answered, bob's was decided, and the final check finds no reply to it.
        _, text = await self.ask(self.solo, "Did anyone else write here?", MIND)
        assert text == "Echo: Did anyone else write here?", text
        assert self.alice.replies(self.solo, trigger) == [], self.alice.replies(self.solo, trigger)

    async def provider_error_then_next_message_works(self):
        self.stack.stub_script({"error": {"status": 401}})
        _, text = await self.ask(self.solo, "Tell me a joke", MIND)
        assert text == SORRY_401, text
        _, text = await self.ask(self.solo, "Are you back?", MIND)
        assert text == "Echo: Are you back?", text

    async def a_long_answer_arrives_complete(self):
        # Too long for one event with its edit (Synapse refuses over 64 KiB): it comes as several
        # messages of the thread, whose final texts in order are the whole answer.
        answer = "".join(f"Line {i} of a long answer, \"quoted\" and caf\u00e9.\n" for i in range(1000))
        self.stack.stub_script({"reply": answer})
        body = "Tell me everything at length"
        trigger = await self.alice.send(self.solo, body)

        def whole():
            parts = [ev for ev in self.alice.replies(self.solo, trigger) if ev["sender"] == MIND]
            texts = [self.alice.text(self.solo, ev) for ev in parts]
            return len(parts) if None not in texts and "".join(texts) == answer else 0
        n = await self.alice.until("the whole long answer", whole)
        assert n > 1, n
        self.expect(self.solo, trigger, body, {MIND: n})

    async def restart_between_messages(self):
        _, text = await self.ask(self.solo, "Before the restart", MIND)
        assert text == "Echo: Before the restart", text
        self.stack.stop()
        # Sent while MindRoom is down: the next start syncs from where the last one stopped.
        body = "While you were away"
        trigger = await self.alice.send(self.solo, body)
        self.expect(self.solo, trigger, body, {MIND: 1})
        self.stack.start()
        text = await self.alice.answer(self.solo, trigger, MIND)
        assert text == f"Echo: {body}", text

    async def _interrupted_answer(self, body, script, stop_sig, deadline_s=None):
        """alice asks; once the answer has begun (or the model is reached), MindRoom is stopped
        with stop_sig and started again; the answer must end up whole and single. The script
        holds the first answer until the stop has landed, however slow the machine: a stall of
        a few seconds let a loaded machine finish it before the stop, which tested nothing."""
        assert script.get("hold"), script
        self.stack.stub_script(script)
        asked = len(self.stack.stub_requests())
        trigger = await self.alice.send(self.solo, body)
        self.expect(self.solo, trigger, body, {MIND: 1})
        if script.get("stall_after_chunks", 0):
            await self.alice.until("the answer to begin",
                                   lambda: self.alice.replies(self.solo, trigger))
        else:
            await self.alice.until("the model call", lambda: len(self.stack.stub_requests()) > asked)
        logs = {n: len(p.log_text()) for n, p in self.stack.services.items() if os.path.exists(p.log)}

        def release_once_stopping(name):
            # SIGTERM: the agent gives the turn up at the next piece of the answer, once it is
            # stopping (it logs that after the stop is set); released earlier, the answer could
            # still finish before the stop.
            if stop_sig == signal.SIGTERM:
                proc = self.stack.services[name]
                wait_for(f"{name} to log its stop",
                         lambda: "SIGTERM: stopping" in proc.log_text()[logs.get(name, 0):])
            self.stack.stub_release()
        # Apart, the agent alone goes down; the others keep the bus moving.
        self.stack.stop(only=None if self.mode == "embedded" else ["agent"], sig=stop_sig,
                        then=release_once_stopping)
        self.stack.start(only=None if self.mode == "embedded" else ["agent"])
        kw = {"deadline_s": deadline_s} if deadline_s else {}
        text = await self.alice.answer(self.solo, trigger, MIND, **kw)
        assert text == f"Echo: {body}", text

    async def sigterm_in_the_middle_of_an_answer(self):
        words = " ".join(f"word{i}" for i in range(40))
        await self._interrupted_answer(
            "Interrupted by SIGTERM",
            {"reply": words, "stall_after_chunks": 16, "hold": True}, signal.SIGTERM)

    async def sigkill_in_the_middle_of_an_answer(self):
        await self._interrupted_answer(
            "Interrupted by SIGKILL", {"hold": True}, signal.SIGKILL, TAKEOVER_DEADLINE_S)

    async def every_message_answered_exactly_once(self):
        # A few more syncs let any duplicate that was on its way arrive before counting.
        for _ in range(4):
            await self.alice.sync(timeout_ms=500)
        wrong = []
        for room_id, trigger, body, counts in self.expected:
            got = {}
            for ev in self.alice.replies(room_id, trigger):
                got[ev["sender"]] = got.get(ev["sender"], 0) + 1
            if got != counts:
                wrong.append(f"{body!r}: replies {got}, expected {counts}")
        assert not wrong, "\n".join(wrong)


def assert_durable_bus(stack):
    """A SIGKILL may lose nothing: distributed buses keep their streams, and `mindroom run` always
    journals its in-process bus; without the journal the restart checks would have nothing to
    check, so its absence fails rather than skips them."""
    if stack.mode == "embedded":
        assert " bus inproc:///" in stack.services["mindroom"].log_text(), (
            "mindroom run did not log its bus as inproc:///<storage>/bus.db: no journal")


async def converse(stack, mode):
    conv = Conversation(stack, mode)
    steps = [conv.one_agent_answers_in_a_thread, conv.mention_picks_the_agent,
             conv.router_hands_over_between_two, conv.unauthorized_sender_gets_nothing,
             conv.provider_error_then_next_message_works, conv.a_long_answer_arrives_complete,
             conv.restart_between_messages]
    failed = 0
    try:
        await conv.setup()
        assert_durable_bus(stack)
        steps += [conv.sigterm_in_the_middle_of_an_answer, conv.sigkill_in_the_middle_of_an_answer]
        steps.append(conv.every_message_answered_exactly_once)
        for step in steps:
            name = step.__name__.replace("_", " ")
            try:
                await step()
                print(f"ok - {name}", flush=True)
            except (AssertionError, StackError):
                failed += 1
                print(f"FAIL - {name}", flush=True)
                traceback.print_exc()
                # Later steps build on this one's state: stop here.
                break
    finally:
        await conv.close()
    return failed


def main():
    return run_main(__doc__, CONFIG, converse, "mr-e2e")


if __name__ == "__main__":
    sys.exit(main())
