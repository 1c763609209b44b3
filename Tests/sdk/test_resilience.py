"""Provider resilience on a live gateway with the built-in mock provider: retries before the first byte,
a fallback chain past a provider that is down, a key pool with one key rate-limited, and every attempt
accounted for (one record per request, its failed attempts exported with it), with nothing left reserved."""
import csv
import io
import json
import os
import shutil
import socket
import tempfile
import urllib.request

import openai
import pytest
import yaml

from conftest import ROOT, _cli, _free_port, new_tenant, start_gateway


def _closed_port():
    # Bound and closed: nothing listens there, so a connect is refused at once.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def resilient():
    work = tempfile.mkdtemp(prefix="gw-resilience-")
    folder = os.path.join(work, "policies")
    shutil.copytree(os.path.join(ROOT, "policies"), folder)
    path = os.path.join(folder, "gateway.yaml")
    config = yaml.safe_load(open(path))
    config["providers"] += [
        {"name": "pool", "kind": "mock", "api_keys_env": ["POOL_KEY_A", "POOL_KEY_B", "POOL_KEY_C"]},
        {"name": "down", "kind": "openai", "base_url": f"http://127.0.0.1:{_closed_port()}/v1",
         "api_key_env": "DOWN_PROVIDER_KEY", "timeouts": {"connect_ms": 500}},
    ]
    config["models"] += [
        {"name": "pooled-gpt", "provider": "pool", "tokenizer": "o200k_base", "price_id": "mock-gpt-4o-mini"},
        {"name": "down-gpt", "provider": "down", "tokenizer": "o200k_base", "price_id": "mock-claude",
         "fallbacks": ["mock-qwen"]},
    ]
    with open(path, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    data = os.path.join(work, "data")
    key = new_tenant(data, "resilient")
    os.environ.update(POOL_KEY_A="pool-secret-a", POOL_KEY_B="pool-secret-b", POOL_KEY_C="pool-secret-c",
                      DOWN_PROVIDER_KEY="down-secret")
    port = _free_port()
    try:
        proc = start_gateway(data, port, config=path)
    finally:
        for name in ("POOL_KEY_A", "POOL_KEY_B", "POOL_KEY_C", "DOWN_PROVIDER_KEY"):
            del os.environ[name]
    url = f"http://127.0.0.1:{port}"
    try:
        yield url, key, data, path
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log = proc.stdout.read() if proc.stdout else ""
        for secret in ("pool-secret-a", "pool-secret-b", "down-secret"):
            assert secret not in log, "a provider key was logged"


def _records(data, path, *extra):
    out = _cli(data, "export", "--from", "2020-01-01", "--to", "2100-01-01", "--config", path, *extra)
    return list(csv.DictReader(io.StringIO(out)))


def _client(url, key, headers=None):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, default_headers=headers or {})


def test_two_503s_then_200_is_served_once_and_billed_once_with_three_attempts(resilient):
    url, key, data, path = resilient
    raw = _client(url, key, {"x-mock-fail-times": "2"}).chat.completions.with_raw_response.create(
        model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "retry me"}])
    assert raw.http_response.status_code == 200
    request_id = raw.headers["x-request-id"]
    mine = [r for r in _records(data, path) if r["request_id"] == request_id]
    assert len(mine) == 1, "one record per request"
    record = mine[0]
    assert record["status"] == "completed" and record["attempts"] == "3" and record["model"] == "mock-gpt-4o-mini"
    assert int(record["prompt_tokens"]) > 0 and record["cost"]
    attempts = [a for a in _records(data, path, "--attempts") if a["request_id"] == request_id]
    assert [a["attempt"] for a in attempts] == ["1", "2", "3"]
    assert [a["status"] for a in attempts] == ["503", "503", "200"]
    assert [a["served"] for a in attempts] == ["false", "false", "true"]


def test_a_chain_falls_back_to_its_second_model_when_the_first_is_down_and_bills_its_price(resilient):
    url, key, data, path = resilient
    raw = _client(url, key).chat.completions.with_raw_response.create(
        model="down-gpt", messages=[{"role": "user", "content": "fall back please"}])
    assert raw.http_response.status_code == 200
    record = [r for r in _records(data, path) if r["request_id"] == raw.headers["x-request-id"]][0]
    # Served, and billed, by mock-qwen: its provider, its model, its price (in CNY).
    assert record["model"] == "mock-qwen" and record["provider"] == "mock" and record["currency"] == "CNY"
    assert record["price_entry"].startswith("mock-qwen@") and record["attempts"] == "2"
    attempts = [a for a in _records(data, path, "--attempts") if a["request_id"] == raw.headers["x-request-id"]]
    assert attempts[0]["provider"] == "down" and attempts[0]["status"] == "" and attempts[0]["served"] == "false"
    assert attempts[0]["error"] in ("upstream_unreachable", "upstream_unavailable", "upstream_timeout")
    assert attempts[1]["provider"] == "mock" and attempts[1]["served"] == "true"


def test_a_key_pool_keeps_serving_when_one_key_is_rate_limited(resilient):
    url, key, data, path = resilient
    client = _client(url, key, {"x-mock-429-key": "POOL_KEY_A"})
    ids = []
    for i in range(24):
        raw = client.chat.completions.with_raw_response.create(
            model="pooled-gpt", messages=[{"role": "user", "content": f"pool {i}"}])
        assert raw.http_response.status_code == 200
        ids.append(raw.headers["x-request-id"])
    records = {r["request_id"]: r for r in _records(data, path) if r["request_id"] in ids}
    assert len(records) == 24
    served_by = [records[i]["upstream_key_id"] for i in ids]
    assert "POOL_KEY_A" not in served_by
    assert set(served_by) == {"POOL_KEY_B", "POOL_KEY_C"}
    # Only requests that met the 429 needed a second attempt; after it, key A rests until its reset.
    assert sum(1 for i in ids if records[i]["attempts"] == "2") <= 1
    with urllib.request.urlopen(url + "/readyz", timeout=10) as r:
        ready = json.loads(r.read())
    assert ready["providers"]["pool"]["keys"] == {"POOL_KEY_A": "resting", "POOL_KEY_B": "ok", "POOL_KEY_C": "ok"}
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert 'gateway_provider_key_usable_state{key="POOL_KEY_A",provider="pool"} 0' in metrics or \
        'gateway_provider_key_usable_state{provider="pool",key="POOL_KEY_A"} 0' in metrics, \
        [line for line in metrics.splitlines() if "key_usable" in line]


def test_nothing_is_retried_after_the_first_byte_and_nothing_stays_reserved(resilient):
    url, key, data, path = resilient
    client = _client(url, key, {"x-mock-cut-after": "2", "x-mock-chunks": "8"})
    raw = client.chat.completions.with_raw_response.create(
        model="mock-gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "cut me"}])
    request_id = raw.headers["x-request-id"]
    with pytest.raises(Exception):
        for _ in raw.parse():
            pass
    record = [r for r in _records(data, path) if r["request_id"] == request_id][0]
    assert record["status"] == "upstream_cut" and record["attempts"] == "1"
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert "gateway_reservations_outstanding_requests 0" in metrics
    # One record per request, whatever path it took.
    counts = {}
    for r in _records(data, path):
        counts[r["request_id"]] = counts.get(r["request_id"], 0) + 1
    assert max(counts.values()) == 1
