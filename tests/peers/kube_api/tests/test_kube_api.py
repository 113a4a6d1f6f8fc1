"""test_kube_api.py -- mr-test-kube-api checked against the real kubectl 1.31 (apply --server-side,
get, delete) and, for what kubectl does not show, raw requests compared with the apiserver's
answers: field-manager conflicts, the defaulting of a field its sole manager stops applying,
label selectors, delete propagation, the /status subresource, resourceVersion and Status errors.

Usage: test_kube_api.py --peer PATH --kubectl PATH
Exits 77 (CTest's skip code) when kubectl is not installed; `make helm` installs it.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import yaml

SKIP = 77
PEER = None
KUBECTL = None
START_TIMEOUT_S = 30


class Peer:
    """One mr-test-kube-api process on a free loopback port."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="mr-kube-api-")
        self.log = os.path.join(self.dir, "kube-api.log")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([PEER, "--listen", "127.0.0.1:0", *args], stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        self.url = None
        while self.url is None:
            with open(self.log) as f:
                line = f.readline()
            if line.startswith("listening on ") and line.endswith("\n"):
                self.url = line.split()[2]
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mr-test-kube-api did not start: {open(self.log).read()}")
            else:
                time.sleep(0.05)

    def stop(self):
        """SIGTERM, then the exit code: a clean stop is 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        shutil.rmtree(self.dir, ignore_errors=True)
        return code

    def request(self, method, path, body=None, content_type="application/json", token=None):
        """(status, parsed JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def apply(self, path, obj, manager, force=False):
        q = f"?fieldManager={manager}" + ("&force=true" if force else "")
        return self.request("PATCH", path + q, obj, "application/apply-patch+yaml")


def deployment(name, replicas=2, labels=None, image="nginx"):
    spec = {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": name, "image": image}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": name}}, "spec": spec}


def configmap(name, labels, ns="default", owner=None):
    meta = {"name": name, "namespace": ns, "labels": labels}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
                                    "uid": owner["metadata"]["uid"]}]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": name}}


DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
CM = "/api/v1/namespaces/default/configmaps"


