"""Billing sinks through the outbox, against receivers written for the test: a CloudEvents ingester, a
Stripe-shaped meter-events endpoint that checks the form and deduplicates by identifier, and a webhook
verifier that checks the HMAC signature. Deliveries go through 503s, a timeout and a SIGKILL of the
gateway before anything was delivered; every record arrives, each id once in the receivers' deduplicated
views; a permanently refused record lands in the dead-letter list and is delivered after a retry."""
import csv
import hashlib
import hmac
import io
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai

from conftest import ADMIN_TOKEN, BIN, ROOT, _cli, _free_port, new_tenant, start_gateway

STRIPE_KEY = "fake-stripe-secret-for-tests"
HOOK_SECRET = "fake-hook-secret-for-tests"


class Receivers(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port):
        super().__init__(("127.0.0.1", port), Handler)
        self.lock = threading.Lock()
        self.mode = "down"      # down: every request 503; flaky: `failures` 503s and one stall, then up; up
        self.failures = 0
        self.stalls = 0
        self.cloudevents = Counter()   # (source, id) -> deliveries
        self.stripe = Counter()        # identifier -> deliveries
        self.hooks = Counter()         # record id -> deliveries
        self.problems = []             # anything a receiver found wrong with a request


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status, body=b"{}", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        server = self.server
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with server.lock:
            mode = server.mode
            if mode == "flaky" and server.stalls > 0:
                server.stalls -= 1
                mode = "stall"
            elif mode == "flaky" and server.failures > 0:
                server.failures -= 1
                mode = "down"
        if mode == "down":
            return self._answer(503, b'{"error":"unavailable"}', [("retry-after", "1")])
        if mode == "stall":
            time.sleep(2.5)  # past the sinks' 1 s timeout: the gateway gives up and retries
            return self._answer(503)
        try:
            if self.path == "/ce":
                self._cloudevents(body)
            elif self.path == "/v1/billing/meter_events":
                return self._stripe(body)
            elif self.path == "/hook":
                self._hook(body)
            else:
                return self._answer(404)
        except AssertionError as error:
            with server.lock:
                server.problems.append(f"{self.path}: {error}")
            return self._answer(400, json.dumps({"error": str(error)}).encode())
        self._answer(200)

    def _cloudevents(self, body):
        assert self.headers["content-type"] == "application/cloudevents-batch+json", self.headers["content-type"]
        events = json.loads(body)
        assert isinstance(events, list) and events
        for e in events:
            assert e["specversion"] == "1.0" and e["type"] == "gateway.billing.record", e
            assert e["source"] == "test-gateway" and e["subject"] == e["data"]["tenant_id"], e
            assert e["id"] == e["data"]["record_id"] and e["time"] == e["data"]["started_at"], e
        with self.server.lock:
            for e in events:
                self.server.cloudevents[(e["source"], e["id"])] += 1

    def _stripe(self, body):
        assert self.headers["authorization"] == f"Bearer {STRIPE_KEY}"
        assert self.headers["content-type"] == "application/x-www-form-urlencoded"
        form = dict(urllib.parse.parse_qsl(body.decode(), strict_parsing=True))
        assert set(form) == {"event_name", "identifier", "timestamp", "payload[stripe_customer_id]",
                             "payload[value]"}, form
        assert form["event_name"] == "llm_tokens"
        assert form["payload[value]"].isdigit() and int(form["payload[value]"]) > 0, form
        assert time.time() - 35 * 86400 < int(form["timestamp"]) <= time.time() + 300, form
        assert self.headers["idempotency-key"] == form["identifier"]
        if form["payload[stripe_customer_id]"] == "cus_refuse":
            return self._answer(400, b'{"error":{"message":"No such customer: cus_refuse"}}')
        with self.server.lock:
            self.server.stripe[form["identifier"]] += 1
        return self._answer(200)

    def _hook(self, body):
        stamp = self.headers["x-gateway-timestamp"]
        expected = hmac.new(HOOK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert self.headers["x-gateway-signature"] == f"t={stamp},v1={expected}", "bad signature"
        assert abs(time.time() - int(stamp)) < 300
        record = json.loads(body)
        assert record["record_id"] == self.headers["x-gateway-event-id"]
        with self.server.lock:
            self.server.hooks[record["record_id"]] += 1


def _config(folder, port):
    shutil.copytree(os.path.join(ROOT, "policies"), folder)
    path = os.path.join(folder, "gateway.yaml")
    with open(path, "a") as f:
        f.write(f"""
billing_sinks:
  - {{name: meter, kind: cloudevents, url: "http://127.0.0.1:{port}/ce", source: test-gateway, timeout_ms: 1000}}
  - {{name: stripe, kind: stripe, url: "http://127.0.0.1:{port}", secret_env: TEST_STRIPE_KEY,
     event_name: llm_tokens, value: tokens, timeout_ms: 1000}}
  - {{name: hook, kind: webhook, url: "http://127.0.0.1:{port}/hook", secret_env: TEST_HOOK_SECRET, timeout_ms: 1000}}
""")
    return path


def _start(data, port, config):
    os.environ["TEST_STRIPE_KEY"] = STRIPE_KEY
    os.environ["TEST_HOOK_SECRET"] = HOOK_SECRET
    try:
        return start_gateway(data, port, config=config)
    finally:
        del os.environ["TEST_STRIPE_KEY"], os.environ["TEST_HOOK_SECRET"]


def _records(data, config):
    out = subprocess_out([BIN, "export", "--from", "2020-01-01", "--to", "2100-01-01", "--data", data,
                          "--config", config])
    return list(csv.DictReader(io.StringIO(out)))


def subprocess_out(args):
    import subprocess
    return subprocess.run(args, cwd=ROOT, check=True, capture_output=True, timeout=60).stdout.decode()


def _wait(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_every_record_reaches_every_sink_once_despite_failures_and_a_sigkill():
    work = tempfile.mkdtemp(prefix="gw-sinks-")
    data = os.path.join(work, "data")
    receivers = Receivers(_free_port())
    threading.Thread(target=receivers.serve_forever, daemon=True).start()
    config = _config(os.path.join(work, "policies"), receivers.server_address[1])
    proc = None
    try:
        key_a = new_tenant(data, "sink-a")
        key_b = new_tenant(data, "sink-b")
        _cli(data, "tenants", "update", "sink-a", "--stripe-customer", "cus_A", "--config", config)
        _cli(data, "tenants", "update", "sink-b", "--stripe-customer", "cus_refuse", "--config", config)
        port = _free_port()
        proc = _start(data, port, config)
        url = f"http://127.0.0.1:{port}"
        for secret, n in ((key_a, 25), (key_b, 8)):
            client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
            for i in range(n):
                client.chat.completions.create(
                    model="mock-gpt-4o-mini", messages=[{"role": "user", "content": f"bill me {i}"}])
        # The receivers are down: nothing is delivered before the gateway dies.
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc = None
        assert not receivers.cloudevents and not receivers.stripe and not receivers.hooks

        records = _records(data, config)
        ids = {r["record_id"] for r in records}
        assert len(ids) == 33
        # Back up, but flaky: five 503s and two stalls past the timeout first.
        with receivers.lock:
            receivers.mode, receivers.failures, receivers.stalls = "flaky", 5, 2
        proc = _start(data, port, config)
        a_ids = {r["record_id"] for r in records if r["tenant_name"] == "sink-a"}
        b_ids = ids - a_ids
        _wait(lambda: {i for _, i in receivers.cloudevents} == ids and set(receivers.hooks) == ids
              and set(receivers.stripe) == a_ids, 60, "every record at every sink")
        assert not receivers.problems, receivers.problems
        assert receivers.failures == 0 and receivers.stalls == 0, "the failures were not all met"
        assert all(source == "test-gateway" for source, _ in receivers.cloudevents)

        # The refused customer's records are dead letters, visible in the CLI, the admin API and /metrics.
        def status():
            out = subprocess_out([BIN, "sinks", "status", "--json", "--data", data, "--config", config])
            return {s["name"]: s for s in json.loads(out)["data"]}
        _wait(lambda: status()["stripe"]["dead"] == len(b_ids), 30, "dead letters")
        # A delivery the receiver took but answered after the sink's timeout is pending until its retry
        # (which the receiver sees as a repeat): wait for that, rather than catch it in flight.
        _wait(lambda: status()["meter"]["pending"] == 0 and status()["hook"]["pending"] == 0, 30, "nothing pending")
        request = urllib.request.Request(url + "/admin/v1/sinks/stripe/dead",
                                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            dead = json.loads(r.read())["data"]
        assert {d["record_id"] for d in dead} == b_ids and all(d["last_status"] == 400 for d in dead)
        with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert f'gateway_sink_dead_letters_records{{sink="stripe"}} {len(b_ids)}' in metrics or \
            f'gateway_sink_dead_lettered_total{{sink="stripe"}} {len(b_ids)}' in metrics, metrics

        # Fixed, then retried from the CLI: delivered.
        _cli(data, "tenants", "update", "sink-b", "--stripe-customer", "cus_B", "--config", config)
        out = subprocess_out([BIN, "sinks", "retry", "--sink", "stripe", "--data", data, "--config", config])
        assert out.startswith(f"{len(b_ids)} ")
        _wait(lambda: set(receivers.stripe) == ids, 30, "retried dead letters")
        assert status()["stripe"]["dead"] == 0
        assert not receivers.problems, receivers.problems
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)
        receivers.shutdown()


def test_focus_export_billed_cost_sums_to_the_charged_cost(gateway):
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0)
    for i in range(5):
        client.chat.completions.create(model="mock-qwen", messages=[{"role": "user", "content": f"focus {i}"}])
    span = ["--from", "2020-01-01", "--to", "2100-01-01"]
    records = list(csv.DictReader(io.StringIO(gateway.cli_raw("export", *span))))
    focus = list(csv.DictReader(io.StringIO(gateway.cli_raw("export", *span, "--format", "focus"))))
    assert focus and {"BilledCost", "BillingCurrency", "ChargePeriodStart", "SubAccountId", "ConsumedUnit"} <= set(focus[0])
    charged, billed = Counter(), Counter()
    for r in records:
        if r["cost"]:
            charged[r["currency"]] += Decimal(r["charged_cost"] or "0")
    for row in focus:
        billed[row["BillingCurrency"]] += Decimal(row["BilledCost"])
        assert row["ChargeCategory"] == "Usage" and row["ConsumedUnit"] == "Tokens"
    assert billed == charged
    assert len(focus) == sum(1 for r in records if r["cost"])
