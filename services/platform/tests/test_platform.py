"""test_platform.py -- mindroom-platform end to end: the binary with redis-server, mr-test-kube-api
(the Kubernetes API peer) and the real helm rendering charts/instance.

Create (idempotent on the key) -> ready -> suspend -> resume -> upgrade -> delete (nothing left); another
owner's instance 404, no identity 401, the quota 403, invalid values 422 naming the field with
nothing applied; generated secrets only in the Kubernetes Secret; a platform killed between its
applies is finished by the reconcile, without duplicates.

Usage: test_platform.py --platform PATH --kube-api PATH --helm PATH --charts DIR
Exits 77 when helm or redis-server is missing.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "e2e"))
from e2e_stack import free_port, wait_for  # noqa: E402

SKIP = 77
ARGS = None
CHART = None
TOKEN = "kube-sa-token-for-tests"
OPERATOR_KEY = "operator-key-for-tests"
NS = "default"


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in (headers or {}):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


class Proc:
    """A child process with its log; stop() ends it (SIGTERM, or SIGKILL when hard)."""

    def __init__(self, argv, log, env=None):
        self.log = log
        with open(log, "ab") as out:
            self.p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)

    def stop(self, hard=False):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()


class PlatformCase(unittest.TestCase):
    """The peers, the platform and helpers; the tests are in the classes below."""
    kube_args = ()
    platform_env = {}

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mr-platform-test-")
        self.procs = []
        self.platform = None
        # A cleanup, not tearDown: it runs when setUp itself fails, so no peer outlives the test.
        self.addCleanup(self.stop_all)
        self.redis_port = free_port()
        self.redis = self.start(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no"], "redis.log")
        # Ours, not another redis-server that held the port first.
        wait_for("redis", lambda: f"process_id:{self.redis.p.pid}" in self.redis_cli("INFO", "server"))
        self.kube = self.start([ARGS.kube_api, "--listen", "127.0.0.1:0", "--token", TOKEN, *self.kube_args],
                               "kube.log")
        self.kube_url = wait_for("the kube API peer", self.peer_url)
        self.token_file = os.path.join(self.dir, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        self.start_platform()

    def tearDown(self):
        code = self.platform.stop()
        # A clean stop is 0; a crash or a sanitizer report is not.
        self.assertEqual(code, 0, self.platform.text()[-4000:])

    def stop_all(self):
        if getattr(self, "platform", None):
            self.platform.stop()
        for p in reversed(self.procs):
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, argv, log):
        p = Proc(argv, os.path.join(self.dir, log))
        self.procs.append(p)
        return p

    def peer_url(self):
        with open(os.path.join(self.dir, "kube.log")) as f:
            line = f.readline()
        return line.split()[2] if line.startswith("listening on ") and line.endswith("\n") else None

    def redis_cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.redis_port), *args], capture_output=True, text=True, timeout=30)
        return r.stdout.strip()

    def start_platform(self, **extra):
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.dir,
               "MINDROOM_STORE_URL": f"redis://127.0.0.1:{self.redis_port}/0",
               "MINDROOM_STORAGE_PATH": os.path.join(self.dir, "storage"),
               "MINDROOM_PLATFORM_NAMESPACE": NS, "MINDROOM_PLATFORM_INSTANCE_CHART": CHART,
               "MINDROOM_PLATFORM_HELM": ARGS.helm, "MINDROOM_PLATFORM_KUBE_URL": self.kube_url,
               "MINDROOM_PLATFORM_KUBE_TOKEN_FILE": self.token_file,
               "MINDROOM_PLATFORM_MAX_INSTANCES_PER_OWNER": "2", "MINDROOM_PLATFORM_API_KEY": OPERATOR_KEY,
               "MINDROOM_TRUSTED_UPSTREAM_AUTH_ENABLED": "true", "MINDROOM_TRUSTED_UPSTREAM_USER_ID_HEADER": "X-User",
               "INSTANCE_TRUSTED_UPSTREAM_AUTH_ENABLED": "true",
               "INSTANCE_TRUSTED_UPSTREAM_USER_ID_HEADER": "X-MindRoom-User-Id",
               "HELM_CACHE_HOME": os.path.join(self.dir, "helm"), "HELM_CONFIG_HOME": os.path.join(self.dir, "helm"),
               "HELM_DATA_HOME": os.path.join(self.dir, "helm"), **self.platform_env, **extra}
        log = os.path.join(self.dir, "platform.log")
        mark = os.path.getsize(log) if os.path.exists(log) else 0
        # Port 0 and the port it logs: a port picked here could be taken by another process
        # before the platform binds it, and that process would answer in its place.
        self.platform = Proc([ARGS.platform, "--listen", "127.0.0.1:0"], log, env)
        self.procs.append(self.platform)
        self.port = wait_for("the platform's port", lambda: self.logged_port(mark))
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for("the platform's /readyz", lambda: self.ready())

    def logged_port(self, mark):
        if self.platform.p.poll() is not None:
            raise AssertionError(f"mindroom-platform exited {self.platform.p.returncode}:\n{self.platform.text()}")
        found = re.search(r"health endpoints on \S+ \(port (\d+)\)", self.platform.text()[mark:])
        return int(found.group(1)) if found else None

    def ready(self):
        if self.platform.p.poll() is not None:
            raise AssertionError(f"mindroom-platform exited {self.platform.p.returncode}:\n{self.platform.text()}")
        try:
            return http("GET", self.base + "/readyz")[0] == 200
        except OSError:
            return False

    def api(self, method, path, body=None, user="alice", headers=None):
        h = dict(headers or {})
        if user:
            h["X-User"] = user
        return http(method, self.base + path, body, h)

    def kube_get(self, path):
        return http("GET", self.kube_url + path, headers={"Authorization": f"Bearer {TOKEN}"})

    def labelled(self, instance_id):
        """(kind, name) -> metadata of every object in the peer labelled with the instance."""
        out = {}
        for prefix, res, kind in [("/api/v1", "secrets", "Secret"), ("/api/v1", "configmaps", "ConfigMap"),
                                  ("/api/v1", "services", "Service"), ("/api/v1", "serviceaccounts", "ServiceAccount"),
                                  ("/apis/apps/v1", "deployments", "Deployment"),
                                  ("/apis/autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
                                  ("/apis/policy/v1", "poddisruptionbudgets", "PodDisruptionBudget")]:
            code, body = self.kube_get(f"{prefix}/namespaces/{NS}/{res}?labelSelector=app.kubernetes.io/instance%3D"
                                       + instance_id)
            self.assertEqual(code, 200, body)
            for item in body["items"]:
                out[(kind, item["metadata"]["name"])] = item["metadata"]
        return out

    def owned(self, instance_id):
        """(kind, name) -> uid of every object labelled with the instance."""
        return {k: m["uid"] for k, m in self.labelled(instance_id).items()}

    def resource_versions(self, instance_id):
        """(kind, name) -> resourceVersion of every object labelled with the instance."""
        return {k: m["resourceVersion"] for k, m in self.labelled(instance_id).items()}

    def deployments(self, instance_id):
        code, body = self.kube_get(f"/apis/apps/v1/namespaces/{NS}/deployments?labelSelector="
                                   f"app.kubernetes.io/instance%3D{instance_id}")
        return {d["metadata"]["name"]: d for d in body["items"]}

    def create(self, key="home", user="alice", values=None):
        body = {"key": key}
        if values is not None:
            body["values"] = values
        return self.api("POST", "/v1/instances", body, user=user)


class Platform(PlatformCase):
    def test_lifecycle_create_suspend_resume_upgrade_delete(self):
        code, inst = self.create()
        self.assertEqual(code, 201, inst)
        iid = inst["id"]
        self.assertEqual((inst["phase"], inst["owner"], inst["key"], inst["suspended"]), ("ready", "alice", "home", False))
        objs = self.owned(iid)
        deps = self.deployments(iid)
        self.assertEqual(sorted(deps), sorted(f"{iid}-{s}" for s in
                                              ["gateway", "crypto", "authz", "agent", "upstream-auth"]))
        self.assertIn(("Secret", f"{iid}-secrets"), objs)
        self.assertIn(("HorizontalPodAutoscaler", f"{iid}-agent"), objs)
        # The platform's INSTANCE_TRUSTED_UPSTREAM_* became the instance's MINDROOM_TRUSTED_UPSTREAM_*.
        env = {e["name"]: e.get("value") for e in
               deps[f"{iid}-upstream-auth"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        self.assertEqual((env["MINDROOM_TRUSTED_UPSTREAM_AUTH_ENABLED"], env["MINDROOM_TRUSTED_UPSTREAM_USER_ID_HEADER"]),
                         ("true", "X-MindRoom-User-Id"))
        # The same key again is the same instance: 200, nothing made twice.
        code, again = self.create()
        self.assertEqual((code, again["id"]), (200, iid))
        self.assertEqual(self.owned(iid), objs)

        code, body = self.api("POST", f"/v1/instances/{iid}/suspend")
        self.assertEqual((code, body["phase"], body["suspended"]), (200, "suspended", True), body)
        for d in self.deployments(iid).values():
            self.assertEqual(d["spec"]["replicas"], 0)
        kinds = {k for k, _ in self.owned(iid)}
        self.assertNotIn("HorizontalPodAutoscaler", kinds)
        self.assertNotIn("PodDisruptionBudget", kinds)
        self.assertIn(("Secret", f"{iid}-secrets"), self.owned(iid))

        code, body = self.api("POST", f"/v1/instances/{iid}/resume")
        self.assertEqual((code, body["phase"]), (200, "ready"), body)
        # Server-side apply hands the count back: the Deployments return to their default of
        # one replica and the autoscalers are back.
        for d in self.deployments(iid).values():
            self.assertEqual(d["spec"]["replicas"], 1, d["metadata"]["name"])
        after = self.owned(iid)
        self.assertEqual(after[("Secret", f"{iid}-secrets")], objs[("Secret", f"{iid}-secrets")])
        self.assertEqual(after[("Deployment", f"{iid}-agent")], objs[("Deployment", f"{iid}-agent")])
        self.assertIn(("HorizontalPodAutoscaler", f"{iid}-agent"), after)

        # Upgrade: new values reach the Deployments; refused ones change nothing.
        code, body = self.api("PATCH", f"/v1/instances/{iid}",
                              {"values": {"services": {"agent": {"extraEnv": [{"name": "X_UPGRADED", "value": "1"}]}}}})
        self.assertEqual((code, body["phase"]), (200, "ready"), body)
        agent = self.deployments(iid)[f"{iid}-agent"]
        self.assertIn({"name": "X_UPGRADED", "value": "1"}, agent["spec"]["template"]["spec"]["containers"][0]["env"])
        self.assertEqual(agent["metadata"]["uid"], objs[("Deployment", f"{iid}-agent")])
        code, body = self.api("PATCH", f"/v1/instances/{iid}", {"values": {"services": {"agent": {"port": 0}}}})
        self.assertEqual(code, 422)
        self.assertIn("services.agent.port", body["detail"])
        self.assertEqual(self.deployments(iid)[f"{iid}-agent"]["metadata"]["resourceVersion"],
                         agent["metadata"]["resourceVersion"])
        self.assertEqual(self.api("PATCH", f"/v1/instances/{iid}", {"values": {}}, user="bob")[0], 404)

        code, body = self.api("DELETE", f"/v1/instances/{iid}")
        self.assertEqual((code, body["phase"]), (200, "deleted"), body)
        self.assertEqual(self.owned(iid), {})
        self.assertEqual(self.api("GET", f"/v1/instances/{iid}")[0], 404)
        self.assertEqual(self.redis_cli("KEYS", f"platform:instance:{iid}"), "")

    def test_identity_ownership_and_quota(self):
        code, inst = self.create()
        self.assertEqual(code, 201, inst)
        iid = inst["id"]
        self.assertEqual(self.api("GET", f"/v1/instances/{iid}")[0], 200)
        code, body = self.api("GET", f"/v1/instances/{iid}", user="bob")
        self.assertEqual((code, body["detail"]), (404, f"instance {iid} not found"))
        self.assertEqual(self.api("DELETE", f"/v1/instances/{iid}", user="bob")[0], 404)
        self.assertEqual(self.api("POST", f"/v1/instances/{iid}/suspend", user="bob")[0], 404)
        self.assertEqual(self.api("GET", "/v1/instances", user="bob")[1], {"instances": []})
        code, body = self.api("GET", "/v1/instances", user=None)
        self.assertEqual((code, body["detail"]), (401, "no trusted user ID header"))
        code, body = self.api("GET", "/v1/instances", user=None, headers={"Authorization": "Bearer wrong"})
        self.assertEqual(code, 401)
        # The operator sees every instance.
        code, body = self.api("GET", "/v1/instances", user=None, headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
        self.assertEqual([i["id"] for i in body["instances"]], [iid])
        # Bob's key "home" is another instance than Alice's.
        code, bobs = self.create(user="bob")
        self.assertEqual(code, 201)
        self.assertNotEqual(bobs["id"], iid)
        self.assertEqual(self.create(key="work")[0], 201)
        code, body = self.create(key="third")
        self.assertEqual(code, 403)
        self.assertIn("quota reached: alice has 2 instances", body["detail"])
        self.assertIn("MINDROOM_PLATFORM_MAX_INSTANCES_PER_OWNER", body["detail"])

    def test_invalid_values_422_and_nothing_applied(self):
        before = self.redis_cli("KEYS", "platform:*")
        cases = [({"services": {"agent": {"port": 70000}}}, "services.agent.port"),
                 ({"services": {"agent": {"replicaCount": 9}}},
                  "services.agent.replicaCount (9) is above services.agent.autoscaling.maxReplicas (4)"),
                 ({"image": {"tag": "evil"}}, "values.image: not settable through the platform"),
                 ([1], "values: expected an object")]
        for values, want in cases:
            with self.subTest(values=values):
                code, body = self.create(key="bad", values=values)
                self.assertEqual(code, 422, body)
                self.assertIn(want, body["detail"])
        code, body = self.create(key="bad key")
        self.assertEqual(code, 422)
        self.assertIn("key: required, 1 to 64 of [A-Za-z0-9._-]", body["detail"])
        code, listed = self.kube_get(f"/apis/apps/v1/namespaces/{NS}/deployments")
        self.assertEqual(listed["items"], [])
        code, listed = self.kube_get(f"/api/v1/namespaces/{NS}/secrets")
        self.assertEqual(listed["items"], [])
        self.assertEqual(self.redis_cli("KEYS", "platform:*"), before)

    def test_generated_secrets_stay_in_the_secret(self):
        code, inst = self.create()
        self.assertEqual(code, 201, inst)
        code, secret = self.kube_get(f"/api/v1/namespaces/{NS}/secrets/{inst['id']}-secrets")
        self.assertEqual(code, 200)
        values = [base64.b64decode(v).decode() for v in secret["data"].values()]
        self.assertEqual(sorted(secret["data"]), ["MINDROOM_API_KEY", "MINDROOM_INSTANCE_SECRET"])
        self.assertTrue(all(len(v) == 64 for v in values))
        dump = "\n".join(self.redis_cli("GET", k) for k in self.redis_cli("KEYS", "platform:instance:*").split())
        self.assertIn(inst["id"], dump)
        for v in values:
            self.assertNotIn(v, dump)
            self.assertNotIn(v, self.platform.text())
            self.assertNotIn(v, json.dumps(self.api("GET", f"/v1/instances/{inst['id']}")[1]))
        # The Secret is made once: a resume does not regenerate it.
        self.api("POST", f"/v1/instances/{inst['id']}/suspend")
        self.api("POST", f"/v1/instances/{inst['id']}/resume")
        self.assertEqual(self.kube_get(f"/api/v1/namespaces/{NS}/secrets/{inst['id']}-secrets")[1]["data"],
                         secret["data"])

    def test_reconcile_finishes_an_interrupted_create_without_duplicates(self):
        code, inst = self.create()
        self.assertEqual(code, 201, inst)
        iid = inst["id"]
        whole = self.owned(iid)
        # A platform killed between its applies: the record says "apply" is under way and only
        # part of the objects exist.
        self.platform.stop(hard=True)
        rec = json.loads(self.redis_cli("GET", f"platform:instance:{iid}"))
        rec["op"] = "apply"
        self.redis_cli("SET", f"platform:instance:{iid}", json.dumps(rec))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        gone = [f"{iid}-agent", f"{iid}-upstream-auth"]
        for name in gone:
            self.assertEqual(http("DELETE", f"{self.kube_url}/apis/apps/v1/namespaces/{NS}/deployments/{name}",
                                  headers=headers)[0], 200)
        # And a create killed between its index entries and its record: a place of the quota
        # taken by nothing.
        owner_index = "platform:owner:" + hashlib.sha256(b"alice\n").hexdigest()[:32]
        self.redis_cli("HSET", "platform:instances", "mr-0000000000000000", "alice")
        self.redis_cli("HSET", owner_index, "mr-0000000000000000", "lost")
        self.start_platform(MINDROOM_PLATFORM_RECONCILE_SECONDS="1")
        wait_for("the reconcile to clear the operation",
                 lambda: "op" not in json.loads(self.redis_cli("GET", f"platform:instance:{iid}")))
        wait_for("the reconcile to drop the index entries without a record",
                 lambda: self.redis_cli("HKEYS", owner_index) == iid)
        self.assertEqual(self.redis_cli("HKEYS", "platform:instances"), iid)
        now = self.owned(iid)
        self.assertEqual(sorted(now), sorted(whole))
        for key, uid in whole.items():
            if key[1] not in gone:
                self.assertEqual(now[key], uid, f"{key} was made again")
        self.assertIn("finished an interrupted apply", self.platform.text())
        code, body = self.api("GET", f"/v1/instances/{iid}")
        self.assertEqual(body["phase"], "ready")


class BaseValuesAndSecrets(PlatformCase):
    """The operator's base values reach every instance; INSTANCE_SECRET_* reach only its Secret."""
    TOKEN_VALUE = "registration-token-not-for-logs"
    STORE_URL = "redis://:store-password-not-for-logs@redis:6379/3"

    def start_platform(self, **extra):
        values = os.path.join(self.dir, "instance-values.yaml")
        with open(values, "w") as f:
            f.write("matrix:\n  homeserver: https://hs.example.org\n  serverName: example.org\n"
                    "extraEnv:\n  - name: FROM_BASE\n    value: base\n")
        self.platform_env = {"MINDROOM_PLATFORM_INSTANCE_VALUES": values,
                             "INSTANCE_SECRET_MATRIX_REGISTRATION_TOKEN": self.TOKEN_VALUE,
                             "INSTANCE_SECRET_MINDROOM_STORE_URL": self.STORE_URL}
        super().start_platform(**extra)

    def test_base_values_namespace_and_copied_secrets(self):
        code, inst = self.create(values={"config": {"router": {"model": "default"}}})
        self.assertEqual(code, 201, inst)
        iid = inst["id"]
        for name, d in self.deployments(iid).items():
            env = {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
            self.assertEqual((env["MATRIX_HOMESERVER"], env["MATRIX_SERVER_NAME"], env["FROM_BASE"]),
                             ("https://hs.example.org", "example.org", "base"), name)
            # Each instance its own Matrix namespace: the id's digest.
            self.assertEqual(env["MINDROOM_NAMESPACE"], iid[3:], name)
            self.assertNotIn(self.TOKEN_VALUE, json.dumps(d))
        code, secret = self.kube_get(f"/api/v1/namespaces/{NS}/secrets/{iid}-secrets")
        self.assertEqual(sorted(secret["data"]), ["MATRIX_REGISTRATION_TOKEN", "MINDROOM_API_KEY",
                                                  "MINDROOM_INSTANCE_SECRET", "MINDROOM_STORE_URL"])
        self.assertEqual(base64.b64decode(secret["data"]["MATRIX_REGISTRATION_TOKEN"]).decode(), self.TOKEN_VALUE)
        # A store URL kept in the Secret (it has a password) gets the instance's prefix there.
        self.assertEqual(base64.b64decode(secret["data"]["MINDROOM_STORE_URL"]).decode(),
                         f"{self.STORE_URL}?prefix={iid}")
        dump = "\n".join(self.redis_cli("GET", k) for k in self.redis_cli("KEYS", "platform:*").split()
                         if k.startswith("platform:instance:"))
        self.assertIn(iid, dump)
        self.assertNotIn(self.TOKEN_VALUE, dump)
        self.assertNotIn(self.TOKEN_VALUE, self.platform.text())

    def test_rotated_secret_reaches_the_instance_and_rolls_only_its_pods(self):
        """A platform restarted with a new INSTANCE_SECRET_* value: its reconcile puts the value in
        every instance's Secret and a new checksum/secret in each pod template, so the Deployments
        roll; the generated values and every other object stay as they were, and neither value is
        logged. Restarted again with the same value, nothing is written."""
        code, inst = self.create()
        self.assertEqual(code, 201, inst)
        iid = inst["id"]
        secret_path = f"/api/v1/namespaces/{NS}/secrets/{iid}-secrets"
        old_secret = self.kube_get(secret_path)[1]
        old_deps = self.deployments(iid)
        versions = self.resource_versions(iid)
        sums = {d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] for d in old_deps.values()}
        self.assertEqual(len(sums), 1)

        rotated = "rotated-registration-token-not-for-logs"
        self.platform.stop()
        self.start_platform(INSTANCE_SECRET_MATRIX_REGISTRATION_TOKEN=rotated)
        wait_for("the reconcile to rotate the Secret",
                 lambda: base64.b64decode(self.kube_get(secret_path)[1]["data"]["MATRIX_REGISTRATION_TOKEN"]).decode()
                 == rotated)
        new_secret = self.kube_get(secret_path)[1]
        for k in ("MINDROOM_INSTANCE_SECRET", "MINDROOM_API_KEY"):
            self.assertEqual(new_secret["data"][k], old_secret["data"][k], f"{k} was generated again")
        wait_for("every Deployment to carry the new checksum", lambda: all(
            d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"] not in sums
            for d in self.deployments(iid).values()))
        new_deps = self.deployments(iid)
        self.assertEqual(len({d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
                              for d in new_deps.values()}), 1)
        for name, d in new_deps.items():
            before = old_deps[name]
            self.assertGreater(d["metadata"]["generation"], before["metadata"]["generation"], name)
            for x in (d, before):
                x["spec"]["template"]["metadata"]["annotations"].pop("checksum/secret")
            self.assertEqual(d["spec"], before["spec"], f"{name}: more than the checksum changed")
        now = self.resource_versions(iid)
        changed = sorted(k for k in now if now[k] != versions.get(k))
        self.assertEqual(changed, sorted([("Secret", f"{iid}-secrets")] + [("Deployment", n) for n in old_deps]))
        for text in (self.platform.text(), self.kube.text()):
            self.assertNotIn(rotated, text)
            self.assertNotIn(self.TOKEN_VALUE, text)

        # The same value again: the reconcile writes nothing.
        settled = self.resource_versions(iid)
        self.platform.stop()
        passes = self.platform.text().count("first reconcile pass done")
        self.start_platform(INSTANCE_SECRET_MATRIX_REGISTRATION_TOKEN=rotated)
        wait_for("the first reconcile pass",
                 lambda: self.platform.text().count("first reconcile pass done") > passes)
        self.assertEqual(self.resource_versions(iid), settled)

    def test_bad_base_values_and_secret_names_stop_start_up(self):
        bad_values = os.path.join(self.dir, "list.yaml")
        with open(bad_values, "w") as f:
            f.write("- a\n- b\n")
        cases = [({"MINDROOM_PLATFORM_INSTANCE_VALUES": bad_values},
                  f"MINDROOM_PLATFORM_INSTANCE_VALUES: {bad_values} must hold one mapping of values"),
                 ({"MINDROOM_PLATFORM_INSTANCE_VALUES": os.path.join(self.dir, "absent.yaml")},
                  "MINDROOM_PLATFORM_INSTANCE_VALUES"),
                 ({"INSTANCE_SECRET_MINDROOM_API_KEY": "x"},
                  "INSTANCE_SECRET_MINDROOM_API_KEY: the platform generates MINDROOM_API_KEY for each instance"),
                 ({"INSTANCE_SECRET_BAD-NAME": "x"}, "the name after INSTANCE_SECRET_ must be 1 to 127 of"),
                 ({"MINDROOM_PLATFORM_MAX_INSTANCES_PER_OWNER": "1001"},
                  'MINDROOM_PLATFORM_MAX_INSTANCES_PER_OWNER: "1001" is not a whole number from 1 to 1000'),
                 ({"MINDROOM_PLATFORM_RECONCILE_SECONDS": " 5"},
                  'MINDROOM_PLATFORM_RECONCILE_SECONDS: " 5" is not a whole number from 1 to 86400')]
        env = dict(os.environ, MINDROOM_STORE_URL=f"redis://127.0.0.1:{self.redis_port}/0",
                   MINDROOM_STORAGE_PATH=os.path.join(self.dir, "bad-storage"), MINDROOM_PLATFORM_NAMESPACE=NS,
                   MINDROOM_PLATFORM_INSTANCE_CHART=CHART, MINDROOM_PLATFORM_KUBE_URL=self.kube_url,
                   MINDROOM_PLATFORM_API_KEY=OPERATOR_KEY)
        for extra, want in cases:
            with self.subTest(extra=extra):
                r = subprocess.run([ARGS.platform, "--listen", "127.0.0.1:0"], env={**env, **extra},
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(want, r.stderr)


class PhaseFromKubernetes(PlatformCase):
    """The phase is what the Deployments' status says, as the deployment controller writes it."""
    kube_args = ("--deployments", "manual")

    def set_status(self, name, status):
        code, body = http("PATCH", f"{self.kube_url}/apis/apps/v1/namespaces/{NS}/deployments/{name}/status",
                          {"status": status}, {"Authorization": f"Bearer {TOKEN}",
                                               "Content-Type": "application/merge-patch+json"})
        self.assertEqual(code, 200, body)

    def test_provisioning_ready_failed(self):
        code, inst = self.create()
        self.assertEqual((code, inst["phase"]), (201, "provisioning"), inst)
        iid = inst["id"]
        deps = self.deployments(iid)
        for name, d in deps.items():
            self.set_status(name, {"observedGeneration": d["metadata"]["generation"], "replicas": 1,
                                   "readyReplicas": 1, "availableReplicas": 1})
        self.assertEqual(self.api("GET", f"/v1/instances/{iid}")[1]["phase"], "ready")
        stalled = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                   "message": 'ReplicaSet "x" has timed out progressing.'}
        self.set_status(f"{iid}-agent", {"conditions": [stalled]})
        code, body = self.api("GET", f"/v1/instances/{iid}")
        self.assertEqual(body["phase"], "failed")
        self.assertEqual(body["reason"], f'{iid}-agent: ReplicaSet "x" has timed out progressing.')


