"""test_platform_chat.py -- an instance the platform provisions is one a person talks to: the
platform with the Kubernetes API peer in `--deployments run` mode (each replica of a Deployment
the project's own binary, started with the manifest's environment), the test homeserver, the
model stub, redis-server, and matrix-nio as the person.

create -> ready -> alice chats with the instance's agent -> suspend (no process left) -> resume
(the same accounts and room, the conversation goes on) -> upgrade (the agent restarts with the
new values and still answers) -> delete (no object, no process left). Two instances on one Redis
both answer; a rotated INSTANCE_SECRET_* restarts every pod of an instance.

Usage: test_platform_chat.py --platform PATH --kube-api PATH --helm PATH --charts DIR --bin-dir DIR
(DIR: the build tree, holding services/*/mindroom-* and tests/peers/*/mr-*). Exits 77 when helm
or redis-server is missing.
"""

import asyncio
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "e2e"))
os.environ.setdefault("MR_E2E_DEADLINE_S", "90")
import test_platform as tp  # noqa: E402
from e2e_human import Human  # noqa: E402
from e2e_stack import MODEL_KEY, REGISTRATION_TOKEN, ListeningPeer  # noqa: E402

SERVICES = ("gateway", "crypto", "authz", "agent", "upstream-auth")
ALICE = "@alice:localhost"


def built(*parts):
    path = os.path.abspath(os.path.join(tp.ARGS.bin_dir, *parts))
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} is not built")
    return path


