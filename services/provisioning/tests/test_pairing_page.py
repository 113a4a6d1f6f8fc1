"""test_pairing_page.py -- the pairing page (Settings -> Local MindRoom) in a real browser:
headless Debian Chromium driven by Selenium against mindroom-provisioning, redis-server and the
test homeserver. A person signs in with their Matrix password, generates a pair code, runs
`mindroom connect --pair-code` (the real CLI), watches the status turn connected, sees the
connection listed, revokes it, and signs out. A screenshot of each step goes to
pairing_page_artifacts/ in the working directory (the test's build dir).

Exits 77 (skipped) when chromium, chromedriver or python3-selenium is missing. Chromium and
chromedriver are stopped at the end whatever happens, by their process IDs."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "e2e"))
import e2e_stack  # noqa: E402
from e2e_stack import ListeningPeer, Proc, Redis, StackError, binary, free_port, wait_for  # noqa: E402

SKIP = 77
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
REG_TOKEN = "page-registration-token"
CLIENT_NAME = "browser-test-laptop"

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:
    webdriver = None


def http(method, url, body=None, headers=None):
    """(status, parsed JSON or None) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, None


def healthy(base, proc):
    if not proc.running():
        raise StackError(f"{proc.name} exited at start; log {proc.log}:\n{e2e_stack.tail(proc.log)}")
    try:
        return http("GET", f"{base}/healthz")[0] == 200
    except OSError:
        return False


def register(hs, user, password):
    """Registers a Matrix user through the user-interactive flow, as a chat client would."""
    url = f"{hs}/_matrix/client/v3/register"
    status, got = http("POST", url, {"username": user, "password": password})
    for _ in range(4):
        if status == 200:
            return got
        if status != 401 or not got or "session" not in got:
            raise StackError(f"registering {user}: {status} {got}")
        done = set(got.get("completed", []))
        stage = next(s for s in got["flows"][0]["stages"] if s not in done)
        auth = {"type": stage, "session": got["session"]}
        if stage == "m.login.registration_token":
            auth["token"] = REG_TOKEN
        status, got = http("POST", url, {"username": user, "password": password, "auth": auth})
    raise StackError(f"registering {user}: no end to the stages ({status} {got})")


