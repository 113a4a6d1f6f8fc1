"""bench_platform.py -- the numbers of bench/platform/run.sh: request -> ready, N instances one after
another and N at once, the platform's peak RSS; baseline: one bare `helm template` of the chart."""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "e2e"))
from e2e_stack import StackError, free_port, wait_for  # noqa: E402

TOKEN = "bench-token"
OPERATOR = "bench-operator-key"


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {OPERATOR}"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.status, json.loads(r.read())


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def get(url):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {OPERATOR}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def start_platform(a, tmp, env, name, kube_url, rport, db, **extra):
    """A mindroom-platform on the peer at kube_url; its base URL once /readyz answers."""
    port = free_port()
    penv = dict(env, MINDROOM_STORE_URL=f"redis://127.0.0.1:{rport}/{db}",
                MINDROOM_STORAGE_PATH=os.path.join(tmp, name), MINDROOM_PLATFORM_NAMESPACE="default",
                MINDROOM_PLATFORM_INSTANCE_CHART=a.chart, MINDROOM_PLATFORM_HELM=a.helm,
                MINDROOM_PLATFORM_KUBE_URL=kube_url, MINDROOM_PLATFORM_KUBE_TOKEN_FILE=os.path.join(tmp, "token"),
                MINDROOM_PLATFORM_API_KEY=OPERATOR, MINDROOM_PLATFORM_RECONCILE_SECONDS="3600",
                # Every client is on loopback, as behind the gateway the platform sits behind.
                MINDROOM_HTTP_MAX_CONNECTIONS_PER_ADDRESS="256", LOG_LEVEL="warn", **extra)
    platform = subprocess.Popen([a.platform, "--listen", f"127.0.0.1:{port}"], env=penv,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return urllib.request.urlopen(base + "/readyz", timeout=5).status == 200
        except OSError:
            return False
    wait_for("the platform", up)
    return platform, base


def start_peer(argv, log, procs, what):
    with open(log, "w") as out:
        procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT))
    wait_for(what, lambda: open(log).readline().endswith("\n"))
    return open(log).readline().split()[2], procs[-1]


def running_instances(a, tmp, env, rport, procs, k=5):
    """Request -> ready when the peer runs each Deployment as the service's binary (readiness
    probed every second, an operator's base values naming one Redis for every instance's bus and
    store): k instances one after another, each deleted (and its processes gone) before the next."""
    hs, _ = start_peer([os.path.join(a.bin_dir, "tests/peers/homeserver/mr-test-homeserver"), "--listen", "127.0.0.1:0",
                     "--server-name", "localhost", "--registration-token", "bench-reg"],
                    os.path.join(tmp, "hs.log"), procs, "the test homeserver")
    images = [x for svc in ("gateway", "crypto", "authz", "agent", "upstream-auth")
              for x in ("--image", f"mindroom-{svc}={os.path.join(a.bin_dir, 'services', svc, 'mindroom-' + svc)}")]
    kube_url, kube = start_peer([a.kube_api, "--token", TOKEN, "--deployments", "run", *images],
                          os.path.join(tmp, "kube-run.log"), procs, "the kube API peer in run mode")
    values = os.path.join(tmp, "instance-values.json")
    with open(values, "w") as f:
        json.dump({"matrix": {"homeserver": hs, "serverName": "localhost"},
                   "bus": {"url": f"redis://127.0.0.1:{rport}/1"}, "store": {"url": f"redis://127.0.0.1:{rport}/2"},
                   "probes": {"readiness": {"periodSeconds": 1}}}, f)
    platform, base = start_platform(a, tmp, env, "storage-run", kube_url, rport, 3,
                                    MINDROOM_PLATFORM_INSTANCE_VALUES=values,
                                    INSTANCE_SECRET_MATRIX_REGISTRATION_TOKEN="bench-reg")
    procs.append(platform)
    times = []
    for i in range(k):
        t = time.monotonic()
        code, body = post(base + "/v1/instances", {"owner": f"run{i}", "key": "home"})
        if code != 201:
            sys.exit(f"bench_platform: create run{i}: {code} {body}")
        try:
            wait_for(f"run{i} ready", lambda: get(f"{base}/v1/instances/{body['id']}")["phase"] == "ready", 120)
        except StackError:
            with open(os.path.join(tmp, "kube-run.log"), errors="replace") as f:
                print("".join(f.readlines()[-60:]), file=sys.stderr)
            raise
        times.append(time.monotonic() - t)
        req = urllib.request.Request(f"{base}/v1/instances/{body['id']}", method="DELETE",
                                     headers={"Authorization": f"Bearer {OPERATOR}"})
        urllib.request.urlopen(req, timeout=120).read()
        wait_for("the instance's processes to stop", lambda: not children(kube.pid), 120)
        # No flush between instances: they share the bus and store the base values name, each
        # under its own prefix (its id), so the next never meets the keys the last one left.
    return times