def children(pid):
    """Pids whose parent is pid, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command may hold spaces and parentheses: the fields follow the last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return out


class ChatWithAProvisionedInstance(tp.PlatformCase):
    def setUp(self):
        self.hs = ListeningPeer("mr-test-homeserver", [
            built("tests", "peers", "homeserver", "mr-test-homeserver"), "--listen", "127.0.0.1:0",
            "--server-name", "localhost", "--registration-token", REGISTRATION_TOKEN, "--open-registration"],
            os.path.join(self.scratch(), "homeserver.log"))
        self.stub = ListeningPeer("mr-model-stub", [
            built("tests", "peers", "model_stub", "mr-model-stub"), "--listen", "127.0.0.1:0",
            "--api-key", MODEL_KEY], os.path.join(self.scratch(), "model-stub.log"))
        for p in (self.hs, self.stub):
            p.start()
            self.addCleanup(p.kill)
        self.kube_args = ("--deployments", "run", *[
            a for svc in SERVICES for a in ("--image", f"mindroom-{svc}={built('services', svc, 'mindroom-' + svc)}")])
        # The cluster the operator runs the platform in: the homeserver, the bus and store every
        # instance uses, the registration token and the model key it gets in its Secret.
        values = os.path.join(self.scratch(), "instance-values.json")
        self.platform_env = {"MINDROOM_PLATFORM_INSTANCE_VALUES": values,
                             "INSTANCE_SECRET_MATRIX_REGISTRATION_TOKEN": REGISTRATION_TOKEN,
                             "INSTANCE_SECRET_E2E_MODEL_KEY": MODEL_KEY}
        self.values_file = values
        super().setUp()

    def scratch(self):
        if not hasattr(self, "_scratch"):
            self._scratch = tempfile.mkdtemp(prefix="mr-platform-chat-")
            self.addCleanup(shutil.rmtree, self._scratch, True)
        return self._scratch

    def start_platform(self, **extra):
        # redis-server is up (PlatformCase started it): the instances' bus and store are on it,
        # apart from the platform's own database.
        with open(self.values_file, "w") as f:
            json.dump({"matrix": {"homeserver": self.hs.url, "serverName": "localhost"},
                       "bus": {"url": f"redis://127.0.0.1:{self.redis_port}/1"},
                       "store": {"url": f"redis://127.0.0.1:{self.redis_port}/2"},
                       "extraEnv": [{"name": "MINDROOM_GATEWAY_SYNC_TIMEOUT_MS", "value": "5000"}],
                       "probes": {"readiness": {"periodSeconds": 1}}}, f)
        super().start_platform(**extra)

    def phase(self, iid, want):
        def check():
            code, body = self.api("GET", f"/v1/instances/{iid}")
            self.assertEqual(code, 200, body)
            if body["phase"] == "failed":
                raise AssertionError(f"instance failed: {body}\n{self.kube.text()[-6000:]}")
            return body if body["phase"] == want else None
        try:
            return tp.wait_for(f"phase {want}", check, deadline_s=120)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.kube.text()[-6000:]}") from None

    def pods(self):
        return children(self.kube.p.pid)

    def test_create_chat_suspend_resume_upgrade_delete(self):
        asyncio.run(self.conversation())

    async def conversation(self):
        alice = Human(self.hs.url, "alice")
        try:
            # Registered first, so the instance's first start invites her.
            await alice.register()
            config = self.mind_config()
            code, inst = self.create(values={"config": config})
            self.assertEqual(code, 201, inst)
            iid = inst["id"]
            ns = iid[3:]
            mind = f"@mindroom_mind_{ns}:localhost"
            self.phase(iid, "ready")
            self.assertEqual(len(self.pods()), 5, "one process per Deployment")
            room = await alice.join_when_invited(f"#personal_{ns}:localhost")

            async def ask(body):
                trigger = await alice.send(room, body)
                text = await alice.answer(room, trigger, mind)
                self.assertEqual(text, f"Echo: {body}")
                return trigger

            await ask("Hello from a provisioned instance")
            users = len(self.hs_state()["users"])

            code, body = self.api("POST", f"/v1/instances/{iid}/suspend")
            self.assertEqual(code, 200, body)
            self.phase(iid, "suspended")
            tp.wait_for("every process of the instance to stop", lambda: self.pods() == [])

            code, body = self.api("POST", f"/v1/instances/{iid}/resume")
            self.assertEqual(code, 200, body)
            self.phase(iid, "ready")
            # State kept: the same accounts (none registered again) and room, and the
            # conversation goes on.
            await ask("Still there after a resume?")
            self.assertEqual(len(self.hs_state()["users"]), users)

            before = set(self.pods())
            code, body = self.api("PATCH", f"/v1/instances/{iid}", {"values": {
                "config": config, "services": {"agent": {"extraEnv": [{"name": "X_UPGRADED", "value": "1"}]}}}})
            self.assertEqual(code, 200, body)
            self.phase(iid, "ready")
            tp.wait_for("the agent's new process to replace the old one",
                        lambda: len(self.pods()) == 5 and len(before - set(self.pods())) == 1)
            await ask("And after an upgrade?")

            code, body = self.api("DELETE", f"/v1/instances/{iid}")
            self.assertEqual((code, body["phase"]), (200, "deleted"), body)
            self.assertEqual(self.owned(iid), {})
            tp.wait_for("every process of the instance to stop", lambda: self.pods() == [])
        finally:
            await alice.close()

    def mind_config(self):
        return {"models": {"default": {"provider": "openai", "id": "stub-model", "host": self.stub.url,
                                       "api_key_env": "E2E_MODEL_KEY"}},
                "agents": {"mind": {"display_name": "Mind", "role": "Answers anything.", "rooms": ["personal"]}},
                "authorization": {"global_users": [ALICE]}}

    def test_two_instances_on_one_redis_both_chat(self):
        asyncio.run(self.two_instances())

    async def two_instances(self):
        """Both instances take their bus from one Redis database and their store from another
        (the base values): each runs under its own prefix (its id), so the second gateway does not
        meet the first's sealed keys, and each agent answers in its own room."""
        alice = Human(self.hs.url, "alice")
        try:
            await alice.register()
            ids = []
            for key in ("home", "work"):
                code, inst = self.create(key=key, values={"config": self.mind_config()})
                self.assertEqual(code, 201, inst)
                ids.append(inst["id"])
            for iid in ids:
                self.phase(iid, "ready")
            self.assertEqual(len(self.pods()), 10, "one process per Deployment of each instance")
            for iid in ids:
                ns = iid[3:]
                room = await alice.join_when_invited(f"#personal_{ns}:localhost")
                trigger = await alice.send(room, f"Hello {ns}")
                text = await alice.answer(room, trigger, f"@mindroom_mind_{ns}:localhost")
                self.assertEqual(text, f"Echo: Hello {ns}")
            # Every key either wrote sits under one instance's prefix: the store's database and
            # the bus's (Redis Streams) alike.
            for db, after in (("2", ":"), ("1", ":mr:bus:")):
                keys = self.redis_cli("-n", db, "--scan").split()
                self.assertTrue(keys, f"database {db} is empty")
                stray = [k for k in keys if not any(k.startswith(iid + after) for iid in ids)]
                self.assertEqual(stray, [], f"keys of database {db} outside both prefixes")
                for iid in ids:
                    self.assertTrue(any(k.startswith(iid + after) for k in keys), f"{iid} wrote nothing to {db}")
        finally:
            await alice.close()

    def test_rotated_secret_restarts_every_pod(self):
        """A platform restarted with a new INSTANCE_SECRET_* value: the instance's pods all restart
        (the peer runs them) with the new value, and the instance is ready again."""
        code, inst = self.create(values={"config": self.mind_config()})
        self.assertEqual(code, 201, inst)
        iid = inst["id"]
        self.phase(iid, "ready")
        before = set(self.pods())
        self.assertEqual(len(before), 5)
        rotated = "rotated-extra-secret-not-for-logs"
        self.platform.stop()
        self.start_platform(INSTANCE_SECRET_EXTRA_TOKEN=rotated)
        tp.wait_for("every pod of the instance to be replaced",
                    lambda: len(self.pods()) == 5 and not before & set(self.pods()), deadline_s=120)
        self.phase(iid, "ready")
        for pid in self.pods():
            with open(f"/proc/{pid}/environ", "rb") as f:
                self.assertIn(f"EXTRA_TOKEN={rotated}".encode(), f.read().split(b"\0"))
        for text in (self.platform.text(), self.kube.text()):
            self.assertNotIn(rotated, text)

    def hs_state(self):
        return tp.http("GET", self.hs.url + "/_test/state")[1]


if __name__ == "__main__":
    sys.exit(tp.main(("--bin-dir",), module=__name__))
