"""Three gateway replicas on one PostgreSQL (a throwaway cluster started here): a tenant made through one
replica's admin API and a key made by the CLI work on all of them, every answered request has its record in
the shared ledger, and a key revoked by one CLI call gets 401 from every replica within a second."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import ADMIN_TOKEN, BIN, ROOT, _free_port, start_gateway

REPLICAS = 3


def _call(url, path, body=None, token=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method or ("POST" if data else "GET"))
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture()
def cluster():
    work = tempfile.mkdtemp(prefix="gw-pgrep-")
    # Its own folder under /tmp: the server runs as another user, who cannot enter `work`.
    pg_dir = tempfile.mkdtemp(prefix="gw-pg-")
    port = _free_port()
    url = subprocess.run(
        [os.path.join(ROOT, "scripts", "pg-cluster.sh"), "start", pg_dir, str(port)],
        check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    ).stdout.strip().splitlines()[-1]
    procs = []
    try:
        yield url, work, procs, pg_dir, port
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run([os.path.join(ROOT, "scripts", "pg-cluster.sh"), "stop", pg_dir], check=False)
        shutil.rmtree(work, ignore_errors=True)


def test_three_replicas_share_keys_ledger_and_revocation(cluster):
    url, work, procs, _, _ = cluster
    os.environ["GATEWAY_DATABASE_URL"] = url
    try:
        ports = [_free_port() for _ in range(REPLICAS)]
        for i, port in enumerate(ports):
            # Each replica has its own (unused) data directory: the shared state is in PostgreSQL.
            procs.append(start_gateway(os.path.join(work, f"replica-{i}"), port))
    finally:
        del os.environ["GATEWAY_DATABASE_URL"]
    urls = [f"http://127.0.0.1:{p}" for p in ports]

    status, body = _call(urls[0], "/admin/v1/tenants", {"name": "shared"}, ADMIN_TOKEN)
    assert status == 201, body
    # The key comes from the CLI, on the same database.
    out = subprocess.run([BIN, "keys", "create", "--tenant", "shared", "--name", "k", "--database-url", url],
                         cwd=ROOT, check=True, capture_output=True, text=True, timeout=60).stdout
    secret = out.strip().splitlines()[-1]
    key_id = out.split("key id: ")[1].split()[0]

    chat = {"model": "mock-gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    answered = []
    for i in range(30):
        status, body = _call(urls[i % REPLICAS], "/v1/chat/completions", chat, secret)
        assert status == 200, body
        answered.append(json.loads(body)["id"])
    assert len(answered) == 30

    # Every answered request is in the shared ledger, whichever replica served it and whichever reads it.
    for u in urls:
        status, body = _call(u, "/admin/v1/billing/export?from=2000-01-01&to=2100-01-01&format=jsonl",
                             token=ADMIN_TOKEN)
        assert status == 200, body
        records = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        assert len(records) == 30
        assert len({r["request_id"] for r in records}) == 30
        assert all(r["status"] == "completed" for r in records)

    # Revoked through one CLI call.
    subprocess.run([BIN, "keys", "revoke", key_id, "--database-url", url], cwd=ROOT, check=True,
                   capture_output=True, timeout=60)
    revoked_at = time.monotonic()
    pending = set(range(REPLICAS))
    while pending and time.monotonic() - revoked_at < 1.0:
        for i in list(pending):
            status, _ = _call(urls[i], "/v1/chat/completions", chat, secret)
            if status == 401:
                pending.discard(i)
        time.sleep(0.02)
    assert not pending, f"replicas {sorted(pending)} still accepted the key 1 s after its revocation"
    for proc in procs:
        assert proc.poll() is None


def test_database_gone_503_store_unavailable_then_recovers(cluster):
    url, work, procs, pg_dir, pg_port = cluster
    script = os.path.join(ROOT, "scripts", "pg-cluster.sh")
    os.environ["GATEWAY_DATABASE_URL"] = url
    try:
        port = _free_port()
        procs.append(start_gateway(os.path.join(work, "replica"), port))
    finally:
        del os.environ["GATEWAY_DATABASE_URL"]
    base = f"http://127.0.0.1:{port}"
    subprocess.run([BIN, "tenants", "create", "t", "--database-url", url], cwd=ROOT, check=True,
                   capture_output=True, timeout=60)
    secret = subprocess.run([BIN, "keys", "create", "--tenant", "t", "--database-url", url], cwd=ROOT,
                            check=True, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[-1]
    chat = {"model": "mock-gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
    assert _call(base, "/v1/chat/completions", chat, secret)[0] == 200
    assert _call(base, "/readyz")[0] == 200

    subprocess.run([script, "pause", pg_dir], check=True, timeout=60)
    started = time.monotonic()
    status, _ = _call(base, "/readyz")
    assert status == 503
    assert time.monotonic() - started < 4, "readiness must not hang on a database that is gone"
    # Once the background check has seen it (every second, 2 s to answer), requests are refused at once
    # in the client's format, and none is admitted that could not be recorded.
    time.sleep(3.5)
    started = time.monotonic()
    status, body = _call(base, "/v1/chat/completions", chat, secret)
    assert status == 503, body
    assert json.loads(body)["error"]["code"] == "store_unavailable"
    assert time.monotonic() - started < 2

    subprocess.run([script, "resume", pg_dir, str(pg_port)], check=True, timeout=60)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _call(base, "/readyz")[0] != 200:
        time.sleep(0.2)
    assert _call(base, "/readyz")[0] == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _call(base, "/v1/chat/completions", chat, secret)[0] != 200:
        time.sleep(0.3)
    assert _call(base, "/v1/chat/completions", chat, secret)[0] == 200
    assert procs[0].poll() is None
