"""The reports against the ledger on a live gateway: the inflation report's totals equal the export's, the
what-if totals equal a hand repricing of every exported record under the other book, and the admin API, the
CLI and a tenant's own endpoint agree."""
import csv
import io
import json
import os
import tempfile
import urllib.request
from collections import defaultdict
from decimal import Decimal

import openai
import pytest

from conftest import new_tenant

SPAN = ["--from", "2020-01-01", "--to", "2100-01-01"]
# A competitor's list: mock-gpt-4o-mini in CNY with its own cached price, mock-claude in USD; mock-qwen missing.
OTHER_BOOK = """prices:
  mock-gpt-4o-mini:
    - {effective_from: 2020-01-01, currency: CNY, input: "1.5", cached_input: "0.5", output: "6"}
  mock-claude:
    - {effective_from: 2020-01-01, currency: USD, input: "2.00", output: "8.00"}
"""


@pytest.fixture(scope="module")
def seeded(gateway):
    """Traffic from two tenants; returns the second tenant's key."""
    other = new_tenant(gateway.data, "reports-b")
    for secret in (gateway.key, other):
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=secret, max_retries=0)
        for i in range(4):
            client.chat.completions.create(
                model="mock-gpt-4o-mini", messages=[{"role": "user", "content": f"count these words {i} " * (i + 1)}])
            stream = client.chat.completions.create(
                model="mock-qwen", stream=True, messages=[{"role": "user", "content": "stream please " * (i + 2)}])
            for _ in stream:
                pass
        # A refused request is a record but not a request.
        try:
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        except openai.APIStatusError:
            pass
    return other


def _export(gateway):
    text = gateway.cli_raw("export", *SPAN, "--format", "csv")
    return list(csv.DictReader(io.StringIO(text)))


def _rate(text):
    """Nano-units per million tokens, from a prices.yaml decimal."""
    return int(Decimal(text) * 1_000_000_000)


def _reprice(record, entry):
    """The billing rounding: every component times its rate, summed, divided by 10^6 once, half up."""
    prompt, cached = int(record["prompt_tokens"]), int(record["cached_tokens"])
    write = int(record["cache_write_tokens"])
    uncached = max(0, prompt - cached - write)
    total = (uncached * _rate(entry["input"]) + cached * _rate(entry.get("cached_input", entry["input"]))
             + write * _rate(entry.get("cache_write", entry["input"]))
             + int(record["completion_tokens"]) * _rate(entry["output"]))
    return (total + 500_000) // 1_000_000


def test_inflation_totals_equal_the_export_and_parts_sum_to_each_change(gateway, seeded):
    records = _export(gateway)
    rows = list(csv.DictReader(io.StringIO(gateway.cli_raw("report", "inflation", *SPAN, "--by", "day", "--format", "csv"))))
    models = [r for r in rows if r["model"] != "(all)"]
    expected = defaultdict(Decimal)
    for r in records:
        expected[r["currency"]] += Decimal(r["cost"] or "0")
    got = defaultdict(Decimal)
    for r in models:
        got[r["currency"]] += Decimal(r["cost"])
    assert got == {c: v for c, v in expected.items()}
    assert sum(int(r["requests"]) for r in models) == sum(1 for r in records if r["status"] != "rejected")
    for column in ("prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens"):
        assert sum(int(r[column]) for r in models) == sum(int(r[column]) for r in records), column
    for change in (r for r in rows if r["model"] == "(all)"):
        parts = sum(Decimal(change[k]) for k in ("change_volume", "change_mix", "change_intensity", "change_price"))
        assert parts == Decimal(change["cost_change"])

    # The admin API gives the same rows as the CLI.
    request = urllib.request.Request(
        gateway.url + "/admin/v1/reports/inflation?from=2020-01-01&to=2100-01-01&by=day",
        headers={"Authorization": f"Bearer {gateway.admin_token}"})
    with urllib.request.urlopen(request, timeout=30) as r:
        api = json.loads(r.read())
    cli = json.loads(gateway.cli_raw("report", "inflation", *SPAN, "--by", "day", "--format", "json"))
    assert api["rows"] == cli["rows"]


def test_whatif_totals_equal_a_hand_repricing_of_the_export(gateway, seeded):
    other = seeded
    records = [r for r in _export(gateway) if r["status"] == "completed"]
    book = {"mock-gpt-4o-mini": {"currency": "CNY", "input": "1.5", "cached_input": "0.5", "output": "6"},
            "mock-claude": {"currency": "USD", "input": "2.00", "output": "8.00"}}
    path = os.path.join(tempfile.mkdtemp(prefix="gw-whatif-"), "other.yaml")
    with open(path, "w") as f:
        f.write(OTHER_BOOK)
    rows = list(csv.DictReader(io.StringIO(gateway.cli_raw("report", "whatif", "--prices", path, *SPAN, "--format", "csv"))))
    assert rows
    by_hand = defaultdict(lambda: [0, Decimal(0), 0, 0])
    for r in records:
        entry = book.get(r["model"])
        cell = by_hand[(r["tenant_id"], r["model"])]
        cell[0] += 1
        cell[1] += Decimal(r["cost"] or "0")
        if entry:
            cell[2] += _reprice(r, entry)
        else:
            cell[3] += 1
    assert {(r["tenant_id"], r["model"]) for r in rows} == set(by_hand)
    for r in rows:
        records_n, actual, whatif_nanos, unpriced = by_hand[(r["tenant_id"], r["model"])]
        assert int(r["records"]) == records_n
        assert Decimal(r["actual_cost"]) == actual
        assert Decimal(r["whatif_cost"]) == Decimal(whatif_nanos) / Decimal(1_000_000_000)
        assert int(r["unpriced_records"]) == unpriced
        assert r["whatif_currency"] == (book[r["model"]]["currency"] if r["model"] in book else "")

    # The tenant's own view shows only its own rows.
    request = urllib.request.Request(
        gateway.url + "/v1/usage/whatif?from=2020-01-01&to=2100-01-01&at=2030-01-01",
        headers={"Authorization": f"Bearer {other}"})
    with urllib.request.urlopen(request, timeout=30) as r:
        own = json.loads(r.read())
    assert own["rows"] and len({row["tenant_id"] for row in own["rows"]}) == 1
    mine = [r for r in records if r["tenant_name"] == "reports-b"]
    assert {row["tenant_id"] for row in own["rows"]} == {mine[0]["tenant_id"]}