def children(pid):
    """Pids whose parent is pid, from /proc."""
    out = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
        except OSError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser()
    for a in ("--platform", "--kube-api", "--helm", "--charts"):
        ap.add_argument(a, required=True)
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--bin-dir", help="a build tree with the services and the test homeserver: also measure "
                                      "request -> ready with the instance's processes running")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mr-bench-platform-")
    procs = []
    try:
        env = dict(os.environ, HELM_CACHE_HOME=tmp, HELM_CONFIG_HOME=tmp, HELM_DATA_HOME=tmp)
        shutil.copytree(a.charts, os.path.join(tmp, "charts"))
        subprocess.run([a.helm, "dependency", "build", os.path.join(tmp, "charts", "instance")], env=env,
                       check=True, capture_output=True)
        subprocess.run([a.helm, "package", os.path.join(tmp, "charts", "instance"), "--destination", tmp], env=env,
                       check=True, capture_output=True)
        a.chart = chart = os.path.join(tmp, "mindroom-instance-0.1.0.tgz")
        helm_s = []
        for i in range(5):
            t = time.monotonic()
            subprocess.run([a.helm, "template", f"r{i}", chart], env=env, check=True, capture_output=True)
            helm_s.append(time.monotonic() - t)
        helm_med = statistics.median(helm_s)

        rport = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL))
        wait_for("redis", lambda: subprocess.run(["redis-cli", "-p", str(rport), "ping"],
                                                 capture_output=True).stdout.strip() == b"PONG")
        kube_url, _ = start_peer([a.kube_api, "--token", TOKEN], os.path.join(tmp, "kube.log"), procs,
                                 "the kube API peer")
        with open(os.path.join(tmp, "token"), "w") as f:
            f.write(TOKEN)
        platform, base = start_platform(a, tmp, env, "storage", kube_url, rport, 0)
        procs.append(platform)

        def create(owner, key):
            t = time.monotonic()
            code, body = post(base + "/v1/instances", {"owner": owner, "key": key})
            if code != 201 or body["phase"] != "ready":
                sys.exit(f"bench_platform: create {owner}/{key}: {code} {body}")
            return time.monotonic() - t

        seq = [create(f"seq{i}", "home") for i in range(a.n)]
        seq_total = sum(seq)
        rss_seq = peak_rss_kib(platform.pid)
        errors = []
        t0 = time.monotonic()

        def worker(i):
            try:
                create(f"par{i}", "home")
            except (SystemExit, Exception) as e:  # noqa: BLE001 -- any failure spoils the run
                errors.append(f"par{i}: {e}")
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        par_total = time.monotonic() - t0
        if errors:
            sys.exit(errors[0])
        rss_all = peak_rss_kib(platform.pid)
        med = statistics.median(seq)
        print(f"{'measure':<44} {'value':>12} {'baseline':>12} {'ratio':>8}")
        print(f"{'request -> ready, median of ' + str(a.n):<44} {med:>11.3f}s {helm_med:>11.3f}s {med / helm_med:>8.2f}")
        print(f"{'request -> ready, p95':<44} {sorted(seq)[int(0.95 * (a.n - 1))]:>11.3f}s")
        print(f"{str(a.n) + ' instances one after another':<44} {seq_total:>11.2f}s {a.n * helm_med:>11.2f}s "
              f"{seq_total / (a.n * helm_med):>8.2f}")
        print(f"{str(a.n) + ' instances at once':<44} {par_total:>11.2f}s {a.n * helm_med:>11.2f}s "
              f"{par_total / (a.n * helm_med):>8.2f}")
        print(f"{'platform peak RSS after sequential':<44} {rss_seq / 1024:>10.1f}MiB")
        print(f"{'platform peak RSS after ' + str(2 * a.n) + ' instances':<44} {rss_all / 1024:>10.1f}MiB")
        print(f"(baseline: one bare `helm template` of the instance chart, median of 5: {helm_med:.3f}s; "
              f"reference platform allows 180 s to ready)")
        if a.bin_dir:
            run = running_instances(a, tmp, env, rport, procs)
            rmed = statistics.median(run)
            print(f"{'request -> ready, processes running, med of 5':<44} {rmed:>11.3f}s {med:>11.3f}s "
                  f"{rmed / med:>8.2f}")
            print(f"{'request -> ready, processes running, max':<44} {max(run):>11.3f}s")
            print("(baseline: request -> ready above, where the peer reports Deployments ready at once)")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
