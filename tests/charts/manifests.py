"""manifests.py -- structural checks of rendered Kubernetes manifests, standing in for the
API server's validation (kubectl's --dry-run=client needs a reachable cluster for its
OpenAPI schema and REST mapping, so it cannot run here).

validate(docs) returns a list of problems, each naming the object and field involved; an
empty list means every object passed.
"""

import re

# The kinds the charts may render, with the apiVersion the cluster serves them under.
KNOWN_KINDS = {
    "ConfigMap": "v1",
    "Service": "v1",
    "ServiceAccount": "v1",
    "Deployment": "apps/v1",
    "Ingress": "networking.k8s.io/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "ScaledObject": "keda.sh/v1alpha1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
}

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?([EPTGMK]i|[EPTGMkmun]|[eE][0-9]+)?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class _Problems:
    def __init__(self):
        self.items = []

    def check(self, ok, where, what):
        if not ok:
            self.items.append(f"{where}: {what}")
        return ok


def _check_metadata(p, doc, where):
    meta = doc.get("metadata")
    if not p.check(isinstance(meta, dict), where, "metadata missing"):
        return
    name = meta.get("name")
    # A Service name becomes a DNS label; other names are DNS subdomains.
    rule, limit = (DNS1035_LABEL, 63) if doc["kind"] == "Service" else (DNS1123_SUBDOMAIN, 253)
    p.check(isinstance(name, str) and len(name) <= limit and rule.match(name) is not None,
            where, f"metadata.name {name!r} is not a valid {doc['kind']} name")
    _check_labels(p, meta.get("labels", {}), f"{where} metadata.labels")
    for key, value in (meta.get("annotations") or {}).items():
        p.check(isinstance(value, str), where, f"metadata.annotations[{key!r}] is not a string")


def _check_labels(p, labels, where):
    if not p.check(isinstance(labels, dict), where, "not a map"):
        return
    for key, value in labels.items():
        p.check(isinstance(key, str) and LABEL_NAME.match(key) is not None, where,
                f"label name {key!r} is invalid")
        p.check(isinstance(value, str) and len(value) <= 63 and LABEL_VALUE.match(value) is not None,
                where, f"label {key!r} has invalid value {value!r}")


def _check_resources(p, res, where):
    if not p.check(isinstance(res, dict), where, "resources is not a map"):
        return
    for part in ("requests", "limits"):
        for key, qty in (res.get(part) or {}).items():
            p.check(isinstance(qty, (str, int)) and QUANTITY.match(str(qty)) is not None, where,
                    f"resources.{part}.{key} {qty!r} is not a quantity")


def _check_probe(p, probe, ports, where):
    if not p.check(isinstance(probe, dict), where, "probe missing"):
        return
    get = probe.get("httpGet")
    if not p.check(isinstance(get, dict), where, "probe has no httpGet"):
        return
    p.check(str(get.get("path", "")).startswith("/"), where, f"httpGet.path {get.get('path')!r}")
    port = get.get("port")
    p.check(port in ports or port in ports.values(), where, f"httpGet.port {port!r} is not a container port")
    for key in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold"):
        if key in probe:
            p.check(isinstance(probe[key], int) and probe[key] >= 0, where, f"{key} {probe[key]!r}")


def _check_env(p, env, where):
    if not p.check(isinstance(env, list), where, "env is not a list"):
        return
    seen = set()
    for e in env:
        name = e.get("name") if isinstance(e, dict) else None
        p.check(isinstance(name, str) and ENV_NAME.match(name) is not None, where, f"env name {name!r}")
        p.check(name not in seen, where, f"env {name} set twice")
        seen.add(name)
        has_value, has_from = "value" in e, "valueFrom" in e
        p.check(has_value != has_from, where, f"env {name} needs exactly one of value, valueFrom")
        if has_value:
            # The API server rejects a YAML boolean or number here: values are strings.
            p.check(isinstance(e["value"], str), where, f"env {name} value {e['value']!r} is not a string")
        ref = (e.get("valueFrom") or {}).get("secretKeyRef") if has_from else None
        if ref is not None:
            p.check(DNS1123_SUBDOMAIN.match(str(ref.get("name", ""))) is not None and
                    CONFIG_KEY.match(str(ref.get("key", ""))) is not None, where,
                    f"env {name} secretKeyRef {ref!r} needs a Secret name and key")


