"""The admin API against docs/openapi.yaml: every documented operation is called on a live gateway and
each response is validated against the schema the file gives for its status code."""
import json
import os
import time
import urllib.error
import urllib.request

import jsonschema
import openai
import yaml

from conftest import ROOT

SPEC = yaml.safe_load(open(os.path.join(ROOT, "docs", "openapi.yaml")))
CALLED = set()


def _schema_for(path, method, status, content_type="application/json"):
    op = SPEC["paths"][path][method]
    response = op["responses"].get(str(status))
    assert response is not None, f"{method.upper()} {path} answered {status}, which the spec does not document"
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].split("/")[-1]]
    return response["content"][content_type]["schema"]


def call(gateway, method, template, path=None, body=None, token=None, expect=200):
    """Calls the live server and validates the answer against the spec; returns the parsed body."""
    path = path or template
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(gateway.url + path, data=data, method=method.upper())
    req.add_header("Authorization", f"Bearer {token or gateway.admin_token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    assert status == expect, f"{method.upper()} {path}: {status} {text}"
    schema = _schema_for(template, method, status)
    document = json.loads(text)
    jsonschema.validate(document, {**schema, "components": SPEC["components"]})
    CALLED.add((template, method))
    return document


def test_every_documented_operation_matches_the_live_server(gateway):
    t = call(gateway, "post", "/admin/v1/tenants", body={"name": "api-tenant", "timezone": "Asia/Shanghai", "plan": "team"}, expect=201)
    assert t["plan"] == "team" and t["timezone"] == "Asia/Shanghai" and t["status"] == "active"
    call(gateway, "post", "/admin/v1/tenants", body={"name": "api-tenant"}, expect=409)
    call(gateway, "post", "/admin/v1/tenants", body={"timezone": "UTC"}, expect=400)
    listed = call(gateway, "get", "/admin/v1/tenants")
    assert any(x["id"] == t["id"] for x in listed["data"])
    tid = t["id"]
    one = call(gateway, "get", "/admin/v1/tenants/{tenant}", f"/admin/v1/tenants/{tid}")
    assert one["name"] == "api-tenant"
    call(gateway, "get", "/admin/v1/tenants/{tenant}", "/admin/v1/tenants/nobody", expect=404)
    changed = call(gateway, "patch", "/admin/v1/tenants/{tenant}", f"/admin/v1/tenants/{tid}", body={"currency": "CNY", "plan": "payg"})
    assert changed["currency"] == "CNY" and changed["plan"] == "payg"
    call(gateway, "patch", "/admin/v1/tenants/{tenant}", f"/admin/v1/tenants/{tid}", body={"plan": "no-such-plan"}, expect=400)

    key = call(gateway, "post", "/admin/v1/tenants/{tenant}/keys", f"/admin/v1/tenants/{tid}/keys", body={"name": "ci"}, expect=201)
    assert key["secret"].startswith("sk-gw-") and key["prefix"] == key["secret"][:12]
    keys = call(gateway, "get", "/admin/v1/tenants/{tenant}/keys", f"/admin/v1/tenants/{tid}/keys")
    assert [k["id"] for k in keys["data"]] == [key["id"]] and "secret" not in keys["data"][0]
    limited = call(gateway, "put", "/admin/v1/keys/{key}/limits", f"/admin/v1/keys/{key['id']}/limits", body={"requests_per_minute": 100})
    assert limited["limits"]["requests_per_minute"] == 100

    budget = call(gateway, "put", "/admin/v1/tenants/{tenant}/budget", f"/admin/v1/tenants/{tid}/budget",
                  body={"limit": "3.50", "currency": "USD", "period": "week", "mode": "soft"})
    assert budget["budget"] == {"limit": "3.50", "currency": "USD", "period": "week", "mode": "soft"}
    call(gateway, "put", "/admin/v1/tenants/{tenant}/budget", f"/admin/v1/tenants/{tid}/budget", body={"limit": "lots"}, expect=400)

    # Traffic on the tenant's own key, then its usage and quota as the admin and as the tenant sees them.
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key["secret"], max_retries=0)
    client.chat.completions.create(model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "meter me"}])
    usage = call(gateway, "get", "/admin/v1/tenants/{tenant}/usage", f"/admin/v1/tenants/{tid}/usage")
    assert usage["totals"][0]["requests"] == 1 and usage["models"][0]["model"] == "mock-gpt-4o-mini"
    call(gateway, "get", "/admin/v1/tenants/{tenant}/usage", f"/admin/v1/tenants/{tid}/usage?period=11-2026", expect=400)
    quota = call(gateway, "get", "/admin/v1/tenants/{tenant}/quota", f"/admin/v1/tenants/{tid}/quota")
    pools = {p["pool"]: p for p in quota["pools"]}
    assert pools["free"]["unit"] == "tokens" and int(pools["free"]["used"]) > 0
    assert pools["budget"]["limit"] == "3.500000000"
    mine = call(gateway, "put", "/admin/v1/tenants/{tenant}/quota", f"/admin/v1/tenants/{tid}/quota",
                body={"amount": 1234, "period": "day"})
    free = [p for p in mine["pools"] if p["pool"] == "free"][0]
    assert free["limit"] == "1234" and free["unit"] == "tokens"
    credit = call(gateway, "put", "/admin/v1/tenants/{tenant}/quota", f"/admin/v1/tenants/{tid}/quota",
                  body={"amount": "2.50", "currency": "CNY"})
    assert [p for p in credit["pools"] if p["pool"] == "free"][0]["limit"] == "2.500000000"
    assert call(gateway, "get", "/admin/v1/tenants/{tenant}", f"/admin/v1/tenants/{tid}")["quota"]["unit"] == "credit"
    call(gateway, "put", "/admin/v1/tenants/{tenant}/quota", f"/admin/v1/tenants/{tid}/quota", body={"amount": "x"}, expect=400)
    back = call(gateway, "delete", "/admin/v1/tenants/{tenant}/quota", f"/admin/v1/tenants/{tid}/quota")
    assert [p for p in back["pools"] if p["pool"] == "free"][0]["limit"] == "500000"
    own = call(gateway, "get", "/v1/usage", token=key["secret"])
    assert own["tenant_id"] == tid and own["quota"]["tenant_id"] == tid
    other = call(gateway, "get", "/v1/usage", token=gateway.key)
    assert other["tenant_id"] != tid, "a key sees only its own tenant"
    call(gateway, "get", "/v1/usage", token="sk-gw-not-a-key", expect=401)

    # Suspending a tenant refuses its keys with 403 in the client's format within a second; reactivating restores them.
    call(gateway, "patch", "/admin/v1/tenants/{tenant}", f"/admin/v1/tenants/{tid}", body={"status": "suspended"})
    deadline = time.time() + 3
    while True:
        try:
            client.chat.completions.create(model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        except openai.PermissionDeniedError as e:
            assert e.status_code == 403 and e.body["code"] == "tenant_suspended"
            break
        assert time.time() < deadline, "suspension did not take effect"
        time.sleep(0.1)
    call(gateway, "patch", "/admin/v1/tenants/{tenant}", f"/admin/v1/tenants/{tid}", body={"status": "active"})
    deadline = time.time() + 3
    while True:
        try:
            client.chat.completions.create(model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            break
        except openai.PermissionDeniedError:
            assert time.time() < deadline, "reactivation did not take effect"
            time.sleep(0.1)

    cleared = call(gateway, "delete", "/admin/v1/tenants/{tenant}/budget", f"/admin/v1/tenants/{tid}/budget")
    assert cleared["budget"] is None
    revoked = call(gateway, "post", "/admin/v1/keys/{key}/revoke", f"/admin/v1/keys/{key['id']}/revoke")
    assert revoked["revoked_at"] is not None
    call(gateway, "get", "/admin/v1/tenants", token="wrong", expect=401)

    # Reports (docs/reports.md): all tenants as the admin, the tenant's own with its key.
    span = "from=2020-01-01&to=2100-01-01"
    inflation = call(gateway, "get", "/admin/v1/reports/inflation", f"/admin/v1/reports/inflation?{span}&by=month&tenant={tid}")
    assert {r["tenant_id"] for r in inflation["rows"]} == {tid} and sum(r["requests"] for r in inflation["rows"]) >= 1
    call(gateway, "get", "/admin/v1/reports/inflation", "/admin/v1/reports/inflation?from=yesterday&to=2100-01-01", expect=400)
    call(gateway, "get", "/admin/v1/reports/inflation", f"/admin/v1/reports/inflation?{span}&by=fortnight", expect=400)
    later = call(gateway, "get", "/admin/v1/reports/whatif", f"/admin/v1/reports/whatif?{span}&at=2030-01-01&tenant={tid}")
    assert later["prices"] == "own" and later["rows"][0]["records"] >= 1
    call(gateway, "get", "/admin/v1/reports/whatif", f"/admin/v1/reports/whatif?{span}", expect=400)
    other_book = "prices:\n  mock-gpt-4o-mini:\n    - {effective_from: 2020-01-01, currency: CNY, input: \"1\", output: \"2\"}\n"
    given = call(gateway, "post", "/admin/v1/reports/whatif", f"/admin/v1/reports/whatif?{span}&tenant={tid}", body={"prices": other_book})
    assert given["prices"] == "given" and given["rows"][0]["whatif_currency"] == "CNY"
    call(gateway, "post", "/admin/v1/reports/whatif", f"/admin/v1/reports/whatif?{span}", body={"prices": "prices: [not a book"}, expect=400)
    forecast = call(gateway, "get", "/admin/v1/tenants/{tenant}/forecast", f"/admin/v1/tenants/{tid}/forecast")
    assert forecast["tenant_id"] == tid and {r["pool"] for r in forecast["rows"]} >= {"free"}
    call(gateway, "get", "/admin/v1/tenants/{tenant}/forecast", "/admin/v1/tenants/nobody/forecast", expect=404)
    own_inflation = call(gateway, "get", "/v1/usage/inflation", f"/v1/usage/inflation?{span}", token=gateway.key)
    assert tid not in {r["tenant_id"] for r in own_inflation["rows"]}, "a key sees only its own tenant"
    call(gateway, "get", "/v1/usage/inflation", "/v1/usage/inflation?from=2020-01-01", token=gateway.key, expect=400)
    call(gateway, "get", "/v1/usage/whatif", f"/v1/usage/whatif?{span}&at=2030-01-01", token=gateway.key)
    call(gateway, "get", "/v1/usage/whatif", f"/v1/usage/whatif?{span}", token=gateway.key, expect=400)
    call(gateway, "get", "/v1/usage/forecast", token=gateway.key)
    call(gateway, "get", "/v1/usage/forecast", token="sk-gw-not-a-key", expect=401)

    # Billing sinks: none configured here (Tests/sdk/test_sinks.py delivers to live receivers).
    assert call(gateway, "get", "/admin/v1/sinks")["data"] == []
    call(gateway, "get", "/admin/v1/sinks/{sink}/dead", "/admin/v1/sinks/nosuch/dead", expect=404)
    call(gateway, "post", "/admin/v1/sinks/{sink}/retry", "/admin/v1/sinks/nosuch/retry", body={}, expect=404)
    billed = call(gateway, "patch", "/admin/v1/tenants/{tenant}", f"/admin/v1/tenants/{tid}", body={"stripe_customer_id": "cus_T1"})
    assert billed["stripe_customer_id"] == "cus_T1"
    call(gateway, "patch", "/admin/v1/tenants/{tenant}", f"/admin/v1/tenants/{tid}", body={"stripe_customer_id": "two words"}, expect=400)
    assert call(gateway, "patch", "/admin/v1/tenants/{tenant}", f"/admin/v1/tenants/{tid}", body={"stripe_customer_id": None})["stripe_customer_id"] is None

    # The export is streamed text; check it is documented and answers.
    req = urllib.request.Request(gateway.url + "/admin/v1/billing/export?from=2020-01-01&to=2100-01-01&format=jsonl",
                                 headers={"Authorization": f"Bearer {gateway.admin_token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200 and r.headers["content-type"] == "application/x-ndjson"
    CALLED.add(("/admin/v1/billing/export", "get"))

    documented = {(p, m) for p, item in SPEC["paths"].items() for m in item if m in ("get", "post", "put", "patch", "delete")}
    assert documented == CALLED, f"documented but not exercised: {documented - CALLED}"
