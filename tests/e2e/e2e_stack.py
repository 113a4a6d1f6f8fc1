"""e2e_stack.py -- the processes of an end-to-end run: the test homeserver and the model stub,
redis-server and the Kafka mock cluster when the services run apart, and MindRoom itself, either
embedded (`mindroom run`) or as one process per service (mindroom-gateway, -crypto, -authz,
-agent). Every wait is bounded; every process is stopped (and checked) or killed at the end."""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import traceback
import urllib.error
import urllib.request

DEADLINE_S = float(os.environ.get("MR_E2E_DEADLINE_S", "90"))
REGISTRATION_TOKEN = "e2e-registration-token"
MODEL_KEY = "sk-e2e-stub-key"
# A fixed secret lets the separate services read each other's sealed sessions.
INSTANCE_SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
SERVICES = ("gateway", "crypto", "authz", "agent")
# The models block of an end-to-end config.yaml: the model stub, its key from .env.
STUB_MODELS = """\
models:
  default:
    provider: openai
    id: stub-model
    host: @STUB_URL@
    api_key_env: E2E_MODEL_KEY
"""
TOPICS = ("matrix.inbound", "matrix.todevice", "matrix.keys", "matrix.cleartext", "agent.turns",
          "matrix.outbound", "matrix.send", "matrix.send_failed")


class StackError(AssertionError):
    pass


def binary(var):
    path = os.environ.get(var)
    if not path or not os.access(path, os.X_OK):
        raise StackError(f"{var} must name an executable (got {path!r})")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def attempts(what, deadline_s=DEADLINE_S):
    """Yields until deadline_s has passed, then raises StackError naming what was awaited: the
    loop of every wait, whatever it does between two looks (sleep, sync)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() <= end:
        yield
    raise StackError(f"timed out after {deadline_s:.0f} s waiting for {what}")


def wait_for(what, pred, deadline_s=DEADLINE_S, step_s=0.05):
    """Polls pred until it returns something true, failing after deadline_s."""
    for _ in attempts(what, deadline_s):
        got = pred()
        if got:
            return got
        time.sleep(step_s)


def post_json(url, body):
    """POSTs body as JSON, raising on any status but 2xx."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


def tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


class Proc:
    """One child process, its output appended to a log file (kept across restarts)."""

    def __init__(self, name, argv, log, env=None):
        self.name, self.argv, self.log, self.env = name, argv, log, env
        self.p = None

    def start(self, stdin=subprocess.DEVNULL):
        out = open(self.log, "ab")
        try:
            self.p = subprocess.Popen(self.argv, stdin=stdin, stdout=out, stderr=subprocess.STDOUT,
                                      env=self.env, start_new_session=True)
        finally:
            out.close()

    def running(self):
        return self.p is not None and self.p.poll() is None

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, expect=0, then=None):
        """Sends sig and waits; fails unless it exits with `expect` (None: any status). then,
        when given, is called after the signal is sent and before the wait."""
        if self.p is None:
            return None
        if self.p.poll() is None:
            self.p.send_signal(sig)
            if then:
                then()
        try:
            code = self.p.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise StackError(f"{self.name} did not exit within {DEADLINE_S:.0f} s of "
                             f"{signal.Signals(sig).name}; log {self.log}:\n{tail(self.log)}")
        self.p = None
        if expect is not None and code != expect:
            raise StackError(f"{self.name} exited with {code}, expected {expect}; "
                             f"log {self.log}:\n{tail(self.log)}")
        return code

    def kill(self):
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.p = None


class ListeningPeer(Proc):
    """A test peer that prints `listening on <url>` when it is up."""

    def start(self, stdin=subprocess.DEVNULL):
        size = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        super().start(stdin)

        def url():
            if not self.running():
                raise StackError(f"{self.name} exited at start; log {self.log}:\n{tail(self.log)}")
            with open(self.log, errors="replace") as f:
                f.seek(size)
                for line in f:
                    if line.startswith("listening on "):
                        return line.split()[2]
            return None

        self.url = wait_for(f"{self.name} to listen", url)


