"""check_charts.py -- checks charts/instance and charts/platform with the real Helm, as operators
receive them: `helm dependency build` of the declared mindroom-common dependency, `helm package`
and a render of each package, lint --strict, rendered manifests, the
MINDROOM_/INSTANCE_TRUSTED_UPSTREAM_* variables, scaling objects, RBAC, render-time failures and
the values schemas. The charts are checked in a scratch copy, so the source tree stays as it is.

Usage: check_charts.py --helm PATH --charts DIR [--mindroom PATH]
Exits 77 (CTest's skip code) when helm is not installed; `make helm` installs it.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import manifests  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VALUES = os.path.join(HERE, "values")
SKIP = 77

# The variables the documented full trustedUpstreamAuth example must produce, written out
# independently of the chart (from the Environment and Strict JWT Mode settings).
SEED_TRUSTED_ENV = {
    "AUTH_ENABLED": "true",
    "USER_ID_HEADER": "X-MindRoom-User-Id",
    "EMAIL_HEADER": "X-MindRoom-User-Email",
    "MATRIX_USER_ID_HEADER": "X-MindRoom-Matrix-User-Id",
    "EMAIL_TO_MATRIX_USER_ID_TEMPLATE": "@{localpart}:example.org",
    "REQUIRE_JWT": "true",
    "JWT_HEADER": "X-Trusted-Jwt",
    "JWKS_URL": "https://gateway.example.com/.well-known/jwks.json",
    "JWT_AUDIENCE": "mindroom-dashboard",
    "JWT_ISSUER": "https://gateway.example.com",
    "JWT_EMAIL_CLAIM": "email",
    "JWT_USER_ID_CLAIM": "sub",
    "JWT_MATRIX_USER_ID_CLAIM": "matrix_user_id",
}

STRICT_JWT = {"requireJwt": "true", "jwtHeader": "X-Trusted-Jwt",
              "jwksUrl": "https://gateway.example.com/.well-known/jwks.json",
              "jwtAudience": "mindroom-dashboard", "jwtIssuer": "https://gateway.example.com"}

INSTANCE_SERVICES = ["gateway", "crypto", "authz", "agent", "upstream-auth"]
# The services a CPU HorizontalPodAutoscaler scales by default (not the gateway: each managed
# account's sync loop runs in one gateway).
AUTOSCALED = ["crypto", "authz", "agent", "upstream-auth"]

# The upstream-auth variables values/instance-upstream-auth-full.yaml must produce, written out
# from the service's settings (services/upstream-auth/README.md), not from the chart.
def secret_ref(name, key):
    return {"secretKeyRef": {"name": name, "key": key}}


UPSTREAM_AUTH_FULL_ENV = {
    "MINDROOM_PUBLIC_URL": "https://mindroom.example.org",
    "MINDROOM_OWNER_USER_ID": "@alice:example.org",
    "MINDROOM_API_KEY": secret_ref("alice-api-key", "api-key"),
    "MINDROOM_OAUTH_PROVIDERS": "github,google_drive",
    "MINDROOM_OAUTH_GITHUB_AUTHORIZE_URL": "https://github.com/login/oauth/authorize",
    "MINDROOM_OAUTH_GITHUB_TOKEN_URL": "https://github.com/login/oauth/access_token",
    "MINDROOM_OAUTH_GITHUB_CLIENT_ID": "Iv1.0123456789abcdef",
    "MINDROOM_OAUTH_GITHUB_CLIENT_SECRET": secret_ref("rel-mindroom-instance-secrets",
                                                      "MINDROOM_OAUTH_GITHUB_CLIENT_SECRET"),
    "MINDROOM_OAUTH_GOOGLE_DRIVE_AUTHORIZE_URL": "https://accounts.google.com/o/oauth2/v2/auth",
    "MINDROOM_OAUTH_GOOGLE_DRIVE_TOKEN_URL": "https://oauth2.googleapis.com/token",
    "MINDROOM_OAUTH_GOOGLE_DRIVE_CLIENT_ID": "123-abc.apps.googleusercontent.com",
    "MINDROOM_OAUTH_GOOGLE_DRIVE_REDIRECT_URL": "https://mindroom.example.org/api/oauth/google_drive/callback",
    "MINDROOM_OAUTH_GOOGLE_DRIVE_CLIENT_SECRET": secret_ref("google-oauth", "client-secret"),
}
UPSTREAM_AUTH_SETTINGS = ("MINDROOM_PUBLIC_URL", "MINDROOM_OWNER_USER_ID", "MINDROOM_API_KEY", "MINDROOM_OAUTH_")

# What nginx forward auth must carry (services/upstream-auth/README.md, Forward auth).
AUTH_RESPONSE_HEADERS = ("X-MindRoom-Auth-User-Id,X-MindRoom-Auth-Email,X-MindRoom-Auth-Matrix-User-Id,"
                         "X-MindRoom-Auth-Method")
GITHUB = {"name": "github", "authorizeUrl": "https://github.com/login/oauth/authorize",
          "tokenUrl": "https://github.com/login/oauth/access_token", "clientId": "Iv1.x"}

HELM = None
CHARTS = None
PROTO = None
MINDROOM = None
HELM_ENV = None


def helm(*args):
    """Runs helm; returns (exit code, stdout, stderr). Any warning about a symbolic link fails:
    the shared library chart is a dependency Helm packs, not a link in the chart."""
    r = subprocess.run([HELM, *args], capture_output=True, text=True, env=HELM_ENV, timeout=120)
    assert "symbolic link" not in r.stderr, f"helm {' '.join(args)}: {r.stderr}"
    return r.returncode, r.stdout, r.stderr


def prepare_charts(source, scratch):
    """Copies the charts to scratch and runs `helm dependency build` in each application chart,
    as an operator does before packaging; returns the copy's path."""
    charts = os.path.join(scratch, "charts")
    shutil.copytree(source, charts, symlinks=True)
    for chart in ("instance", "platform"):
        code, out, err = helm("dependency", "build", os.path.join(charts, chart))
        if code != 0:
            raise SystemExit(f"helm dependency build charts/{chart} failed:\n{out}\n{err}")
    return charts


def nest(path, value):
    """{"a.b": v} style path -> nested dict."""
    out = value
    for key in reversed(path.split(".")):
        out = {key: out}
    return out


