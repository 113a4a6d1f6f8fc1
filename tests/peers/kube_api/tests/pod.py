"""pod.py -- the container test_kube_run.py's Deployments run: it reports what it was started
with (argv, environment, the files of its --config, its working directory) to
$REPORT_DIR/$HOSTNAME.json, serves GET /readyz on --listen (200 once $REPORT_DIR/$HOSTNAME.ready
exists), and on SIGTERM writes $HOSTNAME.term and exits 0, unless $IGNORE_TERM is set."""

import http.server
import json
import os
import signal
import sys

argv = sys.argv[1:]
listen = argv[argv.index("--listen") + 1]
config = argv[argv.index("--config") + 1] if "--config" in argv else None
report = os.environ["REPORT_DIR"]
me = os.environ["HOSTNAME"]


def on_term(sig, frame):
    try:
        with open(os.path.join(report, me + ".term"), "w") as f:
            f.write(str(os.getpid()))
    finally:
        os._exit(0)


signal.signal(signal.SIGTERM, signal.SIG_IGN if os.environ.get("IGNORE_TERM") else on_term)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ready = os.path.exists(os.path.join(report, me + ".ready"))
        self.send_response(200 if self.path == "/readyz" and ready else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


host, port = listen.rsplit(":", 1)
server = http.server.HTTPServer((host, int(port)), Handler)
files = {}
if config:
    with open(config) as f:
        files[config] = f.read()
tmp = os.path.join(report, me + ".json.tmp")
with open(tmp, "w") as f:
    json.dump({"pid": os.getpid(), "argv": argv, "env": dict(os.environ), "files": files, "cwd": os.getcwd()}, f)
os.rename(tmp, os.path.join(report, me + ".json"))
server.serve_forever()