def own_browser_pids(marker):
    """Processes whose command line holds marker (our chromium's profile dir): ours alone."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    pids.append(int(d))
        except OSError:
            pass
    return pids


class Page:
    def __init__(self, work, artifacts):
        self.profile = os.path.join(work, "chromium-profile")
        self.artifacts = artifacts
        self.step = 0
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  f"--user-data-dir={self.profile}", "--window-size=1100,900", "--no-first-run"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.service = Service(CHROMEDRIVER, log_output=os.path.join(work, "chromedriver.log"))
        self.driver = webdriver.Chrome(service=self.service, options=opts)

    def shot(self, name):
        self.step += 1
        path = os.path.join(self.artifacts, f"{self.step:02d}-{name}.png")
        self.driver.save_screenshot(path)
        print(f"screenshot {path}")

    def el(self, id_):
        return self.driver.find_element(By.ID, id_)

    def visible(self, id_):
        return self.el(id_).is_displayed()

    def wait(self, what, pred):
        return wait_for(what, pred, deadline_s=60, step_s=0.2)

    def close(self):
        try:
            self.driver.quit()
        finally:
            # Whatever quit left behind (a crashed driver leaves its browser): by process ID.
            for pid in own_browser_pids(self.profile):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_for("chromium to exit", lambda: not own_browser_pids(self.profile), deadline_s=30)


def run(work, artifacts):
    hs = ListeningPeer("mr-test-homeserver", [
        binary("MR_HS_BIN"), "--listen", "127.0.0.1:0", "--server-name", "localhost",
        "--registration-token", REG_TOKEN], os.path.join(work, "homeserver.log"))
    redis = Redis(work)
    procs = [hs, redis]
    page = None
    try:
        for p in procs:
            p.start()
        port = free_port()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MINDROOM_STORE_URL": f"redis://127.0.0.1:{redis.port}/0",
               "MATRIX_HOMESERVER": hs.url, "MATRIX_SERVER_NAME": "localhost",
               "MATRIX_REGISTRATION_TOKEN": REG_TOKEN, "MINDROOM_PROVISIONING_POLL_INTERVAL_SECONDS": "1"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        prov = Proc("mindroom-provisioning", [binary("MINDROOM_PROVISIONING_BIN"), "--listen", f"127.0.0.1:{port}"],
                    os.path.join(work, "provisioning.log"), env)
        prov.start()
        procs.append(prov)
        base = f"http://127.0.0.1:{port}"
        wait_for("provisioning /healthz", lambda: healthy(base, prov))
        register(hs.url, "alice", "alice-password-1")

        page = Page(work, artifacts)
        d = page.driver
        d.get(f"{base}/")
        page.wait("the sign-in form", lambda: page.visible("sign-in"))
        page.shot("sign-in")

        # A wrong password is refused with the homeserver's words, and nothing is stored.
        page.el("username").send_keys("alice")
        page.el("password").send_keys("wrong")
        page.el("password-submit").click()
        page.wait("the sign-in error", lambda: page.visible("error") and "Sign-in failed" in page.el("error").text)
        page.shot("wrong-password")
        assert d.execute_script("return sessionStorage.length") == 0

        page.el("password").clear()
        page.el("password").send_keys("alice-password-1")
        page.el("password-submit").click()
        page.wait("the signed-in view", lambda: page.visible("pairing"))
        assert page.el("who-id").text == "@alice:localhost", page.el("who-id").text
        page.wait("the empty list", lambda: page.visible("no-connections"))
        # The token is the tab's only: not in localStorage, not in a cookie.
        assert d.execute_script("return localStorage.length") == 0
        assert d.execute_script("return document.cookie") == ""
        token = d.execute_script("return sessionStorage.getItem('mindroom.matrix_token')")
        assert token, "no access token in sessionStorage"
        page.shot("signed-in")

        page.el("generate").click()
        code = page.wait("a pair code", lambda: re.fullmatch(
            r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}", page.el("pair-code").text) and page.el("pair-code").text)
        assert page.el("pair-status").text == "pending"
        countdown = page.el("countdown").text
        assert re.fullmatch(r"expires in (10:00|9:[0-5]\d)", countdown), countdown
        assert page.el("pair-command").text == f"mindroom connect --pair-code {code}"
        page.shot("code-pending")

        # The person runs the CLI on their machine.
        local = os.path.join(work, "local")
        os.makedirs(local)
        cli_env = dict(env, HOME=local)
        mindroom = binary("MINDROOM_BIN")
        subprocess.run([mindroom, "config", "init", "--path", local], env=cli_env, check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = subprocess.run([mindroom, "connect", "--pair-code", code, "--provisioning-url", base,
                              "--client-name", CLIENT_NAME, "--path", os.path.join(local, "config.yaml")],
                             env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        assert out.returncode == 0, f"mindroom connect: {out.returncode}\n{out.stdout}"
        dotenv = {}
        with open(os.path.join(local, ".env")) as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("=", 1)
                    dotenv[k] = v
        ns = dotenv["MINDROOM_NAMESPACE"]

        page.wait("status connected", lambda: page.el("pair-status").text == "connected")
        assert CLIENT_NAME in page.el("countdown").text
        row = page.wait("the connection listed", lambda: d.find_elements(By.CSS_SELECTOR, "#connections-body tr"))
        cells = [c.text for c in row[0].find_elements(By.TAG_NAME, "td")]
        assert cells[0] == CLIENT_NAME and cells[1] == ns and cells[4] == "active", cells
        assert cells[2] and cells[3] == "never", cells
        page.shot("connected")

        # The install uses its credentials: "last used" follows on the next load.
        creds = {"X-Local-MindRoom-Client-Id": dotenv["MINDROOM_LOCAL_CLIENT_ID"],
                 "X-Local-MindRoom-Client-Secret": dotenv["MINDROOM_LOCAL_CLIENT_SECRET"]}
        agent = {"homeserver": hs.url, "username": f"mindroom_mind_{ns}", "password": "agent-pw-1"}
        status, got = http("POST", f"{base}/v1/local-mindroom/register-agent", agent, creds)
        assert status == 200, (status, got)
        d.refresh()
        page.wait("the list after a reload", lambda: page.visible("connections"))
        row = d.find_elements(By.CSS_SELECTOR, "#connections-body tr")
        last_used = row[0].find_elements(By.TAG_NAME, "td")[3].text
        assert last_used != "never", last_used

        d.find_element(By.CSS_SELECTOR, "#connections-body button.revoke").click()
        alert = page.wait("the revoke confirmation", lambda: _alert(d))
        alert.accept()
        page.wait("the connection revoked", lambda: d.find_elements(By.CSS_SELECTOR, "#connections-body tr.revoked"))
        state = d.find_element(By.CSS_SELECTOR, "#connections-body tr td:nth-child(5)").text
        assert state.startswith("revoked"), state
        page.shot("revoked")
        status, got = http("POST", f"{base}/v1/local-mindroom/register-agent", agent, creds)
        assert status == 403 and got["detail"].startswith("Connection revoked"), (status, got)

        page.el("sign-out").click()
        page.wait("the sign-in form again", lambda: page.visible("sign-in"))
        assert d.execute_script("return sessionStorage.length") == 0
        page.shot("signed-out")

        # Signing in with an access token instead of a password.
        page.el("token-form").find_element(By.XPATH, "..").find_element(By.TAG_NAME, "summary").click()
        page.el("token").send_keys(token)
        page.el("token-submit").click()
        page.wait("the signed-in view by token", lambda: page.visible("pairing"))
        assert page.el("who-id").text == "@alice:localhost"
        page.shot("token-sign-in")

        # The page ran under its Content-Security-Policy without a violation.
        problems = [e["message"] for e in d.get_log("browser")
                    if any(w in e["message"] for w in ("Content Security Policy", "Refused to", "Uncaught"))]
        assert not problems, problems
        prov.stop()
        procs.remove(prov)
        print("pairing page: sign-in, pair code, connect, list, revoke, sign-out all passed")
        return 0
    finally:
        if page:
            page.close()
        for p in reversed(procs):
            p.kill()


def _alert(d):
    try:
        return d.switch_to.alert
    except Exception:  # NoAlertPresentException until it shows
        return None


def main():
    missing = [n for n, ok in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER),
                               ("python3-selenium", webdriver)) if not ok]
    if missing:
        print(f"SKIPPED: {', '.join(missing)} not installed (make deps installs them)")
        return SKIP
    artifacts = os.path.abspath("pairing_page_artifacts")
    shutil.rmtree(artifacts, ignore_errors=True)
    os.makedirs(artifacts)
    work = tempfile.mkdtemp(prefix="mr-pairing-page-")
    try:
        return run(work, artifacts)
    except Exception:
        traceback.print_exc()
        for name in ("provisioning.log", "homeserver.log", "chromedriver.log"):
            print(f"--- {name}:\n{e2e_stack.tail(os.path.join(work, name))}")
        return 1
    finally:
        if os.environ.get("MR_KEEP_TMP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
