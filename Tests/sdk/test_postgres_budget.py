"""A hard budget across three gateway replicas on one PostgreSQL: a burst of several hundred requests spread
over the replicas never spends past the budget, every answered request has its record, and the shared
counters equal the ledger. A second run SIGKILLs one replica mid-burst: every answer it gave is in the
ledger, and the reservations it held are released by the others once they expire."""
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from decimal import Decimal

from conftest import ADMIN_TOKEN, BIN, ROOT, _free_port, start_gateway
from test_postgres_replicas import _call, cluster  # noqa: F401 (the fixture)

REPLICAS = 3
LIMIT = Decimal("0.01")
# Requests without max_tokens are estimated (and capped upstream) at the plan's 64 output tokens.
PLANS = """default_plan: metered
plans:
  metered:
    max_output_tokens: 64
"""


def _policies(work, ttl=10):
    """The default policies with the plans above and a short reservation expiry (the test waits it out)."""
    folder = os.path.join(work, "policies")
    shutil.copytree(os.path.join(ROOT, "policies"), folder)
    with open(os.path.join(folder, "plans.yaml"), "w") as f:
        f.write(PLANS)
    path = os.path.join(folder, "gateway.yaml")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("server:\n", f"server:\n  reservation_ttl_seconds: {ttl}\n", 1))
    return path


def _start(url, work, procs, config):
    os.environ["GATEWAY_DATABASE_URL"] = url
    try:
        ports = [_free_port() for _ in range(REPLICAS)]
        for i, port in enumerate(ports):
            procs.append(start_gateway(os.path.join(work, f"replica-{i}"), port, config=config))
    finally:
        del os.environ["GATEWAY_DATABASE_URL"]
    return [f"http://127.0.0.1:{p}" for p in ports]


def _tenant(url, urls):
    status, body = _call(urls[0], "/admin/v1/tenants", {"name": "burst"}, ADMIN_TOKEN)
    assert status == 201, body
    tenant = json.loads(body)["id"]
    status, body = _call(urls[1], f"/admin/v1/tenants/{tenant}/budget",
                         {"limit": str(LIMIT), "currency": "USD", "period": "month", "mode": "hard"},
                         ADMIN_TOKEN, method="PUT")
    assert status == 200, body
    out = subprocess.run([BIN, "keys", "create", "--tenant", "burst", "--database-url", url],
                         cwd=ROOT, check=True, capture_output=True, text=True, timeout=60).stdout
    return tenant, out.strip().splitlines()[-1]


def _chat(base, secret, headers=None, timeout=60):
    """(status, request id, error code); status None when the connection failed (the replica died)."""
    body = json.dumps({"model": "mock-gpt-4o-mini",
                       "messages": [{"role": "user", "content": "Say something about budgets."}]}).encode()
    request = urllib.request.Request(base + "/v1/chat/completions", data=body, method="POST")
    request.add_header("content-type", "application/json")
    request.add_header("authorization", f"Bearer {secret}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
            assert payload["choices"][0]["message"]["content"]
            return response.status, response.headers["x-request-id"], None
    except urllib.error.HTTPError as error:
        payload = json.loads(error.read())
        return error.code, error.headers.get("x-request-id"), payload["error"].get("code")
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None, None, None


def _ledger(base):
    status, body = _call(base, "/admin/v1/billing/export?from=2000-01-01&to=2100-01-01&format=jsonl",
                         token=ADMIN_TOKEN)
    assert status == 200, body
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


def _budget_pool(base, tenant):
    status, body = _call(base, f"/admin/v1/tenants/{tenant}/quota", token=ADMIN_TOKEN)
    assert status == 200, body
    return next(p for p in json.loads(body)["pools"] if p["pool"] == "budget")


def _charged(records):
    return sum((Decimal(r["budget_charge"]) for r in records if r["budget_charge"] is not None), Decimal(0))


def test_hard_budget_holds_under_a_burst_across_three_replicas(cluster):  # noqa: F811
    url, work, procs, _, _ = cluster
    urls = _start(url, work, procs, _policies(work))
    tenant, secret = _tenant(url, urls)

    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        outcomes = list(pool.map(lambda i: _chat(urls[i % REPLICAS], secret), range(450)))
    served = [rid for status, rid, _ in outcomes if status == 200]
    refused = [code for status, _, code in outcomes if status == 429]
    assert all(status in (200, 429) for status, _, _ in outcomes), outcomes
    assert served and refused, (len(served), len(refused))
    assert set(refused) == {"insufficient_quota"}

    records = _ledger(urls[2])
    completed = {r["request_id"] for r in records if r["status"] == "completed"}
    assert completed == set(served)
    spent = _charged(records)
    # Prompt counts are exact for this model and output is capped at what was reserved, so the bound on
    # overspend is zero.
    assert spent <= LIMIT, spent
    # And the budget was used: what remains is less than one request's estimate (about 0.000106 USD).
    assert LIMIT - spent < Decimal("0.0002"), spent
    for base in urls:
        pool_ = _budget_pool(base, tenant)
        assert Decimal(pool_["used"]) == spent
        assert Decimal(pool_["reserved"]) == 0
    for proc in procs:
        assert proc.poll() is None


def test_sigkilled_replica_loses_no_acknowledged_record_and_its_reservations_expire(cluster):  # noqa: F811
    url, work, procs, _, _ = cluster
    urls = _start(url, work, procs, _policies(work, ttl=30))
    tenant, secret = _tenant(url, urls)

    def one(i):
        if i < 6:
            # In flight on the replica that dies: their reservations are held when it is killed.
            return 0, _chat(urls[0], secret, {"x-mock-stall-ms": "30000"})
        return i % REPLICAS, _chat(urls[i % REPLICAS], secret)

    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        futures = [pool.submit(one, i) for i in range(300)]
        time.sleep(1.0)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        results = [f.result() for f in futures]

    answered = {rid for _, (status, rid, _) in results if status == 200}
    from_dead = {rid for replica, (status, rid, _) in results if replica == 0 and status == 200}
    lost = [1 for replica, (status, _, _) in results if replica == 0 and status is None]
    assert from_dead, "the killed replica answered nothing before it died; the test proves nothing"
    assert lost, "no request was cut by the kill; the test proves nothing"

    records = _ledger(urls[1])
    completed = {r["request_id"] for r in records if r["status"] == "completed"}
    assert answered <= completed, answered - completed
    assert _charged(records) <= LIMIT

    # The dead replica's reservations still hold budget until they expire, then another replica releases
    # them (expiry 30 s, swept every 7.5 s; the burst above takes a few seconds, so they are still held).
    assert Decimal(_budget_pool(urls[1], tenant)["reserved"]) > 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pool_ = _budget_pool(urls[2], tenant)
        if Decimal(pool_["reserved"]) == 0:
            break
        time.sleep(0.5)
    assert Decimal(pool_["reserved"]) == 0, pool_
    records = _ledger(urls[2])
    assert Decimal(pool_["used"]) == _charged(records)
    for proc in procs[1:]:
        assert proc.poll() is None
