"""test_kube_run.py -- mr-test-kube-api --deployments run: each replica of a Deployment a local
process (tests/peers/kube_api/tests/pod.py under python3 as the image "pod"), started with the
environment the kubelet would give it (value, secretKeyRef, configMapKeyRef, fieldRef, envFrom
with a prefix), its ConfigMap volume as files, its container port on a free local port; the
status written from the readiness probe as the deployment controller would; scale to 0, a new
template, delete and the peer's exit stop the processes (SIGTERM, SIGKILL after the grace
period); a pod whose Secret is missing waits for it.

Usage: test_kube_run.py --peer PATH
"""

import json
import os
import shutil
import signal
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "e2e"))
import test_kube_api as ka  # noqa: E402
from e2e_stack import wait_for  # noqa: E402

POD = os.path.join(HERE, "pod.py")
SECRET = "/api/v1/namespaces/default/secrets"


def alive(pid):
    """False once pid is gone or a zombie nobody reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def app(name="app", replicas=1, env_extra=(), grace=None, secret="creds"):
    """A Deployment of the pod image with every kind of environment source and a config volume."""
    container = {
        "name": name, "image": "registry.example.org/team/pod:1.2.3", "command": ["pod", POD],
        "args": ["--listen", "0.0.0.0:8080", "--config", "/etc/app/app.yaml"],
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": [{"name": "PLAIN", "value": "plain value"},
                {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}},
                {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "DATA_DIR", "value": "/var/lib/app/sub"},
                *env_extra],
        "envFrom": [{"secretRef": {"name": secret}, "prefix": "S_"},
                    {"configMapRef": {"name": "absent", "optional": True}}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": True},
                         {"name": "data", "mountPath": "/var/lib/app"}]}
    pod = {"containers": [container],
           "volumes": [{"name": "config", "configMap": {"name": "settings"}}, {"name": "data", "emptyDir": {}}]}
    if grace is not None:
        pod["terminationGracePeriodSeconds"] = grace
    dep = ka.deployment(name, replicas)
    dep["spec"]["template"]["spec"] = pod
    return dep


class RunDeployments(ka.KubeCase):
    def setUp(self):
        self.reports = tempfile.mkdtemp(prefix="mr-kube-run-reports-")
        self.peer_args = ("--deployments", "run", "--image", f"pod={sys.executable}")
        # The peer keeps its pods' directories under TMPDIR: here, so a peer the test kills
        # leaves none behind.
        self.addCleanup(os.environ.__setitem__, "TMPDIR", os.environ.get("TMPDIR", tempfile.gettempdir()))
        os.environ["TMPDIR"] = self.reports
        super().setUp()
        self.addCleanup(shutil.rmtree, self.reports, True)
        # Cleanups run last in, first out: this one before the reports go. A test that failed
        # with a pod still running leaves it behind for no one.
        self.addCleanup(self.kill_leftovers)
        self.apply(ka.CM + "/settings", {"apiVersion": "v1", "kind": "ConfigMap",
                                         "metadata": {"name": "settings", "namespace": "default"},
                                         "data": {"level": "debug", "app.yaml": "answer: 42\n",
                                                  "REPORT_DIR": self.reports}})
        self.apply(SECRET + "/creds", {"apiVersion": "v1", "kind": "Secret",
                                       "metadata": {"name": "creds", "namespace": "default"},
                                       "stringData": {"token": "t0ken", "user": "bot"}})

    def kill_leftovers(self):
        for f in os.listdir(self.reports):
            if f.endswith(".json"):
                with open(os.path.join(self.reports, f)) as fh:
                    pid = json.load(fh)["pid"]
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)

    def apply(self, path, obj):
        code, body = self.peer.apply(path, obj, "test", force=True)
        self.assertIn(code, (200, 201), body)
        return body

    def deploy(self, dep):
        # REPORT_DIR comes from the ConfigMap, as every other configMapKeyRef does.
        env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
        if not any(e["name"] == "REPORT_DIR" for e in env):
            env.append({"name": "REPORT_DIR", "valueFrom": {"configMapKeyRef": {"name": "settings",
                                                                                  "key": "REPORT_DIR"}}})
        return self.apply(ka.DEPLOY + "/" + dep["metadata"]["name"], dep)

    def reports_of(self, name):
        out = {}
        for f in os.listdir(self.reports):
            if f.startswith(name + "-") and f.endswith(".json"):
                with open(os.path.join(self.reports, f)) as fh:
                    out[f[:-5]] = json.load(fh)
        return out

    def running(self, name):
        return {pod: r for pod, r in self.reports_of(name).items() if alive(r["pid"])}

    def status(self, name):
        return self.peer.request("GET", ka.DEPLOY + "/" + name)[1].get("status", {})

    def ready(self, pod):
        open(os.path.join(self.reports, pod + ".ready"), "w").close()

    def test_environment_volumes_ports_and_readiness(self):
        self.deploy(app(replicas=2))
        pods = wait_for("two pods", lambda: len(self.running("app")) == 2 and self.running("app"))
        ports = set()
        for pod, r in pods.items():
            env = r["env"]
            self.assertEqual((env["PLAIN"], env["FROM_SECRET"], env["FROM_CM"], env["POD_NAME"], env["HOSTNAME"]),
                             ("plain value", "t0ken", "debug", pod, pod))
            self.assertEqual((env["S_token"], env["S_user"]), ("t0ken", "bot"))
            # The mounts are directories of the pod; paths under them are rewritten.
            self.assertEqual(list(r["files"].values()), ["answer: 42\n"])
            config = r["argv"][r["argv"].index("--config") + 1]
            self.assertTrue(config.endswith("/volumes/config/app.yaml"), config)
            self.assertTrue(env["DATA_DIR"].endswith("/volumes/data/sub"), env["DATA_DIR"])
            self.assertNotIn("/etc/app", " ".join(r["argv"]))
            host, port = r["argv"][r["argv"].index("--listen") + 1].rsplit(":", 1)
            self.assertEqual(host, "127.0.0.1")
            ports.add(port)
        self.assertEqual(len(ports), 2, "each replica on its own local port")
        self.assertNotIn("8080", ports)
        # Not ready until the probe passes; then the controller's counts and conditions.
        st = wait_for("the status of two unready pods", lambda: self.status("app").get("replicas") == 2
                      and self.status("app"))
        self.assertNotIn("readyReplicas", st)
        self.assertEqual(st["unavailableReplicas"], 2)
        self.assertEqual({c["type"]: c["status"] for c in st["conditions"]}, {"Available": "False",
                                                                             "Progressing": "True"})
        first, second = sorted(pods)
        self.ready(first)
        wait_for("one ready pod", lambda: self.status("app").get("readyReplicas") == 1)
        self.ready(second)
        st = wait_for("two ready pods", lambda: self.status("app").get("readyReplicas") == 2 and self.status("app"))
        self.assertEqual((st["availableReplicas"], st["updatedReplicas"], st["observedGeneration"]), (2, 2, 1))
        self.assertEqual({c["type"]: c["reason"] for c in st["conditions"]},
                         {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"})

    def test_scale_to_zero_new_template_and_delete_stop_processes(self):
        self.deploy(app())
        (pod, r), = wait_for("a pod", lambda: self.running("app")).items()
        # A new template replaces the pod: the old one gets SIGTERM.
        self.deploy(app(env_extra=[{"name": "VERSION", "value": "2"}]))
        wait_for("the old pod's SIGTERM", lambda: os.path.exists(os.path.join(self.reports, pod + ".term")))
        wait_for("the old process to end", lambda: not alive(r["pid"]))
        (pod2, r2), = wait_for("the new pod", lambda: self.running("app")).items()
        self.assertEqual(r2["env"]["VERSION"], "2")
        self.assertNotEqual(pod2.rsplit("-", 2)[1], pod.rsplit("-", 2)[1], "a new pod-template-hash")
        self.deploy(app(replicas=0, env_extra=[{"name": "VERSION", "value": "2"}]))
        wait_for("scale to 0", lambda: not alive(r2["pid"]))
        self.assertTrue(os.path.exists(os.path.join(self.reports, pod2 + ".term")))
        wait_for("the status of no pods", lambda: "replicas" not in self.status("app"))
        self.deploy(app(replicas=1, env_extra=[{"name": "VERSION", "value": "2"}]))
        (pod3, r3), = wait_for("a pod again", lambda: self.running("app")).items()
        self.assertEqual(self.peer.request("DELETE", ka.DEPLOY + "/app")[0], 200)
        wait_for("delete to stop the pod", lambda: not alive(r3["pid"]))

    def test_sigkill_after_the_grace_period(self):
        self.deploy(app(grace=1, env_extra=[{"name": "IGNORE_TERM", "value": "1"}]))
        (pod, r), = wait_for("a pod", lambda: self.running("app")).items()
        self.assertEqual(self.peer.request("DELETE", ka.DEPLOY + "/app")[0], 200)
        wait_for("SIGKILL after a second of grace", lambda: not alive(r["pid"]))
        self.assertFalse(os.path.exists(os.path.join(self.reports, pod + ".term")))
        self.assertIn("did not stop within 1 s: SIGKILL", open(self.peer.log).read())

    def test_a_pod_waits_for_its_secret(self):
        self.deploy(app(name="late", secret="later"))
        wait_for("the reason logged", lambda: 'secret \\"later\\" not found' in open(self.peer.log).read()
                 or 'secret "later" not found' in open(self.peer.log).read())
        self.assertEqual(self.running("late"), {})
        self.apply(SECRET + "/later", {"apiVersion": "v1", "kind": "Secret",
                                       "metadata": {"name": "later", "namespace": "default"},
                                       "stringData": {"token": "late", "user": "bot"}})
        (pod, r), = wait_for("the pod once its Secret exists", lambda: self.running("late")).items()
        self.assertEqual(r["env"]["FROM_SECRET"], "late")

    def test_an_image_without_a_binary_never_starts(self):
        dep = app(name="pulled")
        dep["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.org/other:1"
        self.deploy(dep)
        wait_for("the reason logged", lambda: 'image "registry.example.org/other:1": no binary given for it'
                 in open(self.peer.log).read())
        # Like a pod in ErrImagePull: it counts, and it is not ready.
        st = wait_for("the status", lambda: self.status("pulled").get("replicas") == 1 and self.status("pulled"))
        self.assertNotIn("readyReplicas", st)
        self.assertEqual(self.running("pulled"), {})

    def test_peer_exit_stops_every_process(self):
        self.deploy(app(replicas=2))
        pids = [r["pid"] for r in wait_for("two pods", lambda: len(self.running("app")) == 2
                                           and self.running("app")).values()]
        self.assertEqual(self.peer.stop(), 0)
        self.assertEqual([p for p in pids if alive(p)], [])
        # tearDown stops the peer again: a no-op, with the same clean exit.
        self.peer.proc.returncode = 0

    def test_a_killed_peer_leaves_no_process(self):
        self.deploy(app())
        (pod, r), = wait_for("a pod", lambda: self.running("app")).items()
        self.peer.proc.send_signal(signal.SIGKILL)
        self.peer.proc.wait()
        wait_for("the pod to die with the peer", lambda: not alive(r["pid"]))
        self.peer.proc.returncode = 0


def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", required=True)
    args, rest = ap.parse_known_args()
    ka.PEER = args.peer
    result = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
