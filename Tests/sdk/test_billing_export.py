"""Billing through the official SDKs, read back from the CLI and HTTP exports with Python's csv module."""
import csv
import datetime
import io
import json
import urllib.error
import urllib.request
from decimal import Decimal

import anthropic
import openai

from conftest import new_tenant

TOMORROW = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)).strftime("%Y-%m-%d")
RANGE = ("2020-01-01", TOMORROW)


def _admin_get(gateway, path, token=None):
    req = urllib.request.Request(gateway.url + path, headers={"Authorization": f"Bearer {token or gateway.admin_token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.headers, r.read().decode()


def _rows(text):
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _traffic(gateway):
    """A mix of endpoints, streamed and not, in USD and CNY; returns {request id: usage the client saw}."""
    oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0)
    an = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)
    seen = {}
    raw = oa.chat.completions.with_raw_response.create(
        model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "Bill me, exactly."}])
    r = raw.parse()
    seen[raw.headers["x-request-id"]] = (r.usage.prompt_tokens, r.usage.completion_tokens)
    raw = oa.chat.completions.with_raw_response.create(
        model="mock-qwen", messages=[{"role": "user", "content": "用人民币计费"}])
    r = raw.parse()
    seen[raw.headers["x-request-id"]] = (r.usage.prompt_tokens, r.usage.completion_tokens)
    raw = oa.embeddings.with_raw_response.create(model="mock-embedding", input=["a, \"quoted\" text", "two"])
    r = raw.parse()
    seen[raw.headers["x-request-id"]] = (r.usage.prompt_tokens, 0)
    # A stream without include_usage: the client sees no usage, the ledger still bills the upstream's.
    with oa.chat.completions.with_streaming_response.create(
        model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "stream it"}], stream=True
    ) as resp:
        rid = resp.headers["x-request-id"]
        chunks = list(resp.parse())
    assert all(c.usage is None for c in chunks)
    seen[rid] = None
    raw = an.messages.with_raw_response.create(
        model="mock-claude", max_tokens=50, messages=[{"role": "user", "content": "Hello"}])
    m = raw.parse()
    seen[raw.headers["x-request-id"]] = (m.usage.input_tokens, m.usage.output_tokens)
    return seen


def test_exports_carry_every_request_and_add_up(gateway):
    seen = _traffic(gateway)
    csv_text = gateway.cli_raw("export", "--from", RANGE[0], "--to", RANGE[1], "--tenant", "sdk-tenant")
    rows = _rows(csv_text)
    assert csv_text.startswith("record_id,request_id,tenant_id,tenant_name,")
    assert "\r\n" in csv_text
    by_request = {r["request_id"]: r for r in rows}
    for rid, usage in seen.items():
        row = by_request[rid]
        assert row["status"] == "completed" and row["http_status"] == "200"
        assert row["usage_source"] == "upstream"
        assert row["tenant_name"] == "sdk-tenant"
        if usage is not None:
            assert (int(row["prompt_tokens"]), int(row["completion_tokens"])) == usage
        assert row["currency"] in ("USD", "CNY") and row["price_entry"]
        assert Decimal(row["cost"]) >= 0 and len(row["cost"].split(".")[1]) == 9
        assert row["started_at"].endswith("Z") and "T" in row["started_at"]
    streamed = by_request[[rid for rid, u in seen.items() if u is None][0]]
    assert streamed["stream"] == "true" and int(streamed["completion_tokens"]) > 0
    currencies = {r["currency"] for r in rows}
    assert {"USD", "CNY"} <= currencies

    # The HTTP export is the same document; JSON Lines carries the same records.
    status, headers, http_csv = _admin_get(
        gateway, f"/admin/v1/billing/export?from={RANGE[0]}&to={RANGE[1]}&tenant=sdk-tenant&format=csv")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert http_csv == csv_text
    _, _, jsonl = _admin_get(
        gateway, f"/admin/v1/billing/export?from={RANGE[0]}&to={RANGE[1]}&tenant=sdk-tenant&format=jsonl")
    records = [json.loads(line) for line in jsonl.splitlines()]
    assert [r["record_id"] for r in records] == [r["record_id"] for r in rows]
    assert [r["cost"] for r in records] == [r["cost"] or None for r in rows]


def test_usage_totals_equal_the_sum_of_exported_rows(gateway):
    _traffic(gateway)
    month = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m")
    usage = json.loads(gateway.cli("usage", "--tenant", "sdk-tenant", "--period", month, "--json"))
    rows = _rows(gateway.cli_raw("export", "--from", usage["from"], "--to", usage["to"], "--tenant", "sdk-tenant"))
    assert rows
    for total in usage["totals"]:
        mine = [r for r in rows if r["currency"] == total["currency"]]
        assert total["requests"] == len(mine)
        assert total["prompt_tokens"] == sum(int(r["prompt_tokens"]) for r in mine)
        assert total["completion_tokens"] == sum(int(r["completion_tokens"]) for r in mine)
        assert Decimal(total["cost"]) == sum(Decimal(r["cost"] or "0") for r in mine)
    assert sum(t["requests"] for t in usage["totals"]) == len(rows)


def test_csv_quoting_round_trips_hostile_names(gateway):
    name = 'Acme, "Inc"\nLine two'
    key = new_tenant(gateway.data, name)
    oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    raw = oa.chat.completions.with_raw_response.create(model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    rid = raw.headers["x-request-id"]
    rows = _rows(gateway.cli_raw("export", "--from", RANGE[0], "--to", RANGE[1]))
    mine = [r for r in rows if r["request_id"] == rid]
    assert len(mine) == 1 and mine[0]["tenant_name"] == name
    assert all(len(r) == len(rows[0]) for r in rows)


def test_admin_export_needs_the_admin_token(gateway):
    for token in ("wrong-token", gateway.key):
        try:
            _admin_get(gateway, f"/admin/v1/billing/export?from={RANGE[0]}&to={RANGE[1]}", token=token)
            raise AssertionError("expected 401")
        except urllib.error.HTTPError as e:
            assert e.code == 401
            assert json.loads(e.read())["error"]["code"] == "invalid_admin_token"
    try:
        _admin_get(gateway, "/admin/v1/billing/export?from=yesterday&to=2030-01-01")
        raise AssertionError("expected 400")
    except urllib.error.HTTPError as e:
        assert e.code == 400 and json.loads(e.read())["error"]["param"] == "from"