def main(extra_args=(), module="__main__"):
    """Packages the instance chart, then runs the tests of `module` (another test file's main
    passes its own arguments and module)."""
    global ARGS, CHART
    ap = argparse.ArgumentParser()
    for a in ("--platform", "--kube-api", "--helm", "--charts", *extra_args):
        ap.add_argument(a, required=True)
    ARGS, rest = ap.parse_known_args()
    if not os.access(ARGS.helm, os.X_OK):
        ARGS.helm = shutil.which("helm")
    if not ARGS.helm or not shutil.which("redis-server"):
        print("SKIP: needs helm (`make helm`) and redis-server")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="mr-platform-chart-") as d:
        # The instance chart as the platform image carries it: dependency built, packaged.
        env = dict(os.environ, HELM_CACHE_HOME=d, HELM_CONFIG_HOME=d, HELM_DATA_HOME=d)
        shutil.copytree(ARGS.charts, os.path.join(d, "charts"))
        for step in (["dependency", "build", os.path.join(d, "charts", "instance")],
                     ["package", os.path.join(d, "charts", "instance"), "--destination", d]):
            r = subprocess.run([ARGS.helm, *step], capture_output=True, text=True, env=env, timeout=120)
            if r.returncode != 0:
                print(f"helm {' '.join(step)} failed: {r.stderr}")
                return 1
        CHART = os.path.join(d, "mindroom-instance-0.1.0.tgz")
        result = unittest.main(module=module, argv=[sys.argv[0], *rest], exit=False, verbosity=2).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
