"""Delivery lag of billing sinks at about 1,000 records/s: a release gateway with a CloudEvents sink and a
webhook sink, driven by wrk at a paced rate (CONNS connections, each pausing DELAY_MS between requests),
and receivers that note when each record arrives. Lag = arrival - the record's ended_at.

    .venv/bin/python Benchmarks/sink_lag.py            # 10 s at ~1,000 requests/s
    DURATION=20 CONNS=10 DELAY_MS=10 .venv/bin/python Benchmarks/sink_lag.py
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.environ.get("GATEWAY_BIN", os.path.join(ROOT, ".build", "release", "gateway"))
DURATION = int(os.environ.get("DURATION", "10"))
CONNS = int(os.environ.get("CONNS", "10"))
DELAY_MS = os.environ.get("DELAY_MS", "8")
arrivals = {"ce": {}, "hook": {}}
lock = threading.Lock()


def stamp(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Handler(BaseHTTPRequestHandler):
    # Keep-alive: the webhook sink sends one request per record.
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        now = time.time()
        with lock:
            if self.path == "/ce":
                for e in json.loads(body):
                    arrivals["ce"].setdefault(e["id"], now - stamp(e["data"]["ended_at"]))
            else:
                r = json.loads(body)
                arrivals["hook"].setdefault(r["record_id"], now - stamp(r["ended_at"]))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    if not os.path.exists(BIN):
        subprocess.run(["flock", "/tmp/build.lock", "swift", "build", "-c", "release", "--product", "gateway"],
                       cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="gw-sinklag-")
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rport = server.server_address[1]
    shutil.copytree(os.path.join(ROOT, "policies"), os.path.join(work, "policies"))
    config = os.path.join(work, "policies", "gateway.yaml")
    with open(config) as f:
        text = f.read().replace("server:\n", "server:\n  ledger_sync: normal\n", 1)
    with open(config, "w") as f:
        f.write(text + f"""
billing_sinks:
  - {{name: meter, kind: cloudevents, url: "http://127.0.0.1:{rport}/ce"}}
  - {{name: hook, kind: webhook, url: "http://127.0.0.1:{rport}/hook", secret_env: LAG_HOOK_SECRET}}
""")
    data = os.path.join(work, "data")
    cli = lambda *a: subprocess.run([BIN, *a, "--data", data, "--config", config], cwd=ROOT, check=True,
                                    capture_output=True, text=True).stdout
    cli("tenants", "create", "lag")
    key = cli("keys", "create", "--tenant", "lag").strip().splitlines()[-1]
    port = free_port()
    env = dict(os.environ, LAG_HOOK_SECRET="bench-secret")
    gw = subprocess.Popen([BIN, "serve", "--data", data, "--config", config, "--port", str(port)], cwd=ROOT,
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        out = subprocess.run(["wrk", "-t1", f"-c{CONNS}", f"-d{DURATION}s", "-s", "Benchmarks/sink-lag.lua",
                              f"http://127.0.0.1:{port}/v1/chat/completions"], cwd=ROOT, capture_output=True,
                             text=True, env=dict(os.environ, KEY=key, DELAY_MS=DELAY_MS)).stdout
        bench = [l for l in out.splitlines() if l.startswith("BENCH")][0]
        records = int(float(bench.split("rps=")[1].split()[0]) * DURATION)
        deadline = time.time() + 60
        expected = len(cli("export", "--from", "2020-01-01", "--to", "2100-01-01").strip().splitlines()) - 1
        while time.time() < deadline and min(len(arrivals["ce"]), len(arrivals["hook"])) < expected:
            time.sleep(0.2)
        print(f"{bench}  (~{records} requests in {DURATION} s; {expected} records in the ledger)")
        for sink in ("ce", "hook"):
            lags = sorted(arrivals[sink].values())
            q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))] * 1000
            print(f"{sink:5} delivered {len(lags)}/{expected}  lag p50 {q(0.5):.0f} ms  p99 {q(0.99):.0f} ms"
                  f"  max {lags[-1] * 1000:.0f} ms  mean {statistics.mean(lags) * 1000:.0f} ms")
    finally:
        gw.terminate()
        gw.wait(timeout=10)
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