class KubeCase(unittest.TestCase):
    peer_args = ()

    def setUp(self):
        self.peer = Peer(*self.peer_args)
        self.home = tempfile.mkdtemp(prefix="mr-kubectl-home-")

    def tearDown(self):
        code = self.peer.stop()
        shutil.rmtree(self.home, ignore_errors=True)
        self.assertEqual(code, 0, "mr-test-kube-api did not stop cleanly")

    def kubectl(self, *args, stdin=None):
        """(exit code, stdout, stderr) of kubectl against the peer, with no kubeconfig."""
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.home, "KUBECONFIG": os.devnull}
        r = subprocess.run([KUBECTL, f"--server={self.peer.url}", *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)
        return r.returncode, r.stdout, r.stderr

    def kubectl_ok(self, *args, stdin=None):
        code, out, err = self.kubectl(*args, stdin=stdin)
        self.assertEqual(code, 0, f"kubectl {' '.join(args)}: {err}")
        return out

    def apply_file(self, obj, *extra):
        return self.kubectl("apply", "--server-side", *extra, "-f", "-", stdin=yaml.safe_dump(obj))

    def get(self, *args):
        return json.loads(self.kubectl_ok("get", *args, "-o", "json"))


class KubectlFidelity(KubeCase):
    def test_apply_server_side_creates_then_reapplies(self):
        code, out, err = self.apply_file(deployment("web"))
        self.assertEqual((code, out.strip()), (0, "deployment.apps/web serverside-applied"), err)
        dep = self.get("deployment", "web", "-n", "default", "--show-managed-fields")
        meta = dep["metadata"]
        self.assertEqual(dep["spec"]["replicas"], 2)
        self.assertEqual(meta["generation"], 1)
        self.assertEqual([(m["manager"], m["operation"], m["fieldsType"]) for m in meta["managedFields"]],
                         [("kubectl", "Apply", "FieldsV1")])
        self.assertEqual(meta["managedFields"][0]["fieldsV1"]["f:spec"]["f:replicas"], {})
        # Status as the deployment controller leaves it with every replica available.
        self.assertEqual(dep["status"]["observedGeneration"], 1)
        self.assertEqual(dep["status"]["readyReplicas"], 2)
        self.assertIn({"type": "Available", "status": "True"},
                      [{k: c[k] for k in ("type", "status")} for c in dep["status"]["conditions"]])
        # The same apply changes nothing: no new resourceVersion, no new generation.
        self.apply_file(deployment("web"))
        again = self.get("deployment", "web")
        self.assertEqual(again["metadata"]["resourceVersion"], meta["resourceVersion"])
        self.assertEqual(again["metadata"]["generation"], 1)
        # A changed spec is a new generation.
        self.apply_file(deployment("web", image="nginx:2"))
        self.assertEqual(self.get("deployment", "web")["metadata"]["generation"], 2)

    def test_conflict_between_managers_and_force(self):
        self.apply_file(deployment("web"))
        code, out, err = self.apply_file(deployment("web", replicas=3), "--field-manager=other")
        self.assertNotEqual(code, 0)
        self.assertIn('Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas', err)
        self.assertEqual(self.get("deployment", "web")["spec"]["replicas"], 2)
        code, out, err = self.apply_file(deployment("web", replicas=3), "--field-manager=other", "--force-conflicts")
        self.assertEqual(code, 0, err)
        dep = self.get("deployment", "web", "--show-managed-fields")
        self.assertEqual(dep["spec"]["replicas"], 3)
        owners = {m["manager"]: m["fieldsV1"] for m in dep["metadata"]["managedFields"]}
        self.assertNotIn("f:replicas", owners["kubectl"]["f:spec"])
        self.assertIn("f:replicas", owners["other"]["f:spec"])

    def test_field_its_sole_manager_drops_returns_to_default(self):
        self.apply_file(deployment("web", replicas=0))
        self.assertEqual(self.get("deployment", "web")["spec"]["replicas"], 0)
        self.apply_file(deployment("web", replicas=None))
        self.assertEqual(self.get("deployment", "web")["spec"]["replicas"], 1)

    def test_get_with_label_selectors(self):
        # Not "y": kubectl reads YAML 1.1, where a bare y is a boolean.
        for name, labels in [("a", {"app": "x", "tier": "front"}), ("b", {"app": "x"}), ("c", {"app": "w"})]:
            code, out, err = self.apply_file(configmap(name, labels))
            self.assertEqual(code, 0, err)
        cases = {"app=x": ["a", "b"], "app==x": ["a", "b"], "app!=x": ["c"], "tier": ["a"], "!tier": ["b", "c"],
                 "app in (x,w),tier notin (front)": ["b", "c"], "app=x,tier=front": ["a"], "app=z": []}
        for sel, want in cases.items():
            with self.subTest(selector=sel):
                items = self.get("configmaps", "-l", sel)["items"]
                self.assertEqual([i["metadata"]["name"] for i in items], want)
        code, out, err = self.kubectl("get", "configmaps", "-l", "bad key")
        self.assertNotEqual(code, 0)
        self.assertIn("unable to parse requirement", err)

    def test_delete_and_not_found(self):
        self.apply_file(deployment("web"))
        self.assertEqual(self.kubectl_ok("delete", "deployment", "web").strip(), 'deployment.apps "web" deleted')
        code, out, err = self.kubectl("get", "deployment", "web")
        self.assertNotEqual(code, 0)
        self.assertIn('Error from server (NotFound): deployments.apps "web" not found', err)

    def test_delete_propagation(self):
        _, owner = self.peer.apply(CM + "/owner", configmap("owner", {"role": "owner"}), "t")
        self.peer.apply(CM + "/child", configmap("child", {"role": "child"}, owner=owner), "t")
        self.assertEqual(self.kubectl_ok("delete", "configmap", "owner", "--cascade=orphan").strip(),
                         'configmap "owner" deleted')
        # The garbage collector strips the reference; an empty list is left out (omitempty).
        self.assertNotIn("ownerReferences", self.get("configmap", "child")["metadata"])
        _, owner = self.peer.apply(CM + "/owner2", configmap("owner2", {"role": "owner"}), "t")
        self.peer.apply(CM + "/child2", configmap("child2", {"role": "child"}, owner=owner), "t")
        self.kubectl_ok("delete", "configmap", "owner2", "--cascade=background")
        self.assertEqual([i["metadata"]["name"] for i in self.get("configmaps", "-l", "role=child")["items"]], ["child"])
        _, owner = self.peer.apply(CM + "/owner3", configmap("owner3", {"role": "owner"}), "t")
        self.peer.apply(CM + "/child3", configmap("child3", {"role": "child"}, owner=owner), "t")
        status, body = self.peer.request("DELETE", CM + "/owner3", {"kind": "DeleteOptions", "apiVersion": "v1",
                                                                     "propagationPolicy": "Foreground"})
        self.assertEqual(status, 200)
        self.assertEqual(body["metadata"]["finalizers"], ["foregroundDeletion"])
        self.assertIn("deletionTimestamp", body["metadata"])
        self.assertEqual([i["metadata"]["name"] for i in self.get("configmaps", "-l", "role=child")["items"]], ["child"])
        status, body = self.peer.request("DELETE", CM + "/child?propagationPolicy=Sideways")
        self.assertEqual((status, body["reason"]), (422, "Invalid"))

    def test_namespace_must_exist(self):
        obj = configmap("a", {}, ns="team")
        code, out, err = self.apply_file(obj)
        self.assertNotEqual(code, 0)
        self.assertIn('namespaces "team" not found', err)
        self.assertEqual(self.kubectl_ok("create", "namespace", "team").strip(), "namespace/team created")
        self.assertEqual(self.apply_file(obj)[0], 0)
        self.assertEqual([i["metadata"]["name"] for i in self.get("configmaps", "-n", "team")["items"]], ["a"])
        self.assertEqual(self.get("configmaps", "-n", "default")["items"], [])


class RawFidelity(KubeCase):
    """Shapes kubectl hides, compared with the apiserver's (k8s.io/apimachinery/pkg/api/errors)."""

    def test_not_found_status_object(self):
        status, body = self.peer.request("GET", DEPLOY + "/missing")
        self.assertEqual(status, 404)
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": 'deployments.apps "missing" not found', "reason": "NotFound",
                                "details": {"name": "missing", "group": "apps", "kind": "deployments"},
                                "code": 404})
        status, body = self.peer.request("GET", CM + "/missing")
        self.assertEqual(body["details"], {"name": "missing", "kind": "configmaps"})
        self.assertEqual(self.peer.request("GET", "/apis/example.com/v1/widgets")[0], 404)

    def test_apply_needs_field_manager_and_matching_name(self):
        status, body = self.peer.request("PATCH", DEPLOY + "/web", deployment("web"), "application/apply-patch+yaml")
        self.assertEqual((status, body["reason"]), (400, "BadRequest"))
        self.assertIn("fieldManager is required for apply requests", body["message"])
        status, body = self.peer.apply(DEPLOY + "/other", deployment("web"), "m")
        self.assertEqual(status, 400)
        self.assertIn("the name of the object (web) does not match the name on the URL (other)", body["message"])
        status, body = self.peer.request("PATCH", DEPLOY + "/web", {}, "application/strategic-merge-patch+json")
        self.assertEqual((status, body["reason"]), (415, "UnsupportedMediaType"))

    def test_apply_answers_201_then_200_and_conflict_shape(self):
        status, created = self.peer.apply(DEPLOY + "/web", deployment("web"), "platform")
        self.assertEqual(status, 201)
        status, body = self.peer.apply(DEPLOY + "/web", deployment("web", replicas=4, labels={"app": "x"}), "other")
        self.assertEqual(status, 409)
        self.assertEqual(body["reason"], "Conflict")
        self.assertEqual(body["message"], 'Apply failed with 2 conflicts: conflicts with "platform":\n'
                                          '- .metadata.labels.app\n- .spec.replicas')
        self.assertEqual(body["details"]["causes"], [
            {"reason": "FieldManagerConflict", "message": 'conflict with "platform"', "field": ".metadata.labels.app"},
            {"reason": "FieldManagerConflict", "message": 'conflict with "platform"', "field": ".spec.replicas"}])
        status, again = self.peer.apply(DEPLOY + "/web", deployment("web"), "platform")
        self.assertEqual(status, 200)
        self.assertEqual(again["metadata"]["uid"], created["metadata"]["uid"])

    def test_status_subresource_and_resource_version(self):
        status, dep = self.peer.apply(DEPLOY + "/web", deployment("web"), "platform")
        rv = dep["metadata"]["resourceVersion"]
        # Status in an apply to the main resource is dropped.
        with_status = dict(deployment("web"), status={"readyReplicas": 99})
        status, dep = self.peer.apply(DEPLOY + "/web", with_status, "platform")
        self.assertEqual(dep["status"]["readyReplicas"], 2)
        self.assertEqual(dep["metadata"]["resourceVersion"], rv)
        status, dep = self.peer.request("PATCH", DEPLOY + "/web/status", {"status": {"readyReplicas": 1}},
                                        "application/merge-patch+json")
        self.assertEqual((status, dep["status"]["readyReplicas"]), (200, 1))
        self.assertEqual(dep["spec"]["replicas"], 2)
        self.assertGreater(int(dep["metadata"]["resourceVersion"]), int(rv))
        stale = dict(dep, status={"readyReplicas": 2})
        stale["metadata"] = dict(dep["metadata"], resourceVersion=rv)
        status, body = self.peer.request("PUT", DEPLOY + "/web/status", stale)
        self.assertEqual((status, body["reason"]), (409, "Conflict"))
        self.assertEqual(body["message"], 'Operation cannot be fulfilled on deployments.apps "web": the object has '
                                          'been modified; please apply your changes to the latest version and try again')
        status, listed = self.peer.request("GET", DEPLOY)
        self.assertEqual(listed["kind"], "DeploymentList")
        self.assertEqual(listed["apiVersion"], "apps/v1")
        self.assertNotIn("kind", listed["items"][0])
        self.assertGreaterEqual(int(listed["metadata"]["resourceVersion"]), int(dep["metadata"]["resourceVersion"]))


