"""SIGKILL under concurrent load: every response a client received completely has its billing record."""
import csv
import http.client
import io
import json
import os
import shutil
import signal
import tempfile
import threading
import time

import pytest

from conftest import ROOT, _free_port, new_tenant, start_gateway, _cli

WORKERS = 12
LOAD_SECONDS = 2.0


def _one_request(port, key, stream, n):
    body = {"model": "mock-gpt-4o-mini", "messages": [{"role": "user", "content": f"request {n}"}]}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if stream:
        body["stream"] = True
        headers.update({"x-mock-chunks": "8", "x-mock-delay-ms": "3"})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        resp = conn.getresponse()
        rid = resp.getheader("x-request-id")
        data = resp.read()  # raises IncompleteRead if the body did not end cleanly
        if resp.status != 200:
            return None
        text = data.decode()
        if stream:
            return rid if text.endswith("data: [DONE]\n\n") else None
        json.loads(text)
        return rid
    finally:
        conn.close()


def _policies(data, ledger_sync):
    """The default policies, with `server.ledger_sync` set."""
    folder = os.path.join(data, "policies")
    shutil.copytree(os.path.join(ROOT, "policies"), folder)
    path = os.path.join(folder, "gateway.yaml")
    with open(path) as f:
        text = f.read()
    assert "\nserver:\n" in text
    with open(path, "w") as f:
        f.write(text.replace("\nserver:\n", f"\nserver:\n  ledger_sync: {ledger_sync}\n", 1))
    return path


# `normal` commits on the event loops (and leaves checkpoints to commits made off them): a record is in
# the WAL before its response completes either way.
@pytest.mark.parametrize("ledger_sync", ["full", "normal"])
def test_sigkill_loses_no_record_of_a_completed_response(ledger_sync):
    data = tempfile.mkdtemp(prefix="gw-kill-")
    key = new_tenant(data, "kill-tenant")
    port = _free_port()
    config = _policies(data, ledger_sync)
    proc = start_gateway(data, port, config=config)
    completed, failed = [], [0]
    lock = threading.Lock()
    stop = threading.Event()

    def worker(w):
        n = 0
        while not stop.is_set():
            n += 1
            try:
                rid = _one_request(port, key, stream=(n % 2 == 0), n=w * 100000 + n)
            except (OSError, http.client.HTTPException):
                rid = None
            with lock:
                if rid:
                    completed.append(rid)
                else:
                    failed[0] += 1
            if rid is None and proc.poll() is not None:
                return

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    time.sleep(LOAD_SECONDS)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    with lock:
        done = list(completed)
    assert len(done) > 50, f"too little load before the kill: {len(done)} completed"

    # Restart on the same data directory; the ledger must hold every completed response.
    proc = start_gateway(data, port, config=config)
    try:
        out = _cli(data, "export", "--from", "2020-01-01", "--to", "2100-01-01", "--tenant", "kill-tenant")
        rows = list(csv.DictReader(io.StringIO(out)))
        by_request = {}
        for r in rows:
            by_request.setdefault(r["request_id"], []).append(r)
        missing = [rid for rid in done if rid not in by_request]
        assert not missing, f"{len(missing)} of {len(done)} completed responses have no record"
        assert all(len(v) == 1 for v in by_request.values()), "a request has more than one record"
        assert all(by_request[rid][0]["status"] == "completed" for rid in done)
        print(f"\ncompleted before SIGKILL: {len(done)}, failed/cut: {failed[0]}, records: {len(rows)}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