class Redis(Proc):
    def __init__(self, work):
        self.port = free_port()
        data = os.path.join(work, "redis")
        os.makedirs(data)
        super().__init__("redis-server", [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", data,
            "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
            os.path.join(work, "redis.log"))

    def start(self, stdin=subprocess.DEVNULL):
        super().start(stdin)
        wait_for("redis-server to answer PING", self._pong)

    def _pong(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class KafkaMock(Proc):
    """mr-kafka-mock: 3 brokers on loopback; commands on its stdin, answers on its stdout."""

    def __init__(self, work):
        super().__init__("mr-kafka-mock", [binary("MR_KAFKA_MOCK_BIN")],
                         os.path.join(work, "kafka-mock.log"))

    def start(self, stdin=subprocess.PIPE):
        err = open(self.log, "ab")
        try:
            self.p = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=err, text=True, start_new_session=True)
        finally:
            err.close()
        self.bootstrap = self.p.stdout.readline().strip()
        if not self.bootstrap:
            raise StackError(f"mr-kafka-mock printed no bootstrap list; log {self.log}")
        # The mock answers no CreateTopics: every topic exists before anyone publishes.
        for topic in TOPICS:
            self.command(f"topic {topic} 8")

    def command(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        if answer != "ok":
            raise StackError(f"mr-kafka-mock: {line}: {answer or 'no answer'}")

    def stop(self, sig=signal.SIGTERM, expect=0):
        if self.p is not None and self.p.poll() is None:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
        code = self.p.wait(timeout=DEADLINE_S) if self.p else None
        self.p = None
        return code


class Stack:
    """Peers plus MindRoom in one of three shapes: embedded, redis or kafka."""

    def __init__(self, mode, work, config, extra_env=None):
        if mode not in ("embedded", "redis", "kafka"):
            raise StackError(f"unknown mode {mode!r}")
        self.mode, self.work, self.config_text = mode, work, config
        self.extra_env = extra_env or {}
        self.config_dir = os.path.join(work, "mindroom")
        os.makedirs(self.config_dir)
        self.peers = []
        self.services = {}

    # ---- peers ----

    def start_peers(self):
        self.hs = ListeningPeer("mr-test-homeserver", [
            binary("MR_HS_BIN"), "--listen", "127.0.0.1:0", "--server-name", "localhost",
            "--registration-token", REGISTRATION_TOKEN, "--open-registration"],
            os.path.join(self.work, "homeserver.log"))
        self.stub = ListeningPeer("mr-model-stub", [
            binary("MR_MODEL_STUB_BIN"), "--listen", "127.0.0.1:0", "--api-key", MODEL_KEY],
            os.path.join(self.work, "model-stub.log"))
        self.peers = [self.hs, self.stub]
        if self.mode != "embedded":
            self.redis = Redis(self.work)
            self.peers.append(self.redis)
        if self.mode == "kafka":
            self.kafka = KafkaMock(self.work)
            self.peers.append(self.kafka)
        for p in self.peers:
            p.start()
        self._write_config()

    def _write_config(self):
        with open(os.path.join(self.config_dir, "config.yaml"), "w") as f:
            f.write(self.config_text.replace("@STUB_URL@", self.stub.url))
        env = {
            "MATRIX_HOMESERVER": self.hs.url,
            "MATRIX_SERVER_NAME": "localhost",
            "MATRIX_REGISTRATION_TOKEN": REGISTRATION_TOKEN,
            "E2E_MODEL_KEY": MODEL_KEY,
            "MINDROOM_GATEWAY_SYNC_TIMEOUT_MS": "5000",
        }
        if self.mode != "embedded":
            env["MINDROOM_INSTANCE_SECRET"] = INSTANCE_SECRET
            env["MINDROOM_STORE_URL"] = f"redis://127.0.0.1:{self.redis.port}/1"
            env["MINDROOM_BUS_URL"] = (f"kafka://{self.kafka.bootstrap}" if self.mode == "kafka"
                                       else f"redis://127.0.0.1:{self.redis.port}/0")
        env.update(self.extra_env)
        # Settings go through .env, as `mindroom config init` writes them.
        fd = os.open(os.path.join(self.config_dir, ".env"), os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in env.items())

    def stub_script(self, script):
        post_json(self.stub.url + "/_stub/script", script)

    def stub_release(self):
        """Lets every held answer go on (the stub's `hold`): call once the test has acted."""
        post_json(self.stub.url + "/_stub/release", {})

    def stub_requests(self):
        with urllib.request.urlopen(self.stub.url + "/_stub/requests", timeout=10) as r:
            return json.load(r)["requests"]

    def hs_state(self):
        with urllib.request.urlopen(self.hs.url + "/_test/state", timeout=10) as r:
            return json.load(r)

    # ---- MindRoom ----

    def _env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MINDROOM_", "MATRIX_")) and k not in ("LOG_LEVEL", "LOG_FORMAT")}
        env["HOME"] = self.work
        if self.mode != "embedded":
            # mindroom-agent takes provider keys from its environment only, as a container gets
            # them; `mindroom run` also reads them from .env.
            env["E2E_MODEL_KEY"] = MODEL_KEY
        return env

    def start(self, only=None):
        """Starts MindRoom (or, apart, the services named in `only`) and waits until ready."""
        config = os.path.join(self.config_dir, "config.yaml")
        if self.mode == "embedded":
            p = self.services.get("mindroom") or Proc(
                "mindroom run", [binary("MINDROOM_BIN"), "run", "--config", config],
                os.path.join(self.work, "mindroom.log"), self._env())
            self.services["mindroom"] = p
            mark = len(p.log_text()) if os.path.exists(p.log) else 0
            p.start()
            wait_for("`mindroom run` to log ready", lambda: self._ready_logged(p, mark))
            return
        for name in only or SERVICES:
            p = self.services.get(name)
            if p is None:
                port = free_port()
                p = Proc(f"mindroom-{name}", [
                    binary(f"MINDROOM_{name.upper()}_BIN"), "--config", config,
                    "--listen", f"127.0.0.1:{port}"],
                    os.path.join(self.work, f"{name}.log"), self._env())
                p.port = port
                self.services[name] = p
            p.start()
        for name in only or SERVICES:
            p = self.services[name]
            wait_for(f"mindroom-{name} /readyz", lambda p=p: self._readyz(p))

    @staticmethod
    def _ready_logged(p, mark):
        if not p.running():
            raise StackError(f"{p.name} exited at start; log {p.log}:\n{tail(p.log)}")
        return " run: ready: " in p.log_text()[mark:]

    @staticmethod
    def _readyz(p):
        if not p.running():
            raise StackError(f"{p.name} exited at start; log {p.log}:\n{tail(p.log)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{p.port}/readyz", timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, only=None, sig=signal.SIGTERM, then=None):
        """Stops MindRoom (or the named services): SIGTERM must end each with status 0. then is
        called with each process's name once it has the signal, before its exit is awaited."""
        names = ["mindroom"] if self.mode == "embedded" else list(only or SERVICES)
        for name in names:
            self.services[name].stop(sig, expect=0 if sig in (signal.SIGTERM, signal.SIGINT) else None,
                                     then=then and (lambda n=name: then(n)))

    def close(self):
        """Stops everything; returns the problems found on the way (unclean exits)."""
        problems = []
        for p in list(self.services.values()) + self.peers[::-1]:
            try:
                p.stop()
            except StackError as e:
                problems.append(str(e))
            finally:
                p.kill()
        return problems

    def logs(self):
        return [p.log for p in list(self.services.values()) + self.peers]


def run_main(doc, config, converse, name):
    """The main() of an end-to-end test: --mode and --keep, the peers, then
    `converse(stack, mode)` (a coroutine returning how many steps failed), a checked stop of
    every process, and on failure the end of each log. Returns the exit status."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--mode", required=True, choices=("embedded", "redis", "kafka"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory and its logs")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix=f"{name}-{args.mode}-")
    stack = Stack(args.mode, work, config)
    failed = 1
    try:
        stack.start_peers()
        failed = asyncio.run(converse(stack, args.mode))
    except (AssertionError, StackError):
        traceback.print_exc()
    finally:
        problems = stack.close()
        for p in problems:
            print(f"FAIL - clean exit: {p}", flush=True)
        failed += len(problems)
    if failed:
        for log in stack.logs():
            print(f"---- {log} (last lines)\n{tail(log)}", flush=True)
        print(f"{failed} failed; logs kept in {work}")
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"all passed ({args.mode})")
    return 0
