"""Budget alerts: each threshold fires once per period as a log line, a metric and a webhook POST that is
retried with backoff when the receiver fails, without holding up requests."""
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

from conftest import ROOT, _free_port, new_tenant, start_gateway


class Receiver(BaseHTTPRequestHandler):
    received = []
    attempts = 0
    lock = threading.Lock()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Receiver.lock:
            Receiver.attempts += 1
            fail = Receiver.attempts == 1  # the first delivery fails: the gateway must retry
            if not fail:
                Receiver.received.append(body)
        self.send_response(500 if fail else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_thresholds_fire_once_each_with_webhook_retries():
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    plans = f"""
default_plan: soft
alerts:
  webhook_url: http://127.0.0.1:{server.server_port}/hook
plans:
  soft:
    budget: {{limit: "0.000100", currency: USD, period: month, mode: soft, alerts: [50, 100]}}
"""
    data = tempfile.mkdtemp(prefix="gw-alerts-")
    policies = os.path.join(data, "policies")
    shutil.copytree(os.path.join(ROOT, "policies"), policies)
    with open(os.path.join(policies, "plans.yaml"), "w") as f:
        f.write(plans)
    key = new_tenant(data, "alert-tenant")
    port = _free_port()
    proc = start_gateway(data, port, config=os.path.join(policies, "gateway.yaml"))
    try:
        # mock-gpt-4o-mini costs 0.40 / 1.60 USD per million: about 0.00004 USD a request, so the
        # 0.0001 soft budget crosses 50 % on the 2nd request and 100 % on the 3rd; all are admitted.
        for n in range(8):
            body = json.dumps({"model": "mock-gpt-4o-mini", "messages": [{"role": "user", "content": f"spend {n}"}]})
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode(),
                                         method="POST", headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            started = time.time()
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
            assert time.time() - started < 2, "a failing webhook must not hold up requests"
        deadline = time.time() + 10
        while time.time() < deadline and len(Receiver.received) < 2:
            time.sleep(0.1)
        time.sleep(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.shutdown()
    assert sorted(a["percent"] for a in Receiver.received) == [50, 100]
    assert Receiver.attempts == 3, "one failed delivery, retried, then one more alert"
    assert all(a["type"] == "budget.threshold_crossed" and a["mode"] == "soft" for a in Receiver.received)
    assert 'gateway_budget_alerts_total{percent="50"} 1' in metrics
    assert 'gateway_budget_alerts_total{percent="100"} 1' in metrics
    log = proc.stdout.read()
    assert log.count("budget threshold crossed") == 2
