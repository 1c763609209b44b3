"""After a restart the policy counters equal the ledger, because they are rebuilt from it."""
import csv
import io
import json
import os
import shutil
import signal
import tempfile
import urllib.request
from decimal import Decimal

from conftest import ADMIN_TOKEN, ROOT, _cli, _free_port, new_tenant, start_gateway

PLANS = """
default_plan: tight
plans:
  tight:
    free_quota:
      period: month
      unit: tokens
      schedule: [{from: 2025-01-01, amount: 300}]
    budget: {limit: "1.00", currency: USD, period: month, mode: hard}
"""


def _get(port, path, token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _chat(port, key, n):
    body = json.dumps({"model": "mock-gpt-4o-mini", "max_tokens": 60, "messages": [{"role": "user", "content": f"request {n}"}]})
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode(), method="POST",
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200


def _pools(port, tenant):
    quota = _get(port, f"/admin/v1/tenants/{tenant}/quota", ADMIN_TOKEN)
    return {p["pool"]: (p["used"], p["reserved"]) for p in quota["pools"]}


def test_counters_after_a_restart_equal_the_ledger():
    data = tempfile.mkdtemp(prefix="gw-rebuild-")
    policies = os.path.join(data, "policies")
    shutil.copytree(os.path.join(ROOT, "policies"), policies)
    with open(os.path.join(policies, "plans.yaml"), "w") as f:
        f.write(PLANS)
    config = os.path.join(policies, "gateway.yaml")
    key = new_tenant(data, "rebuild-tenant")
    port = _free_port()
    proc = start_gateway(data, port, config=config)
    try:
        for n in range(16):
            _chat(port, key, n)
        before = _pools(port, "rebuild-tenant")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert before["free"] == ("300", "0"), "the 300 free tokens are used up"
    assert Decimal(before["budget"][0]) > 0 and before["budget"][1] == "0.000000000"

    proc = start_gateway(data, port, config=config)
    try:
        after = _pools(port, "rebuild-tenant")
        rows = list(csv.DictReader(io.StringIO(_cli(data, "export", "--from", "2020-01-01", "--to", "2100-01-01"))))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert after == before
    assert sum(int(r["free_units"]) for r in rows) == 300
    assert sum(Decimal(r["budget_charge"]) for r in rows) == Decimal(before["budget"][0])
    # Each record's split adds up: free + charged = cost.
    for r in rows:
        assert Decimal(r["free_cost"]) + Decimal(r["charged_cost"]) == Decimal(r["cost"])
    assert any(Decimal(r["free_cost"]) > 0 and Decimal(r["charged_cost"]) > 0 for r in rows), "one request crosses"