class ChartCase(unittest.TestCase):
    """Helpers shared by the instance and platform checks."""
    chart = None

    def chart_dir(self):
        return os.path.join(CHARTS, self.chart)

    def values_file(self, values):
        f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, dir=HELM_ENV["HELM_CACHE_HOME"])
        yaml.safe_dump(values, f)
        f.close()
        return f.name

    def template_args(self, values, files, release="rel"):
        args = ["template", release, self.chart_dir(), "--namespace", "ns"]
        for name in files:
            args += ["-f", os.path.join(VALUES, name)]
        if values is not None:
            args += ["-f", self.values_file(values)]
        return args

    def render(self, values=None, files=(), external_config_maps=(), release="rel", external_services=()):
        """Renders the chart, checks every object structurally, returns the parsed objects."""
        code, out, err = helm(*self.template_args(values, files, release))
        self.assertEqual(code, 0, f"helm template failed: {err}")
        docs = [d for d in yaml.safe_load_all(out) if d]
        problems = manifests.validate(docs, external_config_maps, external_services)
        self.assertEqual(problems, [], "rendered manifests are malformed")
        return docs

    def render_fails(self, values, message):
        """Rendering must fail, and Helm's error must carry message."""
        code, out, err = helm(*self.template_args(values, ()))
        self.assertNotEqual(code, 0, f"rendering succeeded, expected: {message}\n{out}")
        self.assertIn(message, err)
        return err

    def lint(self, files=()):
        args = ["lint", "--strict", self.chart_dir()]
        for name in files:
            args += ["-f", os.path.join(VALUES, name)]
        code, out, err = helm(*args)
        self.assertEqual(code, 0, f"helm lint --strict failed:\n{out}\n{err}")
        self.assertIn("1 chart(s) linted, 0 chart(s) failed", out)
        self.assertNotIn("[WARNING]", out)
        self.assertNotIn("[ERROR]", out)

    @staticmethod
    def objects(docs, kind):
        return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}

    @staticmethod
    def container(deployment):
        containers = deployment["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1, containers
        return containers[0]

    @classmethod
    def env(cls, deployment):
        """name -> value, or -> the valueFrom map of a variable read from elsewhere."""
        return {e["name"]: e["value"] if "value" in e else e["valueFrom"]
                for e in cls.container(deployment).get("env", [])}

    @staticmethod
    def with_prefix(env, prefix):
        return {k[len(prefix):]: v for k, v in env.items() if k.startswith(prefix)}

    def check_workload(self, dep, component, binary_args, service_account=None, automount=False):
        """The parts every mindroom-<service> Deployment shares."""
        c = self.container(dep)
        pod = dep["spec"]["template"]["spec"]
        self.assertEqual(c["name"], component)
        self.assertEqual(c["image"], f"mindroom-{component}:0.1.0")
        self.assertEqual(c["command"], [f"mindroom-{component}"])
        self.assertEqual(c["args"], ["--listen", "0.0.0.0:8080", *binary_args])
        self.assertEqual(c["ports"], [{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
        self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "http"})
        self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "http"})
        self.assertEqual(c["envFrom"], [{"secretRef": {"name": f"rel-mindroom-{self.chart}-secrets",
                                                       "optional": False}}])
        self.assertEqual(c["securityContext"], {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                                "readOnlyRootFilesystem": True,
                                                "capabilities": {"drop": ["ALL"]}})
        self.assertEqual(pod["securityContext"]["runAsNonRoot"], True)
        self.assertEqual(pod["securityContext"]["runAsUser"], 10001)
        self.assertEqual(pod["automountServiceAccountToken"], automount)
        self.assertEqual(pod["serviceAccountName"], service_account or f"rel-mindroom-{self.chart}")
        self.assertEqual(pod["topologySpreadConstraints"], [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dep["spec"]["selector"]["matchLabels"]}}])
        self.assertIn({"name": "tmp", "mountPath": "/tmp"}, c["volumeMounts"])
        self.assertIn({"name": "data", "mountPath": "/var/lib/mindroom"}, c["volumeMounts"])
        self.assertIn({"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}, pod["volumes"])
        env = self.env(dep)
        self.assertEqual([env.get(k) for k in ("MINDROOM_STORAGE_PATH", "LOG_LEVEL", "LOG_FORMAT")],
                         ["/var/lib/mindroom", "info", "json"])
        self.assertEqual(dep["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"], component)
        self.assertIn("requests", c["resources"])
        self.assertIn("memory", c["resources"]["limits"])

    def check_trusted_failures(self, path, values_at):
        """The render-time failures of one trustedUpstreamAuth block at path; values_at(map)
        nests a trustedUpstreamAuth map where the chart reads it."""
        self.render_fails(values_at({"emailToMatrixUserIdTemplate": "@{localpart}:example.org"}),
                          f"{path}.emailToMatrixUserIdTemplate is set without {path}.emailHeader: "
                          "the Matrix localpart is derived from the trusted email header")
        for bad in ["@alice:example.org", "@{localpart}{localpart}:example.org", "@{LOCALPART}:example.org"]:
            self.render_fails(values_at({"emailHeader": "X-Email", "emailToMatrixUserIdTemplate": bad}),
                              f"{path}.emailToMatrixUserIdTemplate must contain exactly one "
                              f"{{localpart}} placeholder, got \"{bad}\"")
        self.render_fails(values_at({"enabled": "true"}),
                          f"{path}.userIdHeader is required when {path}.enabled is true")
        self.render_fails(values_at({"enabled": True}),
                          f"{path}.userIdHeader is required when {path}.enabled is true")
        for missing in ["jwtHeader", "jwksUrl", "jwtAudience", "jwtIssuer"]:
            strict = dict(STRICT_JWT)
            del strict[missing]
            self.render_fails(values_at(strict), f"{path}.requireJwt is true, so {path}.{missing} must be set too")
        self.render_fails(values_at({"requireJwt": True}),
                          f"{path}.requireJwt is true, so {path}.jwtHeader, {path}.jwksUrl, "
                          f"{path}.jwtAudience, {path}.jwtIssuer must be set too")
        # The same settings with requireJwt off, and a complete strict set, render.
        off = dict(STRICT_JWT, requireJwt="false")
        del off["jwksUrl"]
        self.render(values_at(off))
        self.render(values_at(dict(STRICT_JWT)))

    def check_schema_rejects(self, values, message):
        err = self.render_fails(values, "values don't meet the specifications of the schema")
        self.assertIn(message, err)


class InstanceChart(ChartCase):
    chart = "instance"

    def upstream_auth(self, docs):
        return self.objects(docs, "Deployment")["rel-mindroom-instance-upstream-auth"]

    @staticmethod
    def upstream_auth_settings(env):
        return {k: v for k, v in env.items() if k.startswith(UPSTREAM_AUTH_SETTINGS)}

    def ingress(self, values=None, files=(), external_services=("mindroom-dashboard",)):
        docs = self.render(values, files, external_services=external_services)
        ingresses = self.objects(docs, "Ingress")
        self.assertEqual(list(ingresses), ["rel-mindroom-instance"])
        return ingresses["rel-mindroom-instance"]

    @staticmethod
    def routes(ing):
        """[(host or None, path, pathType, service, port)] of an Ingress."""
        return [(rule.get("host"), p["path"], p["pathType"], p["backend"]["service"]["name"],
                 p["backend"]["service"]["port"]["number"])
                for rule in ing["spec"]["rules"] for p in rule["http"]["paths"]]

    def test_lint_strict_upstream_auth_and_ingress_example(self):
        self.lint(["instance-upstream-auth-full.yaml"])

    def test_default_has_no_upstream_auth_settings(self):
        for name, dep in self.objects(self.render(), "Deployment").items():
            self.assertEqual(self.upstream_auth_settings(self.env(dep)), {}, name)

    def test_upstream_auth_settings_render_as_the_service_variables(self):
        deps = self.objects(self.render(files=["instance-upstream-auth-full.yaml"],
                                        external_services=["mindroom-dashboard"]), "Deployment")
        env = self.env(deps["rel-mindroom-instance-upstream-auth"])
        self.assertEqual(self.upstream_auth_settings(env), UPSTREAM_AUTH_FULL_ENV)
        for name, dep in deps.items():
            if not name.endswith("-upstream-auth"):
                self.assertEqual(self.upstream_auth_settings(self.env(dep)), {}, name)

    def test_upstream_auth_gets_no_config_file(self):
        # mindroom-upstream-auth takes its settings from the environment only and exits 2 on
        # --config; the other services read config.yaml from the ConfigMap.
        for name, dep in self.objects(self.render(), "Deployment").items():
            pod = dep["spec"]["template"]["spec"]
            args = pod["containers"][0]["args"]
            volumes = [v["name"] for v in pod["volumes"]]
            if name.endswith("-upstream-auth"):
                self.assertNotIn("--config", args)
                self.assertNotIn("config", volumes)
            else:
                self.assertEqual(args[args.index("--config") + 1], "/etc/mindroom/config.yaml", name)
                self.assertIn("config", volumes)

    def test_client_secret_defaults_follow_the_instance_secret(self):
        values = {"secrets": {"existingSecret": "alice-secrets"}, "publicUrl": "https://mr.example.org/",
                  "oauth": {"providers": [GITHUB, dict(GITHUB, name="gh2", clientSecret={"key": "gh2"})]}}
        env = self.env(self.upstream_auth(self.render(values)))
        self.assertEqual(env["MINDROOM_OAUTH_GITHUB_CLIENT_SECRET"],
                         secret_ref("alice-secrets", "MINDROOM_OAUTH_GITHUB_CLIENT_SECRET"))
        self.assertEqual(env["MINDROOM_OAUTH_GH2_CLIENT_SECRET"], secret_ref("alice-secrets", "gh2"))
        self.assertEqual(env["MINDROOM_OAUTH_PROVIDERS"], "github,gh2")
        self.assertNotIn("MINDROOM_OAUTH_GITHUB_REDIRECT_URL", env)
        self.assertNotIn("MINDROOM_API_KEY", env)

    def test_oauth_render_failures(self):
        self.render_fails({"publicUrl": "https://mr.example.org", "oauth": {"providers": [GITHUB, GITHUB]}},
                          'oauth.providers[1].name "github" is listed twice')
        self.render_fails({"oauth": {"providers": [dict(GITHUB, redirectUrl="https://x.example.org/cb"),
                                                   dict(GITHUB, name="gitlab")]}},
                          "oauth.providers[1] (gitlab) has no redirectUrl, so publicUrl must be set: "
                          "the callback is <publicUrl>/api/oauth/gitlab/callback")
        self.render({"oauth": {"providers": [dict(GITHUB, redirectUrl="https://x.example.org/cb")]}})

    def test_schema_keeps_secrets_out_of_values(self):
        self.check_schema_rejects({"oauth": {"providers": [dict(GITHUB, clientSecret="hunter2")]}},
                                  "oauth.providers.0.clientSecret: Invalid type. Expected: object")
        self.check_schema_rejects({"oauth": {"providers": [dict(GITHUB, clientSecret={"value": "hunter2"})]}},
                                  "Additional property value is not allowed")
        self.check_schema_rejects({"apiKey": "hunter2"}, "apiKey: Invalid type. Expected: object")

    def test_schema_rejects_bad_upstream_auth_values(self):
        self.check_schema_rejects({"oauth": {"providers": [dict(GITHUB, name="GitHub")]}},
                                  "oauth.providers.0.name: Does not match pattern")
        self.check_schema_rejects({"oauth": {"providers": [dict(GITHUB, tokenUrl="http://github.com/token")]}},
                                  "oauth.providers.0.tokenUrl: Does not match pattern")
        no_id = dict(GITHUB)
        del no_id["clientId"]
        self.check_schema_rejects({"oauth": {"providers": [no_id]}}, "clientId is required")
        self.check_schema_rejects({"ownerUserId": "alice"}, "ownerUserId: Does not match pattern")
        self.check_schema_rejects({"publicUrl": "mindroom.example.org"}, "publicUrl: Does not match pattern")
        self.check_schema_rejects({"ingress": {"enabled": "yes"}}, "ingress.enabled: Invalid type")

    def test_ingress_forward_auth_to_upstream_auth(self):
        ing = self.ingress(files=["instance-upstream-auth-full.yaml"])
        self.assertEqual(ing["metadata"]["annotations"], {
            "nginx.ingress.kubernetes.io/auth-url":
                "http://rel-mindroom-instance-upstream-auth.ns.svc.cluster.local:80/auth/verify",
            "nginx.ingress.kubernetes.io/auth-response-headers": AUTH_RESPONSE_HEADERS,
            "nginx.ingress.kubernetes.io/proxy-body-size": "8m"})
        self.assertEqual(ing["spec"]["ingressClassName"], "nginx")
        self.assertEqual(ing["spec"]["tls"], [{"secretName": "mindroom-tls", "hosts": ["mindroom.example.org"]}])
        host, ua = "mindroom.example.org", "rel-mindroom-instance-upstream-auth"
        self.assertEqual(self.routes(ing), [(host, "/api/oauth/", "Prefix", ua, 80),
                                            (host, "/api/auth/", "Prefix", ua, 80),
                                            (host, "/", "Prefix", "mindroom-dashboard", 8765)])

    def test_ingress_follows_namespace_port_and_cluster_domain(self):
        ing = self.ingress({"ingress": {"enabled": True, "clusterDomain": "k8s.internal", "className": "",
                                        "annotations": {"nginx.ingress.kubernetes.io/auth-url": "http://evil/"}},
                            "services": {"upstreamAuth": {"service": {"port": 8081}}}})
        self.assertEqual(ing["metadata"]["annotations"], {
            "nginx.ingress.kubernetes.io/auth-url":
                "http://rel-mindroom-instance-upstream-auth.ns.svc.k8s.internal:8081/auth/verify",
            "nginx.ingress.kubernetes.io/auth-response-headers": AUTH_RESPONSE_HEADERS})
        self.assertNotIn("ingressClassName", ing["spec"])
        self.assertNotIn("tls", ing["spec"])
        ua = "rel-mindroom-instance-upstream-auth"
        self.assertEqual(self.routes(ing), [(None, "/api/oauth/", "Prefix", ua, 8081),
                                            (None, "/api/auth/", "Prefix", ua, 8081)])

    def test_ingress_needs_the_upstream_auth_service(self):
        message = ("ingress.enabled needs services.upstreamAuth.enabled and "
                   "services.upstreamAuth.service.enabled")
        self.render_fails({"ingress": {"enabled": True}, "services": {"upstreamAuth": {"enabled": False}}}, message)
        self.render_fails({"ingress": {"enabled": True},
                           "services": {"upstreamAuth": {"service": {"enabled": False}}}}, message)

    def test_lint_strict_default_values(self):
        self.lint()

    def test_lint_strict_full_trusted_upstream_example(self):
        self.lint(["instance-trusted-full.yaml"])

    def test_default_render_has_exactly_the_instance_objects(self):
        docs = self.render()
        got = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
        want = sorted([("ServiceAccount", "rel-mindroom-instance"),
                       ("ConfigMap", "rel-mindroom-instance-config"),
                       ("Service", "rel-mindroom-instance-upstream-auth")] +
                      [("Deployment", f"rel-mindroom-instance-{s}") for s in INSTANCE_SERVICES] +
                      [("PodDisruptionBudget", f"rel-mindroom-instance-{s}") for s in INSTANCE_SERVICES] +
                      [("HorizontalPodAutoscaler", f"rel-mindroom-instance-{s}") for s in AUTOSCALED])
        self.assertEqual(got, want)
        self.assertNotIn("Secret", {d["kind"] for d in docs})

    def test_hpa_per_autoscaled_service_owns_the_replica_count(self):
        docs = self.render({"services": {"agent": {"replicaCount": 2, "autoscaling": {
            "maxReplicas": 6, "targetCPUUtilizationPercentage": 60}}}})
        hpas, deps = self.objects(docs, "HorizontalPodAutoscaler"), self.objects(docs, "Deployment")
        for s in INSTANCE_SERVICES:
            name = f"rel-mindroom-instance-{s}"
            with self.subTest(service=s):
                if s not in AUTOSCALED:
                    self.assertNotIn(name, hpas)
                    self.assertEqual(deps[name]["spec"]["replicas"], 1)
                    continue
                # An applied count would undo the autoscaler's on every upgrade.
                self.assertNotIn("replicas", deps[name]["spec"])
                hpa = hpas[name]["spec"]
                self.assertEqual(hpa["scaleTargetRef"], {"apiVersion": "apps/v1", "kind": "Deployment", "name": name})
                self.assertEqual(hpa["metrics"], [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization",
                                              "averageUtilization": 60 if s == "agent" else 80}}}])
                self.assertEqual((hpa["minReplicas"], hpa["maxReplicas"]), (2, 6) if s == "agent" else (1, 4))
                # CPU utilisation is measured against the request: every container has one.
                self.assertIn("cpu", self.container(deps[name])["resources"]["requests"])

    def test_keda_scaled_object_on_consumer_lag_replaces_the_hpa(self):
        with open(os.path.join(PROTO, "topics.yaml")) as f:
            topics = yaml.safe_load(f)["topics"]
        # The bus URL's options (?fetch_wait_ms=N) are MindRoom's, not a broker's.
        values = {"bus": {"url": "kafka://kafka-0:9092,kafka-1:9092?fetch_wait_ms=500"},
                  "services": {k: {"keda": {"enabled": True, "maxReplicas": 8, "lagThreshold": 5}}
                               for k in ("gateway", "crypto", "authz", "agent")}}
        docs = self.render(values)
        scaled = self.objects(docs, "ScaledObject")
        self.assertEqual(sorted(self.objects(docs, "HorizontalPodAutoscaler")), ["rel-mindroom-instance-upstream-auth"])
        for s in ("gateway", "crypto", "authz", "agent"):
            with self.subTest(service=s):
                name = f"rel-mindroom-instance-{s}"
                spec = scaled[name]["spec"]
                self.assertEqual(scaled[name]["apiVersion"], "keda.sh/v1alpha1")
                self.assertEqual(spec["scaleTargetRef"], {"name": name})
                self.assertEqual((spec["minReplicaCount"], spec["maxReplicaCount"]), (1, 8))
                self.assertNotIn("replicas", self.objects(docs, "Deployment")[name]["spec"])
                # One trigger per topic the service's consumer group reads, as proto/topics.yaml says.
                want = sorted(t for t, d in topics.items() if s in d["consumers"])
                got = sorted(t["metadata"]["topic"] for t in spec["triggers"])
                self.assertEqual(got, want)
                for t in spec["triggers"]:
                    self.assertEqual(t["type"], "kafka")
                    self.assertEqual({k: v for k, v in t["metadata"].items() if k != "topic"},
                                     {"bootstrapServers": "kafka-0:9092,kafka-1:9092", "consumerGroup": s,
                                      "lagThreshold": "5"})
        explicit = self.render({"keda": {"bootstrapServers": "b:9092"},
                                "services": {"agent": {"keda": {"enabled": True}}}})
        trig = self.objects(explicit, "ScaledObject")["rel-mindroom-instance-agent"]["spec"]["triggers"]
        self.assertEqual({t["metadata"]["bootstrapServers"] for t in trig}, {"b:9092"})

    def test_network_policy_isolates_the_instance(self):
        self.assertEqual(self.objects(self.render(), "NetworkPolicy"), {})
        controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
        homeserver = {"ipBlock": {"cidr": "10.1.2.3/32"}}
        docs = self.render({"networkPolicy": {"enabled": True, "ingressFrom": [controller],
                                              "egressTo": [homeserver]}})
        spec = self.objects(docs, "NetworkPolicy")["rel-mindroom-instance"]["spec"]
        mine = {"app.kubernetes.io/name": "mindroom-instance", "app.kubernetes.io/instance": "rel"}
        self.assertEqual(spec["podSelector"], {"matchLabels": mine})
        for dep in self.objects(docs, "Deployment").values():
            labels = dep["spec"]["template"]["metadata"]["labels"]
            self.assertEqual({k: labels[k] for k in mine}, mine)
        self.assertEqual(spec["policyTypes"], ["Ingress", "Egress"])
        self.assertEqual(spec["ingress"], [{"from": [{"podSelector": {"matchLabels": mine}}, controller]}])
        egress = spec["egress"]
        self.assertEqual(egress[0], {"to": [{"podSelector": {"matchLabels": mine}}, homeserver]})
        self.assertEqual(egress[1]["ports"], [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}])
        self.assertEqual(egress[2]["to"][0]["ipBlock"]["cidr"], "0.0.0.0/0")
        self.assertIn("10.0.0.0/8", egress[2]["to"][0]["ipBlock"]["except"])
        closed = self.render({"networkPolicy": {"enabled": True, "allowInternet": False}})
        self.assertEqual(len(self.objects(closed, "NetworkPolicy")["rel-mindroom-instance"]["spec"]["egress"]), 2)

    def test_keda_is_off_by_default(self):
        self.assertEqual(self.objects(self.render(), "ScaledObject"), {})

    def test_scaling_render_failures(self):
        self.render_fails({"services": {"agent": {"keda": {"enabled": True}}}},
                          "keda.bootstrapServers is empty and bus.url is not a kafka:// URL")
        self.render_fails({"services": {"agent": {"replicaCount": 5}}},
                          "services.agent.replicaCount (5) is above services.agent.autoscaling.maxReplicas (4)")
        self.render_fails({"bus": {"url": "kafka://k:9092"},
                           "services": {"upstreamAuth": {"keda": {"enabled": True, "maxReplicas": 2, "lagThreshold": 1}}}},
                          "services.upstreamAuth.keda.enabled: upstream-auth reads no Kafka topic")
        self.check_schema_rejects({"services": {"agent": {"autoscaling": {"targetCPUUtilizationPercentage": 0}}}},
                                  "services.agent.autoscaling.targetCPUUtilizationPercentage")
        self.check_schema_rejects({"services": {"agent": {"pdb": {"maxUnavailable": 0}}}},
                                  "services.agent.pdb.maxUnavailable")
        self.check_schema_rejects({"topologySpread": {"whenUnsatisfiable": "Never"}},
                                  "topologySpread.whenUnsatisfiable must be one of the following")

    def test_pdb_per_service_lets_one_replica_go_at_a_time(self):
        docs = self.render()
        pdbs, deps = self.objects(docs, "PodDisruptionBudget"), self.objects(docs, "Deployment")
        self.assertEqual(sorted(pdbs), sorted(deps))
        for name, pdb in pdbs.items():
            self.assertEqual(pdb["apiVersion"], "policy/v1")
            self.assertEqual(pdb["spec"]["maxUnavailable"], 1)
            self.assertEqual(pdb["spec"]["selector"]["matchLabels"], deps[name]["spec"]["selector"]["matchLabels"])
        off = self.render({"services": {"gateway": {"pdb": {"enabled": False}}}})
        self.assertNotIn("rel-mindroom-instance-gateway", self.objects(off, "PodDisruptionBudget"))

    def test_suspended_scales_every_service_to_zero_and_keeps_the_rest(self):
        running = self.render()
        docs = self.render({"suspended": True})
        for dep in self.objects(docs, "Deployment").values():
            self.assertEqual(dep["spec"]["replicas"], 0, dep["metadata"]["name"])
        kinds = {d["kind"] for d in docs}
        for gone in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "ScaledObject"):
            self.assertNotIn(gone, kinds)
        kept = lambda ds: sorted((d["kind"], d["metadata"]["name"]) for d in ds
                                 if d["kind"] in ("ConfigMap", "Service", "ServiceAccount", "Deployment"))
        self.assertEqual(kept(docs), kept(running))

    def test_each_service_runs_its_binary_with_probes_and_hardening(self):
        deps = self.objects(self.render(), "Deployment")
        for s in INSTANCE_SERVICES:
            with self.subTest(service=s):
                dep = deps[f"rel-mindroom-instance-{s}"]
                if s == "upstream-auth":
                    # Its settings are its environment (test_upstream_auth_gets_no_config_file).
                    self.check_workload(dep, s, [])
                    continue
                self.check_workload(dep, s, ["--config", "/etc/mindroom/config.yaml"])
                c = self.container(dep)
                self.assertIn({"name": "config", "mountPath": "/etc/mindroom", "readOnly": True}, c["volumeMounts"])
                vols = dep["spec"]["template"]["spec"]["volumes"]
                self.assertIn({"name": "config", "configMap": {"name": "rel-mindroom-instance-config"}}, vols)

    def test_longest_release_name_gives_distinct_valid_names(self):
        release = "r" * 53  # Helm's limit
        deps = self.objects(self.render(release=release), "Deployment")
        self.assertEqual(len(deps), 5)
        for s in INSTANCE_SERVICES:
            self.assertEqual(len([n for n in deps if n.endswith("-" + s) and len(n) <= 63]), 1, s)

    def test_upstream_auth_service_targets_its_pods(self):
        docs = self.render()
        svc = self.objects(docs, "Service")["rel-mindroom-instance-upstream-auth"]
        self.assertEqual(svc["spec"]["type"], "ClusterIP")
        self.assertEqual(svc["spec"]["ports"], [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}])
        pod_labels = self.upstream_auth(docs)["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(svc["spec"]["selector"], {k: pod_labels[k] for k in svc["spec"]["selector"]})
        self.assertEqual(svc["spec"]["selector"]["app.kubernetes.io/component"], "upstream-auth")

    def test_configmap_holds_config_values_as_config_yaml(self):
        with open(os.path.join(self.chart_dir(), "values.yaml")) as f:
            defaults = yaml.safe_load(f)["config"]
        cm = self.objects(self.render(), "ConfigMap")["rel-mindroom-instance-config"]
        self.assertEqual(list(cm["data"]), ["config.yaml"])
        self.assertEqual(yaml.safe_load(cm["data"]["config.yaml"]), defaults)
        custom = {"models": {"m": {"provider": "ollama", "id": "qwen3:8b"}},
                  "agents": {"a": {"display_name": "A", "model": "m", "rooms": ["r"]}}}
        cm = self.objects(self.render({"config": custom}), "ConfigMap")["rel-mindroom-instance-config"]
        # Helm merges a values file into the defaults, so the custom keys sit beside them.
        got = yaml.safe_load(cm["data"]["config.yaml"])
        self.assertEqual(got["models"]["m"], {"provider": "ollama", "id": "qwen3:8b"})
        self.assertEqual(got["agents"]["a"], {"display_name": "A", "model": "m", "rooms": ["r"]})

    def test_default_config_passes_mindroom_config_validate(self):
        if not MINDROOM:
            self.skipTest("no mindroom binary given (--mindroom)")
        cm = self.objects(self.render(), "ConfigMap")["rel-mindroom-instance-config"]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "config.yaml")
            with open(path, "w") as f:
                f.write(cm["data"]["config.yaml"])
            r = subprocess.run([MINDROOM, "config", "validate", path], capture_output=True, text=True,
                               timeout=60, env={"PATH": os.environ.get("PATH", ""), "HOME": d})
            self.assertEqual(r.returncode, 0, f"mindroom config validate:\n{r.stdout}\n{r.stderr}")
            self.assertIn("valid", r.stdout)

    def test_config_change_changes_pod_checksum(self):
        def checksums(values):
            deps = self.objects(self.render(values), "Deployment")
            return {d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                    for name, d in deps.items() if not name.endswith("-upstream-auth")}
        a = checksums(None)
        b = checksums({"config": {"router": {"model": "other"}}})
        self.assertEqual(len(a), 1)
        self.assertEqual(len(b), 1)
        self.assertNotEqual(a, b)

    def test_existing_configmap_replaces_the_rendered_one(self):
        docs = self.render({"existingConfigMap": "my-config"}, external_config_maps=["my-config"])
        self.assertEqual(self.objects(docs, "ConfigMap"), {})
        for name, dep in self.objects(docs, "Deployment").items():
            vols = dep["spec"]["template"]["spec"]["volumes"]
            if not name.endswith("-upstream-auth"):
                self.assertIn({"name": "config", "configMap": {"name": "my-config"}}, vols)
            self.assertNotIn("checksum/config", dep["spec"]["template"]["metadata"].get("annotations", {}))

    def test_default_trusted_upstream_is_off_and_only_on_upstream_auth(self):
        deps = self.objects(self.render(), "Deployment")
        for name, dep in deps.items():
            trusted = self.with_prefix(self.env(dep), "MINDROOM_TRUSTED_UPSTREAM_")
            if name.endswith("-upstream-auth"):
                self.assertEqual(trusted, {"AUTH_ENABLED": "false", "REQUIRE_JWT": "false"})
            else:
                self.assertEqual(trusted, {}, name)

    def test_full_trusted_upstream_example_renders_the_documented_variables(self):
        docs = self.render(files=["instance-trusted-full.yaml"])
        env = self.env(self.upstream_auth(docs))
        self.assertEqual(self.with_prefix(env, "MINDROOM_TRUSTED_UPSTREAM_"), SEED_TRUSTED_ENV)
        self.assertEqual(self.with_prefix(env, "INSTANCE_TRUSTED_UPSTREAM_"), {})

    def test_trusted_upstream_booleans_and_header_only_mode(self):
        values = {"trustedUpstreamAuth": {"enabled": True, "userIdHeader": "X-User",
                                          "emailHeader": "X-Email",
                                          "emailToMatrixUserIdTemplate": "@{localpart}:example.org"}}
        env = self.env(self.upstream_auth(self.render(values)))
        self.assertEqual(self.with_prefix(env, "MINDROOM_TRUSTED_UPSTREAM_"),
                         {"AUTH_ENABLED": "true", "REQUIRE_JWT": "false", "USER_ID_HEADER": "X-User",
                          "EMAIL_HEADER": "X-Email",
                          "EMAIL_TO_MATRIX_USER_ID_TEMPLATE": "@{localpart}:example.org"})

    def test_trusted_upstream_render_failures(self):
        self.check_trusted_failures("trustedUpstreamAuth", lambda t: {"trustedUpstreamAuth": t})

    def test_trusted_upstream_checked_even_with_upstream_auth_disabled(self):
        self.render_fails({"services": {"upstreamAuth": {"enabled": False}},
                           "trustedUpstreamAuth": {"requireJwt": "true"}},
                          "trustedUpstreamAuth.requireJwt is true, so trustedUpstreamAuth.jwtHeader")

    def test_bus_and_store_urls_reach_every_service(self):
        for dep in self.objects(self.render(), "Deployment").values():
            self.assertNotIn("MINDROOM_BUS_URL", self.env(dep))
            self.assertNotIn("MINDROOM_STORE_URL", self.env(dep))
        values = {"bus": {"url": "kafka://kafka-0:9092,kafka-1:9092"}, "store": {"url": "redis://redis:6379/0"},
                  "matrix": {"homeserver": "https://matrix.example.org", "serverName": "example.org"}}
        deps = self.objects(self.render(values), "Deployment")
        self.assertEqual(len(deps), 5)
        for dep in deps.values():
            env = self.env(dep)
            self.assertEqual(env["MINDROOM_BUS_URL"], "kafka://kafka-0:9092,kafka-1:9092")
            self.assertEqual(env["MINDROOM_STORE_URL"], "redis://redis:6379/0")
            self.assertEqual(env["MATRIX_HOMESERVER"], "https://matrix.example.org")
            self.assertEqual(env["MATRIX_SERVER_NAME"], "example.org")

    def test_tenant_prefix_reaches_the_bus_and_store_urls_and_keda(self):
        """Instances sharing one Redis or Kafka keep apart by tenant.prefix (the platform sets the
        instance's ID): it becomes the URLs' ?prefix= (after options they have), and KEDA reads
        the lag of the topics and groups the bus names <prefix>.<name>."""
        values = {"tenant": {"prefix": "mr-0123abcd"}, "bus": {"url": "kafka://k-0:9092?fetch_wait_ms=500"},
                  "store": {"url": "redis://redis:6379/2"}, "services": {"agent": {"keda": {"enabled": True}}}}
        docs = self.render(values)
        for dep in self.objects(docs, "Deployment").values():
            env = self.env(dep)
            self.assertEqual(env["MINDROOM_BUS_URL"], "kafka://k-0:9092?fetch_wait_ms=500&prefix=mr-0123abcd")
            self.assertEqual(env["MINDROOM_STORE_URL"], "redis://redis:6379/2?prefix=mr-0123abcd")
        trig = self.objects(docs, "ScaledObject")["rel-mindroom-instance-agent"]["spec"]["triggers"]
        self.assertEqual(sorted((t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in trig),
                         [("mr-0123abcd.agent", "mr-0123abcd.agent.turns"),
                          ("mr-0123abcd.agent", "mr-0123abcd.matrix.send_failed")])
        # URLs kept in the Secret (empty here) carry their own prefix: nothing rendered.
        for dep in self.objects(self.render({"tenant": {"prefix": "mr-1"}}), "Deployment").values():
            self.assertNotIn("MINDROOM_BUS_URL", self.env(dep))
        self.render_fails({"tenant": {"prefix": "mr-1"}, "store": {"url": "redis://r/0?prefix=x"}},
                          "store.url has a ?prefix= and tenant.prefix is set: give the prefix once, in tenant.prefix")
        self.check_schema_rejects({"tenant": {"prefix": "mr.1"}}, "tenant.prefix: Does not match pattern")

    def test_secret_checksum_rolls_every_pod_and_changes_nothing_else(self):
        """secrets.checksum (the platform's digest of the Secret it writes) goes into every pod
        template, so a changed Secret restarts the pods; the rest of each object stays as it was."""
        self.assertFalse(any("checksum/secret" in d["spec"]["template"]["metadata"].get("annotations", {})
                             for d in self.objects(self.render(), "Deployment").values()))
        one, two = ("a" * 64, "b" * 64)
        a = self.render({"secrets": {"checksum": one}})
        b = self.render({"secrets": {"checksum": two}})
        self.assertEqual(len(a), len(b))
        for x, y in zip(a, b):
            if x["kind"] == "Deployment":
                ann = x["spec"]["template"]["metadata"]["annotations"]
                self.assertEqual((ann.pop("checksum/secret"),
                                  y["spec"]["template"]["metadata"]["annotations"].pop("checksum/secret")), (one, two))
            self.assertEqual(x, y)
        self.check_schema_rejects({"secrets": {"checksum": "not-a-digest"}}, "secrets.checksum: Does not match pattern")

    def test_images_secret_and_extra_env_overrides(self):
        values = {"image": {"registry": "registry.example.org/mr/", "tag": "1.2.3"},
                  "secrets": {"existingSecret": "alice-secrets"},
                  "extraEnv": [{"name": "MINDROOM_LOG_LEVEL", "value": "debug"}],
                  "services": {"agent": {"image": {"repository": "custom/agent", "tag": "dev"},
                                         "replicaCount": 3,
                                         "extraEnv": [{"name": "OPENAI_BASE_URL", "value": "http://stub:8000"}]}}}
        deps = self.objects(self.render(values), "Deployment")
        self.assertEqual(self.container(deps["rel-mindroom-instance-gateway"])["image"],
                         "registry.example.org/mr/mindroom-gateway:1.2.3")
        agent = deps["rel-mindroom-instance-agent"]
        self.assertEqual(self.container(agent)["image"], "custom/agent:dev")
        self.assertEqual(self.objects(self.render(values), "HorizontalPodAutoscaler")
                         ["rel-mindroom-instance-agent"]["spec"]["minReplicas"], 3)
        self.assertEqual(self.env(agent)["OPENAI_BASE_URL"], "http://stub:8000")
        self.assertNotIn("OPENAI_BASE_URL", self.env(deps["rel-mindroom-instance-gateway"]))
        for dep in deps.values():
            self.assertEqual(self.env(dep)["MINDROOM_LOG_LEVEL"], "debug")
            self.assertEqual(self.container(dep)["envFrom"][0]["secretRef"]["name"], "alice-secrets")

    def test_disabled_services_render_nothing(self):
        values = {"services": {"agent": {"enabled": False}, "upstreamAuth": {"enabled": False}}}
        docs = self.render(values)
        self.assertEqual(sorted(self.objects(docs, "Deployment")),
                         [f"rel-mindroom-instance-{s}" for s in ["authz", "crypto", "gateway"]])
        self.assertEqual(self.objects(docs, "Service"), {})

    def test_schema_rejects_bad_values(self):
        self.check_schema_rejects({"trustedUpstreamAuth": {"requireJwt": "yes"}},
                                  "trustedUpstreamAuth.requireJwt must be one of the following")
        self.check_schema_rejects({"trustedUpstreamAuth": {"jwksURL": "https://x"}},
                                  "Additional property jwksURL is not allowed")
        self.check_schema_rejects({"bus": {"url": "amqp://rabbit"}}, "bus.url: Does not match pattern")
        self.check_schema_rejects({"services": {"gateway": {"port": 70000}}}, "services.gateway.port")
        self.check_schema_rejects({"extraEnv": [{"name": "X", "value": 1}]}, "Invalid type. Expected: string")


class PlatformChart(ChartCase):
    chart = "platform"
    DEPLOYMENT = "rel-mindroom-platform-provisioning"
    PLATFORM = "rel-mindroom-platform-platform"

    def test_lint_strict_default_values(self):
        self.lint()

    def test_lint_strict_full_trusted_upstream_example(self):
        self.lint(["platform-trusted-full.yaml"])

    def test_default_render_has_provisioning_and_platform(self):
        docs = self.render()
        got = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
        self.assertEqual(got, sorted([("Deployment", self.DEPLOYMENT), ("Service", self.DEPLOYMENT),
                                      ("ServiceAccount", "rel-mindroom-platform"),
                                      ("Deployment", self.PLATFORM), ("Service", self.PLATFORM),
                                      ("ServiceAccount", self.PLATFORM), ("Role", self.PLATFORM),
                                      ("RoleBinding", self.PLATFORM)]))
        dep = self.objects(docs, "Deployment")[self.DEPLOYMENT]
        self.check_workload(dep, "provisioning", [])
        svc = self.objects(docs, "Service")[self.DEPLOYMENT]
        self.assertEqual(svc["spec"]["selector"]["app.kubernetes.io/component"], "provisioning")
        self.assertEqual(svc["spec"]["ports"][0]["targetPort"], "http")

    def test_platform_deployment_runs_with_its_own_token(self):
        docs = self.render({"store": {"url": "redis://redis:6379/3"}})
        dep = self.objects(docs, "Deployment")[self.PLATFORM]
        # The only pod with a token: it calls the Kubernetes API.
        self.check_workload(dep, "platform", [], service_account=self.PLATFORM, automount=True)
        self.assertIs(self.objects(docs, "ServiceAccount")[self.PLATFORM]["automountServiceAccountToken"], True)
        self.assertIs(self.objects(docs, "ServiceAccount")["rel-mindroom-platform"]["automountServiceAccountToken"],
                      False)
        env = self.env(dep)
        self.assertEqual({k: env[k] for k in env if k.startswith("MINDROOM_PLATFORM_") or k == "MINDROOM_STORE_URL"},
                         {"MINDROOM_STORE_URL": "redis://redis:6379/3", "MINDROOM_PLATFORM_NAMESPACE": "ns",
                          "MINDROOM_PLATFORM_INSTANCE_CHART": "/usr/share/mindroom/charts/mindroom-instance.tgz",
                          "MINDROOM_PLATFORM_MAX_INSTANCES_PER_OWNER": "3"})
        # helm writes its cache and config under the writable /tmp, not the read-only root.
        self.assertEqual({k: env[k] for k in env if k.startswith("HELM_")},
                         {"HELM_CACHE_HOME": "/tmp/helm/cache", "HELM_CONFIG_HOME": "/tmp/helm/config",
                          "HELM_DATA_HOME": "/tmp/helm/data"})
        self.assertEqual(dep["spec"]["replicas"], 1)
        svc = self.objects(docs, "Service")[self.PLATFORM]
        self.assertEqual(svc["spec"]["selector"]["app.kubernetes.io/component"], "platform")
        off = self.render({"platform": {"enabled": False}})
        self.assertEqual({d["metadata"]["name"] for d in off if d["metadata"]["name"] == self.PLATFORM}, set())

    @staticmethod
    def plural(kind):
        """The resource name the apiserver gives a kind (Ingress -> ingresses, NetworkPolicy ->
        networkpolicies)."""
        k = kind.lower()
        return k[:-1] + "ies" if k.endswith("y") else k + ("es" if k.endswith("s") else "s")

    def instance_kinds(self):
        """(apiGroup, resource) of everything the instance chart can render, every option on."""
        instance = InstanceChart()
        docs = instance.render({"bus": {"url": "kafka://k:9092"}, "ingress": {"enabled": True},
                                "networkPolicy": {"enabled": True},
                                "services": {"agent": {"keda": {"enabled": True}}}})
        return {(d["apiVersion"].rpartition("/")[0], self.plural(d["kind"])) for d in docs}

    def test_rbac_is_exactly_what_the_platform_applies(self):
        for keda in (False, True):
            with self.subTest(keda=keda):
                docs = self.render({"platform": {"instanceNamespace": "instances", "kedaScaledObjects": keda}})
                role = self.objects(docs, "Role")[self.PLATFORM]
                self.assertEqual(role["metadata"]["namespace"], "instances")
                granted = set()
                for rule in role["rules"]:
                    self.assertEqual(rule["verbs"], ["get", "list", "create", "patch", "delete"])
                    granted |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
                # The instance chart's kinds and the Secrets the platform generates; nothing else.
                want = self.instance_kinds() | {("", "secrets")}
                if not keda:
                    want.discard(("keda.sh", "scaledobjects"))
                self.assertEqual(granted, want)
                binding = self.objects(docs, "RoleBinding")[self.PLATFORM]
                self.assertEqual(binding["metadata"]["namespace"], "instances")
                self.assertEqual(binding["roleRef"], {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                      "name": self.PLATFORM})
                self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": self.PLATFORM,
                                                        "namespace": "ns"}])
        self.assertEqual(self.objects(self.render(), "Role")[self.PLATFORM]["metadata"]["namespace"], "ns")

    def test_full_example_renders_instance_variables_on_the_platform(self):
        docs = self.render(files=["platform-trusted-full.yaml"])
        deps = self.objects(docs, "Deployment")
        env = self.env(deps[self.PLATFORM])
        self.assertEqual(self.with_prefix(env, "INSTANCE_TRUSTED_UPSTREAM_"), SEED_TRUSTED_ENV)
        self.assertEqual(self.with_prefix(env, "MINDROOM_TRUSTED_UPSTREAM_"),
                         {"AUTH_ENABLED": "false", "REQUIRE_JWT": "false"})
        self.assertEqual(self.with_prefix(self.env(deps[self.DEPLOYMENT]), "INSTANCE_TRUSTED_UPSTREAM_"), {})

    def test_platform_identity_headers(self):
        docs = self.render({"platform": {"trustedUpstreamAuth": {"enabled": True, "userIdHeader": "X-User"}}})
        env = self.env(self.objects(docs, "Deployment")[self.PLATFORM])
        self.assertEqual(self.with_prefix(env, "MINDROOM_TRUSTED_UPSTREAM_"),
                         {"AUTH_ENABLED": "true", "REQUIRE_JWT": "false", "USER_ID_HEADER": "X-User"})
        self.render_fails({"platform": {"trustedUpstreamAuth": {"enabled": True}}},
                          "platform.trustedUpstreamAuth.userIdHeader is required when "
                          "platform.trustedUpstreamAuth.enabled is true")

    def test_instance_values_reach_the_platform_as_a_file(self):
        base = {"matrix": {"homeserver": "https://matrix.example.org", "serverName": "example.org"},
                "store": {"url": "redis://redis:6379/0"}}
        docs = self.render({"platform": {"instanceValues": base}})
        dep = self.objects(docs, "Deployment")[self.PLATFORM]
        self.assertEqual(self.env(dep)["MINDROOM_PLATFORM_INSTANCE_VALUES"], "/etc/mindroom-platform/instance-values.yaml")
        pod = dep["spec"]["template"]["spec"]
        self.assertIn({"name": "files", "mountPath": "/etc/mindroom-platform", "readOnly": True},
                      pod["containers"][0]["volumeMounts"])
        self.assertIn({"name": "files", "configMap": {"name": self.PLATFORM + "-instance-values"}}, pod["volumes"])
        cm = self.objects(docs, "ConfigMap")[self.PLATFORM + "-instance-values"]
        self.assertEqual(yaml.safe_load(cm["data"]["instance-values.yaml"]), base)
        # A change restarts the platform; without base values there is no file at all.
        other = self.objects(self.render({"platform": {"instanceValues": {"bus": {"url": "kafka://k:9092"}}}}),
                             "Deployment")[self.PLATFORM]
        self.assertNotEqual(dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"],
                            other["spec"]["template"]["metadata"]["annotations"]["checksum/config"])
        plain = self.render()
        self.assertNotIn("MINDROOM_PLATFORM_INSTANCE_VALUES", self.env(self.objects(plain, "Deployment")[self.PLATFORM]))
        self.assertNotIn(self.PLATFORM + "-instance-values", self.objects(plain, "ConfigMap"))

    def test_platform_refuses_strict_jwt_for_its_own_api(self):
        self.render_fails({"platform": {"trustedUpstreamAuth": dict(STRICT_JWT, enabled=True, userIdHeader="X-U")}},
                          "platform.trustedUpstreamAuth.requireJwt: mindroom-platform does not verify JWTs itself; "
                          "put mindroom-upstream-auth's forward auth in front of it and set "
                          "platform.trustedUpstreamAuth.userIdHeader to X-MindRoom-Auth-User-Id")

    def test_platform_ingress_passes_forward_auth_at_upstream_auth(self):
        verify = "http://mindroom-upstream-auth.auth.svc.cluster.local/auth/verify"
        trusted = {"enabled": "true", "userIdHeader": "X-MindRoom-Auth-User-Id"}
        docs = self.render({"platform": {"trustedUpstreamAuth": trusted, "ingress": {
            "enabled": True, "host": "platform.example.org", "authUrl": verify,
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"}}}})
        ing = self.objects(docs, "Ingress")[self.PLATFORM]
        self.assertEqual(ing["metadata"]["annotations"], {
            "nginx.ingress.kubernetes.io/auth-url": verify,
            "nginx.ingress.kubernetes.io/auth-response-headers":
                "X-MindRoom-Auth-User-Id,X-MindRoom-Auth-Email,X-MindRoom-Auth-Matrix-User-Id,X-MindRoom-Auth-Method",
            "nginx.ingress.kubernetes.io/proxy-body-size": "1m"})
        rule = ing["spec"]["rules"][0]
        self.assertEqual(rule["host"], "platform.example.org")
        self.assertEqual([(p["path"], p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
                          for p in rule["http"]["paths"]], [("/v1/instances", self.PLATFORM, 80)])
        self.assertEqual(self.objects(self.render(), "Ingress"), {})
        on = {"enabled": True, "authUrl": verify}
        self.render_fails({"platform": {"trustedUpstreamAuth": trusted, "ingress": {"enabled": True}}},
                          "platform.ingress.authUrl is required when platform.ingress.enabled is true")
        self.render_fails({"platform": {"ingress": on}},
                          "platform.ingress.enabled needs platform.trustedUpstreamAuth.enabled true with "
                          "userIdHeader X-MindRoom-Auth-User-Id")
        self.render_fails({"platform": {"trustedUpstreamAuth": dict(trusted, userIdHeader="X-User"), "ingress": on}},
                          "userIdHeader X-MindRoom-Auth-User-Id")

    def test_default_instance_variables_are_off(self):
        env = self.env(self.objects(self.render(), "Deployment")[self.PLATFORM])
        self.assertEqual(self.with_prefix(env, "INSTANCE_TRUSTED_UPSTREAM_"),
                         {"AUTH_ENABLED": "false", "REQUIRE_JWT": "false"})
        self.assertNotIn("MINDROOM_BUS_URL", env)
        self.assertNotIn("MINDROOM_STORE_URL", self.env(self.objects(self.render(), "Deployment")[self.DEPLOYMENT]))

    def test_trusted_upstream_render_failures(self):
        self.check_trusted_failures("provisioner.trustedUpstreamAuth",
                                    lambda t: nest("provisioner.trustedUpstreamAuth", t))

    def test_storage_claim_and_log_settings(self):
        docs = self.render({"storage": {"existingClaim": "prov-data"}, "log": {"level": "debug", "format": "human"}})
        dep = self.objects(docs, "Deployment")[self.DEPLOYMENT]
        self.assertIn({"name": "data", "persistentVolumeClaim": {"claimName": "prov-data"}},
                      dep["spec"]["template"]["spec"]["volumes"])
        env = self.env(dep)
        self.assertEqual((env["LOG_LEVEL"], env["LOG_FORMAT"]), ("debug", "human"))
        self.check_schema_rejects({"log": {"level": "verbose"}}, "log.level must be one of the following")

    def test_bus_and_store_urls_and_service_toggle(self):
        docs = self.render({"bus": {"url": "redis://redis:6379/2"}, "store": {"url": "redis://redis:6379/1"},
                            "provisioner": {"service": {"enabled": False}}})
        env = self.env(self.objects(docs, "Deployment")[self.DEPLOYMENT])
        self.assertEqual((env["MINDROOM_BUS_URL"], env["MINDROOM_STORE_URL"]),
                         ("redis://redis:6379/2", "redis://redis:6379/1"))
        self.assertEqual(list(self.objects(docs, "Service")), [self.PLATFORM])

    def test_schema_rejects_bad_values(self):
        self.check_schema_rejects(nest("provisioner.trustedUpstreamAuth", {"enabled": "on"}),
                                  "provisioner.trustedUpstreamAuth.enabled must be one of the following")
        self.check_schema_rejects({"provisioner": {"replicas": 2}}, "Additional property replicas is not allowed")
        self.check_schema_rejects({"platform": {"replicaCount": 2}}, "platform.replicaCount: Must be less than or equal to 1")
        self.check_schema_rejects({"platform": {"instanceNamespace": "Bad_NS"}}, "platform.instanceNamespace")
        self.check_schema_rejects({"platform": {"maxInstancesPerOwner": 0}}, "platform.maxInstancesPerOwner")


class Packaging(ChartCase):
    """The charts as operators receive them: `helm package`, then a render of the package."""

    def test_each_package_carries_the_library_and_renders_like_the_directory(self):
        out_dir = tempfile.mkdtemp(dir=HELM_ENV["HELM_CACHE_HOME"])
        for chart in ("instance", "platform"):
            with self.subTest(chart=chart):
                self.chart = chart
                code, out, err = helm("package", self.chart_dir(), "--destination", out_dir)
                self.assertEqual(code, 0, f"helm package {chart}: {err}")
                pkg = os.path.join(out_dir, f"mindroom-{chart}-0.1.0.tgz")
                with tarfile.open(pkg) as tar:
                    members = tar.getmembers()
                self.assertEqual([m.name for m in members if m.issym() or m.islnk()], [])
                # Helm packs the built dependency as a directory of files.
                self.assertIn(f"mindroom-{chart}/charts/mindroom-common/templates/_workload.tpl",
                              [m.name for m in members if m.isfile()])
                code, from_pkg, err = helm("template", "rel", pkg, "--namespace", "ns")
                self.assertEqual(code, 0, f"helm template of the package: {err}")
                code, from_dir, err = helm(*self.template_args(None, ()))
                self.assertEqual(code, 0, err)
                self.assertEqual(from_pkg, from_dir)
                self.assertIn("kind: Deployment", from_pkg)
                code, out, err = helm("lint", "--strict", pkg)
                self.assertEqual(code, 0, f"helm lint --strict of the package:\n{out}\n{err}")

    def test_chart_lock_matches_the_declared_dependency(self):
        for chart in ("instance", "platform"):
            with open(os.path.join(CHARTS, chart, "Chart.yaml")) as f:
                deps = yaml.safe_load(f)["dependencies"]
            with open(os.path.join(CHARTS, chart, "Chart.lock")) as f:
                lock = yaml.safe_load(f)["dependencies"]
            self.assertEqual(deps, [{"name": "mindroom-common", "version": "0.1.0", "repository": "file://../common"}])
            self.assertEqual(lock, deps)
            self.assertFalse(os.path.islink(os.path.join(CHARTS, chart, "charts", "mindroom-common")))


class SharedDefinitions(unittest.TestCase):
    def test_both_schemas_share_the_same_definitions(self):
        """The charts' schemas repeat the shared definitions (Helm resolves no $ref across
        charts); they must stay identical."""
        schemas = {}
        for chart in ("instance", "platform"):
            with open(os.path.join(CHARTS, chart, "values.schema.json")) as f:
                schemas[chart] = json.load(f)
        self.assertEqual(schemas["instance"]["definitions"], schemas["platform"]["definitions"])
        self.assertIn("trustedUpstreamAuth", schemas["instance"]["definitions"])

    def test_validator_catches_broken_manifests(self):
        """The structural checks must be able to fail."""
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
               "spec": {"selector": {"matchLabels": {"a": "b"}},
                        "template": {"metadata": {"labels": {"a": "c"}},
                                     "spec": {"containers": [{"name": "x", "image": "i",
                                                              "env": [{"name": "E", "value": True}],
                                                              "volumeMounts": [{"name": "v", "mountPath": "/v"}]}]}}}}
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "Bad_Name"},
               "spec": {"selector": {"a": "z"}, "ports": [{"port": 80}]}}
        dep["spec"]["template"]["spec"]["containers"][0]["env"].append(
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s"}}})
        ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
               "spec": {"rules": [{"host": "Bad_Host", "http": {"paths": [
                   {"path": "api", "pathType": "Prefix",
                    "backend": {"service": {"name": "missing", "port": {"number": 80}}}},
                   {"path": "/", "pathType": "Prefixed",
                    "backend": {"service": {"name": "Bad_Name", "port": {"number": 81}}}}]}}]}}
        dep["spec"]["replicas"] = 2
        hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
               "spec": {"scaleTargetRef": {"name": "x"}, "minReplicas": 3, "maxReplicas": 2}}
        keda = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "k"},
                "spec": {"scaleTargetRef": {"name": "gone"}, "minReplicaCount": 1, "maxReplicaCount": 2}}
        pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"},
               "spec": {"selector": {"matchLabels": {"a": "z"}}}}
        problems = manifests.validate([dep, svc, ing, hpa, keda, pdb,
                                       {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}])
        joined = "\n".join(problems)
        for want in ["does not select the pod template's labels", "env E value True is not a string",
                     "volumeMount 'v' has no volume", "metadata.name 'Bad_Name' is not a valid Service name",
                     "matches no rendered Deployment", "Secret/s: unexpected kind",
                     "env S secretKeyRef {'name': 's'} needs a Secret name and key",
                     "rule host 'Bad_Host'", "path must start with /", "pathType 'Prefixed'",
                     "backend Service 'missing' is not rendered",
                     "backend port 81 is not a port of Service Bad_Name",
                     "HorizontalPodAutoscaler/h: replica range 3..2",
                     "Deployment x sets spec.replicas, which its autoscaler owns",
                     "ScaledObject/k: scaleTargetRef 'gone' is not a rendered Deployment",
                     "PodDisruptionBudget/p: selector {'a': 'z'} matches no rendered Deployment",
                     "needs exactly one of minAvailable, maxUnavailable"]:
            self.assertIn(want, joined)