def _check_container(p, c, volumes, where):
    name = c.get("name")
    where = f"{where} container {name}"
    p.check(isinstance(name, str) and DNS1123_LABEL.match(name) is not None, where, "invalid name")
    p.check(isinstance(c.get("image"), str) and c["image"] != "", where, "no image")
    p.check(all(isinstance(a, str) for a in c.get("command", []) + c.get("args", [])), where,
            "command and args must be strings")
    ports = {}
    for port in c.get("ports", []):
        pn, num = port.get("name"), port.get("containerPort")
        p.check(isinstance(num, int) and 1 <= num <= 65535, where, f"containerPort {num!r}")
        if pn is not None:
            p.check(len(pn) <= 15 and PORT_NAME.match(pn) is not None, where, f"port name {pn!r}")
            ports[pn] = num
        p.check(port.get("protocol", "TCP") in ("TCP", "UDP", "SCTP"), where, "protocol")
    _check_env(p, c.get("env", []), where)
    for src in c.get("envFrom", []):
        ref = src.get("secretRef") or src.get("configMapRef")
        p.check(isinstance(ref, dict) and DNS1123_SUBDOMAIN.match(ref.get("name", "")) is not None,
                where, f"envFrom {src!r}")
    for probe in ("livenessProbe", "readinessProbe"):
        if probe in c:
            _check_probe(p, c[probe], ports, f"{where} {probe}")
    if "resources" in c:
        _check_resources(p, c["resources"], where)
    for m in c.get("volumeMounts", []):
        p.check(m.get("name") in volumes, where, f"volumeMount {m.get('name')!r} has no volume")
        p.check(str(m.get("mountPath", "")).startswith("/"), where, f"mountPath {m.get('mountPath')!r}")
    sc = c.get("securityContext", {})
    for key in ("runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation", "privileged"):
        if key in sc:
            p.check(isinstance(sc[key], bool), where, f"securityContext.{key} is not a boolean")
    return ports


def _check_deployment(p, doc, where, config_maps):
    spec = doc.get("spec", {})
    p.check(isinstance(spec.get("replicas", 1), int) and spec.get("replicas", 1) >= 0, where, "spec.replicas")
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    p.check(bool(match), where, "spec.selector.matchLabels is empty")
    tmpl = spec.get("template", {})
    pod_labels = (tmpl.get("metadata") or {}).get("labels") or {}
    _check_labels(p, pod_labels, f"{where} template labels")
    p.check(all(pod_labels.get(k) == v for k, v in match.items()), where,
            "spec.selector.matchLabels does not select the pod template's labels")
    pod = tmpl.get("spec", {})
    volumes = {}
    for v in pod.get("volumes", []):
        p.check(DNS1123_LABEL.match(v.get("name", "")) is not None, where, f"volume name {v.get('name')!r}")
        p.check(v.get("name") not in volumes, where, f"volume {v.get('name')} twice")
        volumes[v.get("name")] = v
        cm = v.get("configMap")
        if cm is not None and cm.get("name") not in config_maps.get("external", set()):
            p.check(cm.get("name") in config_maps["rendered"], where,
                    f"volume {v['name']} refers to ConfigMap {cm.get('name')!r}, which is not rendered")
    containers = pod.get("containers")
    if not p.check(isinstance(containers, list) and containers, where, "no containers"):
        return {}
    ports = {}
    for c in containers:
        ports.update(_check_container(p, c, volumes, where))
    return ports


def _check_service(p, doc, where, pods):
    spec = doc.get("spec", {})
    p.check(spec.get("type", "ClusterIP") in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
            where, f"spec.type {spec.get('type')!r}")
    sel = spec.get("selector") or {}
    targets = [ports for labels, ports in pods if all(labels.get(k) == v for k, v in sel.items())]
    if not p.check(bool(sel) and bool(targets), where, f"selector {sel} matches no rendered Deployment"):
        return
    for port in spec.get("ports", []):
        num = port.get("port")
        p.check(isinstance(num, int) and 1 <= num <= 65535, where, f"port {num!r}")
        target = port.get("targetPort", num)
        p.check(all(target in ports or target in ports.values() for ports in targets), where,
                f"targetPort {target!r} is not a port of the selected pods")


