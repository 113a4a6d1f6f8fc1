#!/usr/bin/python3
"""test_stack.py -- deploy/local/stack.sh against the test homeserver and the model stub: up
starts redis-server, the Kafka mock cluster and mindroom-gateway, -crypto, -authz and -agent;
each answers (/healthz and /readyz, PING, the topics in the cluster's metadata); status reports
them; down leaves no process behind. Also the Redis Streams bus, a failed start, stale pidfiles
and bad settings.

The binaries come from the environment (deploy/CMakeLists.txt): MINDROOM_STACK_BUILD, the build
tree stack.sh uses, and MR_HS_BIN, MR_MODEL_STUB_BIN, MR_KAFKA_MOCK_BIN, MINDROOM_<SERVICE>_BIN
to check that tree holds those targets.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
STACK = os.path.join(os.path.dirname(HERE), "stack.sh")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))
from e2e_stack import wait_for  # noqa: E402
SERVICES = ("gateway", "crypto", "authz", "agent")
NAMES = ("redis", "kafka-holder", "kafka-mock") + SERVICES
DEADLINE_S = 120
REGISTRATION_TOKEN = "stack-registration-token"
MODEL_KEY = "sk-stack-stub-key"

CONFIG = """\
models:
  default:
    provider: openai
    id: stub-model
    host: {stub}
    api_key_env: STACK_MODEL_KEY
agents:
  mind:
    display_name: Mind
    role: Answers anything.
    rooms: [lobby]
router:
  model: default
authorization:
  global_users: ["@alice:localhost"]
"""


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def free_port_run(n):
    """The first of n consecutive loopback ports that are free right now."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no {n} consecutive free ports")


def environ_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
    except OSError:
        return None


def processes_carrying(state):
    """Pids of processes whose environment names this stack's state directory."""
    want = state.encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            env = environ_of(entry)
            if env and env.get(b"MINDROOM_STACK_DIR") == want:
                found.append(int(entry))
    return found


