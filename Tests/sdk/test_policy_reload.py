"""Policy files reload on SIGHUP and on change, without dropping requests in flight; a bad file is refused."""
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request

from conftest import ROOT, _free_port, new_tenant, start_gateway

LIMITED = """
default_plan: payg
plans:
  payg:
    rate_limits:
      key: {requests_per_minute: 1}
"""
OPEN = """
default_plan: payg
plans:
  payg: {}
"""


def _chat(port, key, headers=None):
    body = json.dumps({"model": "mock-gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": bool(headers)})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode(), method="POST")
    req.add_header("Authorization", f"Bearer {key}")
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_reload_on_sighup_and_on_change_keeps_requests_in_flight():
    data = tempfile.mkdtemp(prefix="gw-reload-")
    policies = os.path.join(data, "policies")
    shutil.copytree(os.path.join(ROOT, "policies"), policies)
    plans = os.path.join(policies, "plans.yaml")
    key = new_tenant(data, "reload-tenant")
    port = _free_port()
    proc = start_gateway(data, port, config=os.path.join(policies, "gateway.yaml"))
    try:
        for _ in range(3):
            assert _chat(port, key)[0] == 200

        # A stream that spans the reload must finish normally.
        slow = {}
        t = threading.Thread(target=lambda: slow.update(r=_chat(port, key, {"x-mock-chunks": "15", "x-mock-delay-ms": "100"})))
        t.start()
        time.sleep(0.2)
        with open(plans, "w") as f:
            f.write(LIMITED)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        # The window counts from when the limit exists: one request passes, the next is over.
        assert _chat(port, key)[0] == 200
        status, body = _chat(port, key)
        assert status == 429 and json.loads(body)["error"]["code"] == "rate_limit_exceeded"
        t.join(timeout=30)
        assert slow["r"][0] == 200 and slow["r"][1].endswith("data: [DONE]\n\n")

        # An invalid file is refused and the limit stays in force.
        with open(plans, "w") as f:
            f.write("default_plan: nowhere\nplans:\n  payg: {}\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert _chat(port, key)[0] == 429

        # A valid change is picked up without a signal.
        with open(plans, "w") as f:
            f.write(OPEN)
        deadline = time.time() + 10
        while time.time() < deadline and _chat(port, key)[0] != 200:
            time.sleep(0.3)
        assert _chat(port, key)[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    log = proc.stdout.read()
    assert "policy reload refused" in log and "no plan named 'nowhere'" in log
    assert "policies reloaded" in log