def main():
    global HELM, CHARTS, MINDROOM, HELM_ENV, PROTO
    ap = argparse.ArgumentParser()
    ap.add_argument("--helm", required=True)
    ap.add_argument("--charts", required=True)
    ap.add_argument("--mindroom")
    args, rest = ap.parse_known_args()
    HELM = args.helm if os.access(args.helm, os.X_OK) else shutil.which("helm")
    if not HELM:
        print(f"SKIP: helm is not installed (not at {args.helm} nor on PATH); run `make helm`")
        return SKIP
    CHARTS = os.path.abspath(args.charts)
    PROTO = os.path.join(os.path.dirname(CHARTS), "proto")
    if args.mindroom:
        if not os.access(args.mindroom, os.X_OK):
            print(f"--mindroom {args.mindroom} is not an executable (build the mindroom target)")
            return 1
        MINDROOM = args.mindroom
    with tempfile.TemporaryDirectory() as home:
        # Helm's cache, config and data under a scratch directory: the checks leave ~ alone.
        HELM_ENV = dict(os.environ, HELM_CACHE_HOME=os.path.join(home, "cache"),
                        HELM_CONFIG_HOME=os.path.join(home, "config"),
                        HELM_DATA_HOME=os.path.join(home, "data"))
        os.makedirs(HELM_ENV["HELM_CACHE_HOME"])
        CHARTS = prepare_charts(CHARTS, home)
        version = subprocess.run([HELM, "version", "--short"], capture_output=True, text=True, env=HELM_ENV)
        print(f"helm {version.stdout.strip()} at {HELM}")
        result = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2).result
        failed = len(result.failures) + len(result.errors)
        print(f"{result.testsRun - failed - len(result.skipped)} passed, {failed} failed, "
              f"{len(result.skipped)} skipped")
        return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