class Peer:
    """A test peer that prints `listening on <url>` first."""

    def __init__(self, argv, log):
        self.log = log
        with open(log, "wb") as out:
            self.p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def url():
            assert self.p.poll() is None, f"{argv[0]} exited; see {log}"
            with open(log) as f:
                first = f.readline()
            return first.split()[2] if first.startswith("listening on ") else None

        self.url = wait_for(f"{argv[0]} to listen", url, 30)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class Stack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.build = os.environ["MINDROOM_STACK_BUILD"]
        cls.work = tempfile.mkdtemp(prefix="mr-stack-")
        cls.stub = Peer([os.environ["MR_MODEL_STUB_BIN"], "--listen", "127.0.0.1:0", "--api-key", MODEL_KEY],
                        os.path.join(cls.work, "model-stub.log"))

    @classmethod
    def tearDownClass(cls):
        cls.stub.stop()
        shutil.rmtree(cls.work, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="case-", dir=self.work)
        # A homeserver per case: each case's fresh store holds no passwords of earlier accounts.
        self.hs = Peer([os.environ["MR_HS_BIN"], "--listen", "127.0.0.1:0", "--server-name", "localhost",
                        "--registration-token", REGISTRATION_TOKEN], os.path.join(self.dir, "homeserver.log"))
        self.addCleanup(self.hs.stop)
        self.state = os.path.join(self.dir, "state")
        self.port = free_port_run(5)
        self.config = self.write_config(CONFIG.format(stub=self.stub.url))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MINDROOM_", "MATRIX_"))}
        self.env.update(MINDROOM_CONFIG=self.config, MINDROOM_STACK_DIR=self.state,
                        MINDROOM_STACK_BUILD=self.build, MINDROOM_STACK_PORT=str(self.port),
                        MINDROOM_STACK_WAIT="90")

    def tearDown(self):
        self.stack("down")
        # Anything still carrying this state directory was started by this test: end it, and fail.
        leftovers = processes_carrying(self.state)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        wait_for("killed leftovers to go", lambda: not processes_carrying(self.state), 30)
        self.assertEqual(leftovers, [], "processes outlived stack.sh down")

    def write_config(self, text, dotenv=None):
        cfg = os.path.join(self.dir, "mindroom")
        os.makedirs(cfg, exist_ok=True)
        with open(os.path.join(cfg, "config.yaml"), "w") as f:
            f.write(text)
        with open(os.path.join(cfg, ".env"), "w") as f:
            f.write(dotenv if dotenv is not None else
                    f"MATRIX_HOMESERVER={self.hs.url}\nMATRIX_SERVER_NAME=localhost\n"
                    f"MATRIX_REGISTRATION_TOKEN={REGISTRATION_TOKEN}\nSTACK_MODEL_KEY={MODEL_KEY}\n")
        return os.path.join(cfg, "config.yaml")

    def stack(self, command, **env):
        r = subprocess.run([STACK, command], capture_output=True, text=True, env=dict(self.env, **env),
                           timeout=600)
        return r.returncode, r.stdout, r.stderr

    def pids(self):
        out = {}
        for name in NAMES:
            path = os.path.join(self.state, "run", f"{name}.pid")
            if os.path.exists(path):
                with open(path) as f:
                    out[name] = int(f.read().split()[0])
        return out

    def service_port(self, name):
        return self.port + 1 + SERVICES.index(name)

    def up(self, **env):
        code, out, err = self.stack("up", **env)
        self.assertEqual(code, 0, f"stack.sh up failed:\n{out}\n{err}\n{self.logs_tail()}")
        return out

    def logs_tail(self):
        logs = os.path.join(self.state, "logs")
        parts = []
        for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
            with open(os.path.join(logs, name), errors="replace") as f:
                parts.append(f"== {name}\n" + "".join(f.readlines()[-15:]))
        return "\n".join(parts)

    def check_services_answer(self):
        for name in SERVICES:
            self.assertEqual(http_status(f"http://127.0.0.1:{self.service_port(name)}/healthz"), 200, name)
        for name in SERVICES:
            wait_for(f"{name} /readyz",
                     lambda name=name: http_status(f"http://127.0.0.1:{self.service_port(name)}/readyz") == 200,
                     DEADLINE_S)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"PING\r\n")
            self.assertEqual(s.recv(16), b"+PONG\r\n")

    def check_down(self, names):
        pids = self.pids()
        self.assertEqual(sorted(pids), sorted(names))
        code, out, err = self.stack("down")
        self.assertEqual(code, 0, err)
        self.assertEqual(sorted(re.findall(r"^stopped (\S+)$", out, re.M)), sorted(names))
        self.assertEqual(self.pids(), {})
        self.assertEqual(processes_carrying(self.state), [])
        code, out, _ = self.stack("status")
        self.assertEqual(code, 3)
        self.assertIn("stack is down", out)

    def test_binaries_are_the_build_tree_stack_sh_uses(self):
        for var, rel in [("MR_KAFKA_MOCK_BIN", "tests/peers/mr-kafka-mock")] + \
                        [(f"MINDROOM_{s.upper()}_BIN", f"services/{s}/mindroom-{s}") for s in SERVICES]:
            self.assertTrue(os.path.samefile(os.environ[var], os.path.join(self.build, rel)), var)

    def test_up_status_down_on_kafka(self):
        out = self.up()
        bootstrap = re.search(r"bus kafka://(\S+), logs", out).group(1)
        self.assertIn(f"store redis://127.0.0.1:{self.port}/1", out)
        pids = self.pids()
        self.assertEqual(sorted(pids), sorted(NAMES))
        self.check_services_answer()

        # Every topic of proto/topics.yaml exists with 8 partitions.
        meta = subprocess.run(["kcat", "-L", "-J", "-b", bootstrap, "-m", "10"], capture_output=True, text=True,
                              timeout=60)
        self.assertEqual(meta.returncode, 0, meta.stderr)
        topics = {t["topic"]: len(t["partitions"]) for t in json.loads(meta.stdout)["topics"]}
        with open(os.path.join(REPO, "proto", "topics.yaml")) as f:
            declared = yaml.safe_load(f)["topics"]
        self.assertIn("matrix.keys", declared)
        for topic in declared:
            self.assertEqual(topics.get(topic), 8, topic)

        # Each service got the URLs and the one generated instance secret, which no log shows.
        secret_file = os.path.join(self.state, "instance_secret")
        self.assertEqual(stat.S_IMODE(os.stat(secret_file).st_mode), 0o600)
        with open(secret_file) as f:
            secret = f.read()
        self.assertRegex(secret, r"^[0-9a-f]{64}$")
        for name in SERVICES:
            env = environ_of(pids[name])
            self.assertEqual(env[b"MINDROOM_BUS_URL"].decode(), f"kafka://{bootstrap}")
            self.assertEqual(env[b"MINDROOM_STORE_URL"].decode(), f"redis://127.0.0.1:{self.port}/1")
            self.assertEqual(env[b"MINDROOM_INSTANCE_SECRET"].decode(), secret)
        # The gateway registered the agents at the test homeserver.
        with urllib.request.urlopen(self.hs.url + "/_test/state", timeout=10) as r:
            users = json.dumps(json.load(r)["users"])
        self.assertIn("@mindroom_mind:localhost", users)

        code, out, err = self.stack("status")
        self.assertEqual(code, 0, err)
        for name in NAMES:
            self.assertRegex(out, rf"(?m)^{name} +up +pid {pids[name]} ")
        for name in SERVICES:
            self.assertRegex(out, rf"(?m)^{name} .* http://127.0.0.1:{self.service_port(name)} healthz 200 readyz 200$")

        code, _, err = self.stack("up")
        self.assertEqual(code, 1)
        self.assertIn("already (partly) up; run `stack.sh down` first", err)
        self.assertEqual(self.pids(), pids)

        logs = os.path.join(self.state, "logs")
        self.assertEqual(sorted(os.listdir(logs)), sorted(f"{n}.log" for n in ("redis", "kafka-mock") + SERVICES))
        self.check_down(NAMES)
        for name in os.listdir(logs):
            with open(os.path.join(logs, name), errors="replace") as f:
                self.assertNotIn(secret, f.read(), name)

    def test_up_status_down_on_redis_streams(self):
        out = self.up(MINDROOM_STACK_BUS="redis")
        self.assertIn(f"bus redis://127.0.0.1:{self.port}/0", out)
        pids = self.pids()
        self.assertEqual(sorted(pids), sorted(("redis",) + SERVICES))
        self.check_services_answer()
        self.assertEqual(environ_of(pids["agent"])[b"MINDROOM_BUS_URL"].decode(), f"redis://127.0.0.1:{self.port}/0")
        self.check_down(("redis",) + SERVICES)

    def test_instance_secret_from_dotenv_is_kept(self):
        secret = "ab" * 32
        self.write_config(CONFIG.format(stub=self.stub.url),
                          f"MATRIX_HOMESERVER={self.hs.url}\nMATRIX_SERVER_NAME=localhost\n"
                          f"MATRIX_REGISTRATION_TOKEN={REGISTRATION_TOKEN}\n"
                          f"STACK_MODEL_KEY={MODEL_KEY}\nMINDROOM_INSTANCE_SECRET={secret}\n")
        self.up(MINDROOM_STACK_BUS="redis")
        self.assertFalse(os.path.exists(os.path.join(self.state, "instance_secret")))
        self.assertNotIn(b"MINDROOM_INSTANCE_SECRET", environ_of(self.pids()["gateway"]))
        self.check_down(("redis",) + SERVICES)

    def test_failed_start_stops_what_had_started(self):
        self.write_config("agents: [not, a, map]\n")
        code, out, err = self.stack("up")
        self.assertEqual(code, 1)
        self.assertIn("stack.sh: gateway exited while starting; the end of "
                      f"{self.state}/logs/gateway.log:", err)
        self.assertIn("stack.sh: up failed; stopping what had started", err)
        self.assertEqual(self.pids(), {})
        self.assertEqual(processes_carrying(self.state), [])

    def test_stale_pidfile_never_stops_another_process(self):
        other = subprocess.Popen(["sleep", "300"])
        try:
            run = os.path.join(self.state, "run")
            os.makedirs(run)
            with open(os.path.join(run, "gateway.pid"), "w") as f:
                f.write(f"{other.pid} {os.path.join(self.build, 'services/gateway/mindroom-gateway')}\n")
            code, out, _ = self.stack("status")
            self.assertEqual(code, 3)
            self.assertRegex(out, rf"(?m)^gateway +down +pid {other.pid} ")
            code, out, _ = self.stack("down")
            self.assertEqual(code, 0)
            self.assertNotIn("stopped gateway", out)
            self.assertIsNone(other.poll())
            self.assertFalse(os.path.exists(os.path.join(run, "gateway.pid")))
        finally:
            other.kill()
            other.wait()

    def test_usage_and_bad_settings_start_nothing(self):
        code, _, err = self.stack("restart")
        self.assertEqual(code, 2)
        self.assertIn("usage: deploy/local/stack.sh up|down|status", err)
        for env, message in [
                ({"MINDROOM_STACK_BUS": "amqp"}, 'MINDROOM_STACK_BUS is "amqp"; use kafka or redis'),
                ({"MINDROOM_STACK_PORT": "80"}, 'MINDROOM_STACK_PORT is "80"; use a port from 1024 to 65530'),
                ({"MINDROOM_CONFIG": "/nonexistent/config.yaml"}, "no config at /nonexistent/config.yaml"),
                ({"MINDROOM_STACK_BUILD": "/nonexistent"},
                 "/nonexistent/services/gateway/mindroom-gateway is missing")]:
            code, _, err = self.stack("up", **env)
            self.assertEqual(code, 1, env)
            self.assertIn(message, err)
            self.assertEqual(self.pids(), {})
        self.assertFalse(os.path.exists(self.state))


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False, verbosity=2).result.wasSuccessful() else 1)