def _check_ingress(p, doc, where, services, external_services):
    spec = doc.get("spec", {})
    for tls in spec.get("tls", []):
        p.check(DNS1123_SUBDOMAIN.match(str(tls.get("secretName", ""))) is not None, where,
                f"tls secretName {tls.get('secretName')!r}")
        for host in tls.get("hosts", []):
            p.check(isinstance(host, str) and HOST.match(host) is not None, where, f"tls host {host!r}")
    rules = spec.get("rules")
    if not p.check(isinstance(rules, list) and rules, where, "spec.rules is empty"):
        return
    for rule in rules:
        if "host" in rule:
            p.check(isinstance(rule["host"], str) and HOST.match(rule["host"]) is not None, where,
                    f"rule host {rule['host']!r}")
        for path in (rule.get("http") or {}).get("paths", []):
            at = f"{where} path {path.get('path')!r}"
            p.check(str(path.get("path", "")).startswith("/"), at, "path must start with /")
            p.check(path.get("pathType") in ("Exact", "Prefix", "ImplementationSpecific"), at,
                    f"pathType {path.get('pathType')!r}")
            svc = (path.get("backend") or {}).get("service") or {}
            name, port = svc.get("name"), (svc.get("port") or {}).get("number")
            p.check(isinstance(port, int) and 1 <= port <= 65535, at, f"backend port {port!r}")
            if name in external_services:
                continue
            if p.check(name in services, at, f"backend Service {name!r} is not rendered"):
                p.check(port in services[name], at, f"backend port {port!r} is not a port of Service {name}")


def _selects(match, deployment):
    labels = ((deployment.get("spec", {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in match.items())


def _check_scaler(p, spec, where, deployments):
    """An HPA or KEDA ScaledObject: it targets a rendered Deployment, within a valid range."""
    target = (spec.get("scaleTargetRef") or {}).get("name")
    p.check(target in deployments, where, f"scaleTargetRef {target!r} is not a rendered Deployment")
    lo = spec.get("minReplicas", spec.get("minReplicaCount"))
    hi = spec.get("maxReplicas", spec.get("maxReplicaCount"))
    p.check(isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi, where,
            f"replica range {lo!r}..{hi!r}")
    # Two owners of one count fight: the Deployment must leave replicas to the autoscaler.
    if target in deployments:
        p.check("replicas" not in deployments[target].get("spec", {}), where,
                f"Deployment {target} sets spec.replicas, which its autoscaler owns")


def validate(docs, external_config_maps=(), external_services=()):
    """Checks a list of parsed manifests; external_config_maps and external_services name
    ConfigMaps and Services that exist outside the chart (e.g. existingConfigMap, an Ingress
    backend)."""
    p = _Problems()
    seen = set()
    config_maps = {"rendered": set(), "external": set(external_config_maps)}
    for doc in docs:
        if doc.get("kind") == "ConfigMap":
            config_maps["rendered"].add((doc.get("metadata") or {}).get("name"))
    pods = []
    for doc in docs:
        kind = doc.get("kind")
        name = (doc.get("metadata") or {}).get("name")
        where = f"{kind}/{name}"
        if not p.check(kind in KNOWN_KINDS, where, "unexpected kind"):
            continue
        p.check(doc.get("apiVersion") == KNOWN_KINDS[kind], where, f"apiVersion {doc.get('apiVersion')!r}")
        p.check((kind, name) not in seen, where, "rendered twice")
        seen.add((kind, name))
        _check_metadata(p, doc, where)
        if kind == "Deployment":
            ports = _check_deployment(p, doc, where, config_maps)
            labels = ((doc.get("spec", {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
            pods.append((labels, ports))
        elif kind == "ConfigMap":
            for key, value in (doc.get("data") or {}).items():
                p.check(CONFIG_KEY.match(key) is not None, where, f"data key {key!r}")
                p.check(isinstance(value, str), where, f"data[{key!r}] is not a string")
        elif kind == "ServiceAccount":
            p.check(isinstance(doc.get("automountServiceAccountToken", False), bool), where,
                    "automountServiceAccountToken is not a boolean")
    services = {}
    for doc in docs:
        if doc.get("kind") == "Service":
            _check_service(p, doc, f"Service/{doc['metadata'].get('name')}", pods)
            services[doc["metadata"].get("name")] = [port.get("port") for port in doc.get("spec", {}).get("ports", [])]
    deployments = {d["metadata"].get("name"): d for d in docs if d.get("kind") == "Deployment"}
    for doc in docs:
        kind = doc.get("kind")
        where = f"{kind}/{(doc.get('metadata') or {}).get('name')}"
        spec = doc.get("spec") or {}
        if kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            _check_scaler(p, spec, where, deployments)
        elif kind == "PodDisruptionBudget":
            match = (spec.get("selector") or {}).get("matchLabels") or {}
            p.check(bool(match) and any(_selects(match, d) for d in deployments.values()), where,
                    f"selector {match} matches no rendered Deployment")
            p.check(("minAvailable" in spec) != ("maxUnavailable" in spec), where,
                    "needs exactly one of minAvailable, maxUnavailable")
    for doc in docs:
        if doc.get("kind") == "Ingress":
            _check_ingress(p, doc, f"Ingress/{doc['metadata'].get('name')}", services, set(external_services))
    return p.items
