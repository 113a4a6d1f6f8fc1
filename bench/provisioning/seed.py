"""seed.py -- N Matrix users on the test homeserver, each with one pending pair code from
mindroom-provisioning (a user has one live code at a time: N users for N codes).
Usage: seed.py HOMESERVER_URL REG_TOKEN PROVISIONING_URL N OUT  (one code a line)"""

import concurrent.futures
import json
import sys
import urllib.error
import urllib.request


def post(url, body, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def one(hs, token, prov, i):
    url = f"{hs}/_matrix/client/v3/register"
    user = {"username": f"bench{i}", "password": f"pw-bench-{i}"}
    status, got = post(url, user)
    while status == 401:
        stage = next(s for s in got["flows"][0]["stages"] if s not in got.get("completed", []))
        auth = {"type": stage, "session": got["session"], "token": token}
        status, got = post(url, dict(user, auth=auth))
    if status != 200:
        raise RuntimeError(f"register bench{i}: {status} {got}")
    status, got = post(f"{prov}/v1/local-mindroom/pair/start", None,
                       {"Authorization": f"Bearer {got['access_token']}"})
    if status != 200:
        raise RuntimeError(f"pair/start for bench{i}: {status} {got}")
    return got["pair_code"]


def main():
    hs, token, prov, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: one(hs, token, prov, i), range(n)))
    with open(out, "w") as f:
        f.write("\n".join(codes) + "\n")


if __name__ == "__main__":
    main()
