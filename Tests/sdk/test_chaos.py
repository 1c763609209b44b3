"""Chaos: 1,000 requests whose clients drop at random moments while the upstream stalls, cuts and errs.

Afterwards every request the gateway admitted has exactly one record with the status its fate calls
for, nothing stays reserved, every concurrency slot is free again, and the process never died.
"""
import json
import os
import random
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

from conftest import ADMIN_TOKEN, BIN, ROOT, _cli, _free_port, new_tenant, start_gateway

REQUESTS = 1000
WORKERS = 32
SEED = int(os.environ.get("CHAOS_SEED", "20261207"))

PLANS = """
default_plan: chaos
plans:
  chaos:
    free_quota:
      period: month
      unit: tokens
      schedule:
        - {from: 2025-01-01, amount: 20000}
    budget: {limit: "1000.00", currency: USD, period: month, mode: hard}
    rate_limits:
      key: {concurrent: 24}
"""


def _config(emulator_port: int, plans: str) -> str:
    return f"""
server:
  host: 127.0.0.1
  port: 0
  header_timeout_ms: 2000
  idle_timeout_ms: 5000
providers:
  - {{name: mock, kind: mock, mock: {{reply_words: 40, stream_chunks: 8}}}}
  - name: emu
    kind: openai
    base_url: http://127.0.0.1:{emulator_port}/v1
    api_key_env: CHAOS_UPSTREAM_KEY
    timeouts: {{connect_ms: 1000, first_byte_ms: 3000, idle_read_ms: 1500}}
models:
  - {{name: mock-gpt-4o-mini, provider: mock, tokenizer: o200k_base}}
  - {{name: gpt-4o-mini, provider: emu, tokenizer: o200k_base, price_id: openai/gpt-4o-mini}}
price_book: {os.path.join(ROOT, "policies", "prices.yaml")}
plans: {plans}
"""


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def _request_bytes(key: str, body: dict, headers: dict) -> bytes:
    payload = json.dumps(body).encode()
    head = [
        "POST /v1/chat/completions HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Connection: close",
    ] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def _drop(sock: socket.socket, rst: bool) -> None:
    if rst:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _plan(rng: random.Random, i: int, keys: list) -> dict:
    """What request i does: upstream fault and client behaviour."""
    upstream = rng.choice(["ok", "ok", "ok", "stall_head", "stall_mid", "cut", "error"])
    client = rng.choice(["read", "read", "drop_before_head", "drop_mid"])
    if client == "drop_before_head":
        upstream = "stall_head"  # so that the drop surely comes while the gateway waits
    return {
        "i": i,
        "key": rng.choice(keys),
        "model": rng.choice(["mock-gpt-4o-mini", "gpt-4o-mini"]),
        "stream": rng.random() < 0.6,
        "upstream": upstream,
        "client": client,
        "rst": rng.random() < 0.5,
        "error": rng.choice([500, 503, 429, 400]),
        "after": rng.randint(1, 3),
        "drop_bytes": rng.randint(1, 400),
    }