class ManualDeployments(KubeCase):
    peer_args = ("--deployments", "manual")

    def test_status_only_through_the_subresource(self):
        status, dep = self.peer.apply(DEPLOY + "/web", deployment("web"), "platform")
        self.assertNotIn("readyReplicas", dep.get("status", {}))
        status, dep = self.peer.request("PATCH", DEPLOY + "/web/status",
                                        {"status": {"observedGeneration": 1, "readyReplicas": 2}},
                                        "application/merge-patch+json")
        self.assertEqual(self.get("deployment", "web")["status"]["readyReplicas"], 2)


class Token(KubeCase):
    peer_args = ("--token", "s3cret")

    def test_bearer_token_required(self):
        code, out, err = self.kubectl("get", "configmaps")
        self.assertNotEqual(code, 0)
        # What kubectl says for the apiserver's 401.
        self.assertIn("error: You must be logged in to the server", err)
        # client-go sends a bearer token over TLS only, so the right token is checked raw.
        self.assertEqual(self.peer.request("GET", CM, token="s3cret")[0], 200)
        status, body = self.peer.request("GET", CM, token="wrong")
        self.assertEqual((status, body["reason"], body["code"]), (401, "Unauthorized", 401))


def main():
    global PEER, KUBECTL
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", required=True)
    ap.add_argument("--kubectl", required=True)
    args, rest = ap.parse_known_args()
    PEER = args.peer
    KUBECTL = args.kubectl if os.access(args.kubectl, os.X_OK) else shutil.which("kubectl")
    if not KUBECTL:
        print(f"SKIP: kubectl is not installed (not at {args.kubectl} nor on PATH); run `make helm`")
        return SKIP
    result = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