def _run_one(port: int, p: dict) -> dict:
    headers = {"x-mock-chunks": "8", "x-mock-delay-ms": "5"}
    if p["upstream"] == "stall_head":
        headers["x-mock-stall-ms"] = "700"
    elif p["upstream"] == "stall_mid":
        headers.update({"x-mock-stall-after": str(p["after"]), "x-mock-stall-ms": "300"})
    elif p["upstream"] == "cut":
        headers["x-mock-cut-after"] = str(p["after"])
    elif p["upstream"] == "error":
        headers["x-mock-status"] = str(p["error"])
    body = {
        "model": p["model"], "max_tokens": 64, "stream": p["stream"],
        "messages": [{"role": "user", "content": f"chaos request {p['i']}"}],
    }
    out = {"plan": p, "status": None, "request_id": None, "complete": False}
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    try:
        sock.sendall(_request_bytes(p["key"], body, headers))
        if p["client"] == "drop_before_head":
            time.sleep(0.25)
            _drop(sock, p["rst"])
            return out
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if p["client"] == "drop_mid" and len(data) >= p["drop_bytes"]:
                _drop(sock, p["rst"])
                break
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        if lines and lines[0].startswith("HTTP/1.1 "):
            out["status"] = int(lines[0].split()[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "x-request-id":
                out["request_id"] = value.strip()
        if p["client"] == "read" and out["status"] is not None:
            out["complete"] = _complete(head.decode(errors="replace"), rest)
        return out
    except OSError:
        return out
    finally:
        try:
            sock.close()
        except OSError:
            pass


def _complete(head: str, body: bytes) -> bool:
    """Whether a response ended cleanly (the whole Content-Length, or a chunked body's last chunk)."""
    lower = head.lower()
    if "transfer-encoding: chunked" in lower:
        return body.endswith(b"0\r\n\r\n")
    for line in lower.split("\r\n"):
        if line.startswith("content-length:"):
            return len(body) == int(line.split(":")[1])
    return True


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_chaos_every_admitted_request_has_one_record_and_nothing_leaks():
    data = tempfile.mkdtemp(prefix="gw-chaos-")
    plans_path = os.path.join(data, "plans.yaml")
    with open(plans_path, "w") as f:
        f.write(PLANS)
    keys = [new_tenant(data, f"chaos-{t}") for t in range(3)]

    emulator_port = _free_port()
    emulator = subprocess.Popen(
        [BIN, "emulator", "--port", str(emulator_port)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = _free_port()
    config_path = os.path.join(data, "gateway.yaml")
    with open(config_path, "w") as f:
        f.write(_config(emulator_port, plans_path))
    os.environ["CHAOS_UPSTREAM_KEY"] = "chaos-upstream-secret"
    proc = None
    try:
        _wait_port(emulator_port)
        proc = start_gateway(data, port, config=config_path)
        url = f"http://127.0.0.1:{port}"
        rng = random.Random(SEED)
        plans = [_plan(rng, i, keys) for i in range(REQUESTS)]
        results = [None] * REQUESTS
        cursor = [0]
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    i = cursor[0]
                    cursor[0] += 1
                if i >= REQUESTS:
                    return
                results[i] = _run_one(port, plans[i])

        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        elapsed = time.time() - started
        assert proc.poll() is None, "the gateway died"

        # Records of dropped requests are written as the gateway notices; give it a moment.
        deadline = time.time() + 10
        records = []
        while time.time() < deadline:
            out = _cli(data, "export", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "jsonl")
            records = [json.loads(line) for line in out.splitlines() if line.strip()]
            if len(records) >= REQUESTS and _metric(url, "gateway_reservations_outstanding_requests") == 0:
                break
            time.sleep(0.2)

        by_id = {}
        for r in records:
            assert r["request_id"] not in by_id, f"two records for {r['request_id']}"
            by_id[r["request_id"]] = r
        # Every request was sent whole before any drop, and every drop came while the gateway held it, so
        # every request has exactly one record.
        assert len(records) == REQUESTS, f"{len(records)} records for {REQUESTS} requests"

        allowed = {
            "ok": {"completed"}, "stall_head": {"completed"}, "stall_mid": {"completed"},
            "cut": {"upstream_cut"}, "error": {"upstream_error"},
        }
        checked = 0
        for res in results:
            p = res["plan"]
            rid = res["request_id"]
            if rid is None:
                continue
            r = by_id.get(rid)
            assert r is not None, f"no record for {rid} ({p})"
            if p["client"] == "read" and res["status"] is not None:
                if res["status"] == 429 and p["upstream"] != "error":
                    assert r["status"] == "rejected", (p, r)
                else:
                    assert r["status"] in allowed[p["upstream"]], (p, res["status"], r["status"], r["error"])
                checked += 1
            elif p["client"] == "drop_mid":
                assert r["status"] in {"client_disconnected", "completed", "upstream_cut", "upstream_error",
                                       "rejected"}, (p, r)
        dropped_early = [
            by_id_r for by_id_r in records if by_id_r["status"] == "client_disconnected" and by_id_r["http_status"] == 499
        ]
        n_early = sum(1 for p in plans if p["client"] == "drop_before_head")
        assert checked > 300
        assert len(dropped_early) >= n_early * 0.9, f"{len(dropped_early)} of {n_early} early drops recorded as 499"

        # Nothing stays reserved, nothing leaked, nothing expired or orphaned.
        assert _metric(url, "gateway_reservations_outstanding_requests") == 0
        assert _metric(url, "gateway_reservations_expired_total") == 0
        assert _metric(url, "gateway_settlements_orphaned_total") == 0
        for t in range(3):
            request = urllib.request.Request(
                f"{url}/admin/v1/tenants/chaos-{t}/quota", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            with urllib.request.urlopen(request, timeout=5) as r:
                quota = json.loads(r.read())
            assert quota["pools"], quota
            for pool in quota["pools"]:
                assert pool["reserved"] in ("0", "0.000000000"), quota
        # Every concurrency slot is free: a key's full concurrency at once all get through.
        key = keys[0]
        ok = [0]

        def full():
            res = _run_one(port, {
                "i": -1, "key": key, "model": "mock-gpt-4o-mini", "stream": False, "upstream": "stall_head",
                "client": "read", "rst": False, "error": 0, "after": 0, "drop_bytes": 0})
            with lock:
                ok[0] += res["status"] == 200
        burst = [threading.Thread(target=full) for _ in range(24)]
        for t in burst:
            t.start()
        for t in burst:
            t.join(timeout=30)
        assert ok[0] == 24, f"only {ok[0]} of 24 concurrent requests admitted after the chaos"
        assert proc.poll() is None
        print(f"chaos: {REQUESTS} requests in {elapsed:.1f}s, {checked} checked whole, {n_early} dropped early")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        emulator.terminate()
        emulator.wait(timeout=10)
