"""The web console in a real browser: Debian's headless Chromium, driven by selenium through Debian's
chromedriver, signs in, reads every page and compares what it shows (tables, and the values on the SVG
marks) with the admin API's report JSON and the ledger export for seeded traffic. A tenant's session sees
only its own tenant, a hostile tenant name is shown as text, a bad token gets 401, and no secret reaches a
URL or the gateway's log. Screenshots go to .build/test-artifacts/console/."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ADMIN_TOKEN, ROOT, _cli, _free_port, start_gateway

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
ARTIFACTS = os.path.join(ROOT, ".build", "test-artifacts", "console")
XSS_NAME = '<script>alert("x")</script> & <b>co</b>'
ACME, GLOBEX = "acme-console-7f3", "globex-console-2b9"
ZONE = "Asia/Shanghai"
TODAY = datetime.now(timezone.utc).date()
FROM, TO = (TODAY - timedelta(days=10)).isoformat(), (TODAY + timedelta(days=1)).isoformat()
# The price change the what-if page must find: the test's book adds it for tomorrow (UTC midnight).
NEXT_CHANGE = f"{TO}T00:00:00.000Z"
NEW_RATES = (800_000_000, 400_000_000, 3_200_000_000)  # mock-gpt-4o-mini input, cached, output per 1M
# The book's entries in force now: (entry, currency, input, cached input, output) in nano-units per 1M.
RATES = {
    "mock-gpt-4o-mini": ("mock-gpt-4o-mini@2026-06-01T00:00:00Z", "USD", 400_000_000, 200_000_000, 1_600_000_000),
    "mock-claude": ("mock-claude@2025-01-01T00:00:00Z", "USD", 3_000_000_000, 300_000_000, 15_000_000_000),
    "mock-qwen": ("mock-qwen@2026-03-01T00:00:00Z", "CNY", 2_400_000_000, 2_400_000_000, 9_600_000_000),
}

TABLE_JS = """return Array.from(document.querySelectorAll(arguments[0])).map(tr => Array.from(tr.cells).map(td => {
  const t = td.querySelector('time'); return t ? t.getAttribute('datetime') : td.textContent; }));"""
MARKS_JS = """return Array.from(document.querySelectorAll(arguments[0])).map(e => [e.getAttribute('data-category'),
  e.getAttribute('data-series'), e.getAttribute('data-value'), (e.querySelector('title') || {}).textContent]);"""


def _cost(rates, prompt, cached, completion):
    _, _, inp, cin, out = rates
    return ((prompt - cached) * inp + cached * cin + completion * out + 500_000) // 1_000_000


def _money(nanos):
    return f"{Decimal(nanos) / Decimal(10**9):.9f}"


def _seed(db_path, tenant_id, key_id, rows):
    """History the gateway has not seen: records written into the ledger before it starts."""
    db = sqlite3.connect(db_path)
    for i, (when, model, prompt, cached, completion) in enumerate(rows):
        entry, currency, *_ = RATES[model]
        cost = _cost(RATES[model], prompt, cached, completion)
        micros = int(when.timestamp() * 1_000_000)
        db.execute(
            """INSERT INTO billing_records (id, request_id, tenant_id, key_id, started_at, ended_at, endpoint, model,
               upstream_model, provider, stream, status, http_status, prompt_tokens, cached_tokens, cache_write_tokens,
               completion_tokens, reasoning_tokens, usage_source, local_prompt_tokens, local_completion_tokens,
               local_estimate, price_entry, currency, cost_nanos, free_cost_nanos, charged_nanos)
               VALUES (?, ?, ?, ?, ?, ?, '/v1/chat/completions', ?, ?, 'mock', 0, 'completed', 200, ?, ?, 0, ?, 0,
               'upstream', ?, ?, 0, ?, ?, ?, 0, ?)""",
            (f"rec_seed_{tenant_id}_{i}", f"req_seed_{i}", tenant_id, key_id, micros, micros + 800_000, model, model,
             prompt, cached, completion, prompt, completion, entry, currency, cost, cost),
        )
    db.commit()
    db.close()


class Env:
    pass


@pytest.fixture(scope="module")
def env():
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), "run scripts/install-deps.sh (chromium)"
    os.makedirs(ARTIFACTS, exist_ok=True)
    e = Env()
    e.data = tempfile.mkdtemp(prefix="gw-console-")
    # The project's policies, with a price increase scheduled for tomorrow.
    policies = os.path.join(e.data, "policies")
    shutil.copytree(os.path.join(ROOT, "policies"), policies)
    prices = os.path.join(policies, "prices.yaml")
    lines = open(prices).read().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if 'source: "demo: 300% increase"' in line)
    lines.insert(at + 1, f'    - {{effective_from: "{TO}T00:00:00Z", currency: USD, input: "0.80", cached_input: "0.40", '
                         f'output: "3.20", source: "test: scheduled increase"}}\n')
    open(prices, "w").write("".join(lines))

    e.keys = {}
    for name, zone in ((ACME, ZONE), (GLOBEX, "UTC"), (XSS_NAME, "UTC")):
        _cli(e.data, "tenants", "create", name, "--timezone", zone)
        e.keys[name] = _cli(e.data, "keys", "create", "--tenant", name, "--name", "k").strip().splitlines()[-1]
    db_path = os.path.join(e.data, "gateway.sqlite")
    db = sqlite3.connect(db_path)
    e.ids = dict(db.execute("SELECT name, id FROM tenants").fetchall())
    key_ids = dict(db.execute("SELECT tenant_id, id FROM virtual_keys").fetchall())
    db.close()
    # Acme: eight days of history whose prompts grow day by day (inflation), one record from before the range.
    base = datetime.combine(TODAY, datetime.min.time(), timezone.utc) + timedelta(hours=3)
    rows = [(base - timedelta(days=12), "mock-gpt-4o-mini", 90, 0, 40)]
    for d in range(8, 0, -1):
        for n in range(2 + d % 3):
            rows.append((base - timedelta(days=d, minutes=-n), "mock-gpt-4o-mini", 100 + 40 * (8 - d), 25 * (d % 2), 50))
        if d % 2 == 0:
            rows.append((base - timedelta(days=d, minutes=-30), "mock-claude", 200, 0, 80))
    _seed(db_path, e.ids[ACME], key_ids[e.ids[ACME]], rows)
    _seed(db_path, e.ids[GLOBEX], key_ids[e.ids[GLOBEX]],
          [(base - timedelta(days=d), "mock-gpt-4o-mini", 333, 0, 77) for d in (2, 3)])

    # A budget and a small free quota, so live traffic spills from the free pool into the budget.
    _cli(e.data, "budgets", "set", ACME, "--limit", "0.50", "--currency", "USD")
    _cli(e.data, "quota", "set", ACME, "--amount", "150")

    port = _free_port()
    e.url = f"http://127.0.0.1:{port}"
    e.port = port
    e.proc = start_gateway(e.data, port, config=os.path.join(policies, "gateway.yaml"))
    try:
        for model in ["mock-gpt-4o-mini"] * 4 + ["mock-qwen"] * 2:
            _chat(e, e.keys[ACME], model)
        _chat(e, e.keys[GLOBEX], "mock-gpt-4o-mini")
        yield e
    finally:
        e.proc.terminate()
        try:
            e.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            e.proc.kill()
        log = e.proc.stdout.read() if e.proc.stdout else ""
        for secret in [ADMIN_TOKEN, "not-the-token-0123", *e.keys.values()]:
            assert secret not in log, "a token or key reached the gateway's log"


def _raw(e, method, path, body=None, headers=None):
    """One request, redirects not followed: (status, headers, text)."""
    conn = http.client.HTTPConnection("127.0.0.1", e.port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    return r.status, r.headers, text


def _admin(e, method, path, body=None):
    status, _, text = _raw(e, method, path, json.dumps(body) if body is not None else None,
                           {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"})
    assert status == 200, f"{method} {path}: {status} {text}"
    return json.loads(text)


def _chat(e, key, model):
    status, _, text = _raw(e, "POST", "/v1/chat/completions",
                           json.dumps({"model": model, "messages": [{"role": "user", "content": "meter this please"}]}),
                           {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert status == 200, text


def _export(e, tenant_id):
    status, _, text = _raw(e, "GET", f"/admin/v1/billing/export?from={FROM}&to={TO}&tenant={tenant_id}&format=jsonl",
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status == 200
    return [json.loads(line) for line in text.splitlines() if line]


def _browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run its sandbox as root
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _shot(driver, name):
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, max(600, min(height + 120, 6000)))
    driver.save_screenshot(os.path.join(ARTIFACTS, f"{name}.png"))


def _errors(driver):
    """Browser console entries at warning level or above since the last call."""
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def _sign_in(driver, e, token):
    driver.get(e.url + "/console/")
    assert driver.current_url == e.url + "/console/signin", "no session: the sign-in page"
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    field.send_keys(Keys.ENTER)
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.readyState") == "complete"
                                    and d.find_elements(By.ID, "token") == [] or d.find_elements(By.ID, "signin-error"))


def _page(driver, e, page, tenant=None):
    query = {"from": FROM, "to": TO}
    if tenant:
        query["tenant"] = tenant
    driver.get(f"{e.url}/console/{page}?{urllib.parse.urlencode(query)}")
    _shot(driver, page if tenant else f"tenant-{page}")
    return driver.page_source


def test_admin_sees_every_page_with_the_ledgers_numbers(env):
    e, acme = env, env.ids[ACME]
    driver = _browser()
    try:
        _sign_in(driver, e, ADMIN_TOKEN)
        assert driver.current_url == e.url + "/console/"
        cookie = driver.get_cookie("gw_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
        assert time.time() < cookie["expiry"] <= time.time() + 3700 and not cookie["secure"]

        # The hostile name is text, in the list and the picker; the page runs no script at all.
        _shot(driver, "tenants")
        links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#tenants a")]
        assert XSS_NAME in links and ACME in links
        assert "&lt;script&gt;alert(" in driver.page_source
        _, _, raw = _raw(e, "GET", "/console/", headers={"Cookie": f"gw_console={cookie['value']}"})
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;co&lt;/b&gt;" in raw and "<script" not in raw
        assert driver.execute_script("return document.scripts.length") == 0
        assert driver.find_elements(By.CSS_SELECTOR, "b") == []
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text
        driver.get(f"{e.url}/console/spend?tenant={e.ids[XSS_NAME]}")
        assert driver.find_element(By.TAG_NAME, "h1").text == f"Spend by day and model: {XSS_NAME}"
        assert XSS_NAME in [o.text.rsplit(" (", 1)[0] for o in driver.find_elements(By.CSS_SELECTOR, "option")]

        query = f"from={FROM}&to={TO}&tenant={acme}"
        inflation = _admin(e, "GET", f"/admin/v1/reports/inflation?{query}&by=day")["rows"]
        export = _export(e, acme)
        zone = ZoneInfo(ZONE)

        def local_day(ts):
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(zone).date().isoformat()

        # Spend by day and model: every row, the totals equal to the export's, a bar per priced row.
        _page(driver, e, "spend", acme)
        rows = [r for r in inflation if r["model"] != "(all)"]
        assert len(rows) >= 10
        cur = lambda c: c or "(unpriced)"  # noqa: E731
        assert sorted(driver.execute_script(TABLE_JS, "#spend-table tbody tr")) == sorted(
            [r["bucket_start"], r["model"], cur(r["currency"]), str(r["requests"]), r["cost"]] for r in rows)
        totals = {}
        for rec in export:
            if rec["currency"]:
                totals[rec["currency"]] = totals.get(rec["currency"], Decimal(0)) + Decimal(rec["cost"])
        footer = {r[2]: r[4] for r in driver.execute_script(TABLE_JS, "#spend-table tfoot tr")}
        assert footer == {c: f"{t:.9f}" for c, t in totals.items()} and set(footer) == {"USD", "CNY"}
        for currency in ("USD", "CNY"):
            marks = driver.execute_script(MARKS_JS, f"#spend-chart-{currency} rect[data-series]")
            expected = [[local_day(r["bucket_start"]), r["model"], r["cost"]] for r in rows
                        if r["currency"] == currency and Decimal(r["cost"]) > 0]
            assert sorted(m[:3] for m in marks) == sorted(expected)
            assert all(f"{m[2]} {currency}" in m[3] and m[1] in m[3] for m in marks)
        assert _errors(driver) == []

        # Tokens per request and the decomposition of each day's cost change.
        _page(driver, e, "tokens", acme)
        assert sorted(driver.execute_script(TABLE_JS, "#tokens-table tbody tr")) == sorted(
            [r["bucket_start"], r["model"], cur(r["currency"]), str(r["requests"]), str(r["prompt_tokens"]),
             str(r["cached_tokens"]), str(r["completion_tokens"]), str(r["reasoning_tokens"]),
             r["tokens_per_request"] or "", r["cached_share"] or ""] for r in rows)
        marks = driver.execute_script(MARKS_JS, "#tokens-chart circle")
        assert sorted(m[:3] for m in marks) == sorted(
            [local_day(r["bucket_start"]), r["model"], r["tokens_per_request"]] for r in rows if r["requests"] > 0)
        gpt = sorted((r["bucket_start"], Decimal(r["tokens_per_request"])) for r in rows if r["model"] == "mock-gpt-4o-mini")
        assert gpt[-2][1] > gpt[0][1], "the seeded prompts grow: tokens per request rise"
        changes = [r for r in inflation if r["model"] == "(all)"]
        # The eight seeded days (consecutive in Shanghai) give seven day-over-day changes; this test's own
        # requests add an eighth only while Shanghai's day is still the UTC day (before 16:00 UTC).
        assert len(changes) >= 7, [(r["bucket_start"], r["currency"], r["requests"]) for r in changes]
        shown = driver.execute_script(TABLE_JS, "#changes-table tbody tr")
        assert sorted([c[0], c[1], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]] for c in shown) == sorted(
            [r["bucket_start"], r["currency"], str(r["requests"]), r["previous_cost"], r["cost"], r["cost_change"],
             r["change_volume"], r["change_mix"], r["change_intensity"], r["change_price"]] for r in changes)
        for c in shown:
            assert sum(Decimal(x) for x in c[7:11]) == Decimal(c[6]) == Decimal(c[5]) - Decimal(c[4])
        last = [r for r in changes if r["currency"] == "USD"][-1]
        bars = driver.execute_script(MARKS_JS, "#change-chart-USD rect[data-value]")
        assert [b[2] for b in bars] == [last["previous_cost"], last["change_volume"], last["change_mix"],
                                        last["change_intensity"], last["change_price"], last["cost"]]
        assert _errors(driver) == []

        # Quota and budget with the forecast; time moves between the two reads, so the page lies between them.
        before = _admin(e, "GET", f"/admin/v1/tenants/{acme}/forecast")["rows"]
        _page(driver, e, "quota", acme)
        after = _admin(e, "GET", f"/admin/v1/tenants/{acme}/forecast")["rows"]
        shown = driver.execute_script(TABLE_JS, "#forecast-table tbody tr")
        assert [s[0] for s in shown] == [r["pool"] for r in before] and {"free", "budget"} <= set(s[0] for s in shown)
        for s, b, a in zip(shown, before, after):
            fixed = ["pool", "unit", "period_start", "period_end", "used", "reserved", "limit", "remaining", "rate_per_day"]
            assert s[:9] == [b[k] for k in fixed] == [a[k] for k in fixed]
            number = int if b["unit"] == "tokens" else Decimal
            assert number(b["projected_total"]) >= number(s[10]) >= number(a["projected_total"])
            if b["runs_out_at"] is None:
                assert a["runs_out_at"] is None and s[9] in ("", "not this period")
            else:
                assert b["runs_out_at"] <= s[9] <= a["runs_out_at"]
        free = next(r for r in before if r["pool"] == "free")
        assert free["used"] == "150" and free["remaining"] == "0", "live traffic used the whole free quota"
        budget = next(r for r in before if r["pool"] == "budget")
        assert Decimal(budget["used"]) > 0 and budget["rate_per_day"] != "0.000000000"
        for i, r in enumerate(before):
            points = driver.execute_script(MARKS_JS, f"#pool-chart-{r['pool']}-{i} circle")
            now = [p for p in points if "recorded" in p[3]][-1]
            number = int if r["unit"] == "tokens" else Decimal
            expect = max(0, number(r["limit"]) - number(r["used"])) if r["limit"] is not None else number(r["used"])
            assert number(now[2]) == expect
        assert _errors(driver) == []

        # What-if at the next scheduled change: the admin API's numbers, and a hand repricing of the export.
        _page(driver, e, "whatif", acme)
        at = driver.find_element(By.ID, "whatif-at").get_attribute("datetime")
        assert at == NEXT_CHANGE
        whatif = _admin(e, "GET", f"/admin/v1/reports/whatif?{query}&at={urllib.parse.quote(at)}")["rows"]
        shown = driver.execute_script(TABLE_JS, "#whatif-table tbody tr")
        assert sorted([s[0], s[1], s[2], s[3], s[4], s[5], s[8]] for s in shown) == sorted(
            [r["model"], str(r["records"]), r["actual_currency"], r["actual_cost"], r["whatif_currency"],
             r["whatif_cost"], str(r["unpriced_records"])] for r in whatif)
        by_hand = sum(_cost((None, None, *NEW_RATES), x["prompt_tokens"], x["cached_tokens"], x["completion_tokens"])
                      for x in export if x["model"] == "mock-gpt-4o-mini" and x["status"] == "completed")
        gpt_row = next(s for s in shown if s[0] == "mock-gpt-4o-mini")
        assert gpt_row[5] == _money(by_hand)
        assert Decimal(gpt_row[6]) == Decimal(gpt_row[5]) - Decimal(gpt_row[3]) > 0 and gpt_row[7] == "+100.0%"
        bars = driver.execute_script(MARKS_JS, "#whatif-chart-USD rect[data-series]")
        assert sorted(b[:3] for b in bars) == sorted(
            [r["model"], series, r[key]] for r in whatif if r["actual_currency"] == r["whatif_currency"] == "USD"
            for series, key in (("actual", "actual_cost"), ("what-if", "whatif_cost")))
        assert _errors(driver) == []

        # Recent records: the export's, newest first.
        _page(driver, e, "records", acme)
        shown = driver.execute_script(TABLE_JS, "#records-table tbody tr")
        assert len(export) < 50 and len(shown) == len(export)
        assert [s[0] for s in shown] == sorted((s[0] for s in shown), reverse=True)
        by_id = {x["record_id"]: x for x in export}
        for s in shown:
            x = by_id[s[1]]
            assert s == [x["started_at"], x["record_id"], x["model"], x["endpoint"], x["status"], str(x["http_status"]),
                         str(x["prompt_tokens"]), str(x["cached_tokens"]), str(x["completion_tokens"]),
                         str(x["reasoning_tokens"]), x["currency"] or "", x["cost"] or "", x["key_id"]]
        assert _errors(driver) == []

        # Without a mouse: the skip link comes first, plain links reach every page, focus is drawn.
        driver.get(f"{e.url}/console/spend?tenant={acme}&from={FROM}&to={TO}")
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        active = driver.switch_to.active_element
        assert active.text == "Skip to content"
        assert driver.execute_script("return getComputedStyle(arguments[0]).outlineStyle", active) != "none"
        for _ in range(10):
            active.send_keys(Keys.TAB)
            active = driver.switch_to.active_element
            if active.text == "Tokens":
                break
        assert active.text == "Tokens"
        active.send_keys(Keys.ENTER)
        assert "/console/tokens?" in driver.current_url

        # A phone's width: nothing wider than the screen (tables scroll in their own box).
        driver.set_window_size(390, 844)
        for page in ("spend", "quota"):
            driver.get(f"{e.url}/console/{page}?tenant={acme}&from={FROM}&to={TO}")
            assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
            driver.save_screenshot(os.path.join(ARTIFACTS, f"phone-{page}.png"))
        assert _errors(driver) == []

        # Signing out clears the cookie; the pages then send the browser to the sign-in page.
        driver.find_element(By.CSS_SELECTOR, "header form button").click()
        WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/console/signin"))
        assert driver.current_url == e.url + "/console/signin" and driver.get_cookie("gw_console") is None
        driver.get(f"{e.url}/console/spend?tenant={acme}")
        assert driver.current_url == e.url + "/console/signin"
        assert _errors(driver) == []
    finally:
        driver.quit()


def test_a_tenant_sees_only_its_own_tenant(env):
    e, acme, globex = env, env.ids[ACME], env.ids[GLOBEX]
    acme_records = [x["record_id"] for x in _export(e, acme)]
    driver = _browser()
    try:
        _sign_in(driver, e, e.keys[GLOBEX])
        assert driver.current_url.startswith(e.url + "/console/spend")
        assert e.keys[GLOBEX] not in driver.current_url
        for page in ("spend", "tokens", "quota", "whatif", "records"):
            source = _page(driver, e, page)
            assert globex in source and GLOBEX in source
            assert acme not in source and ACME not in source and not any(r in source for r in acme_records)
            assert driver.find_elements(By.CSS_SELECTOR, "select[name=tenant]") == []
        shown = driver.execute_script(TABLE_JS, "#records-table tbody tr")
        assert len(shown) == 3 and {s[1] for s in shown} == {x["record_id"] for x in _export(e, globex)}
        assert _errors(driver) == []

        # Asking for another tenant, by id or name: 403, and nothing of it on the page.
        for other in (acme, ACME):
            driver.get(f"{e.url}/console/spend?tenant={urllib.parse.quote(other)}")
            assert driver.find_element(By.TAG_NAME, "h1").text == "Forbidden"
            assert acme not in driver.page_source.replace(f"tenant={acme}", "") and "mock-claude" not in driver.page_source
        _shot(driver, "tenant-forbidden")
        session = driver.get_cookie("gw_console")["value"]
        status, _, text = _raw(e, "GET", f"/console/records?tenant={acme}", headers={"Cookie": f"gw_console={session}"})
        assert status == 403 and not any(r in text for r in acme_records)
        driver.get_log("browser")  # the 403s above are expected

        # Revoking the key ends the session on its next request.
        key_id = _admin(e, "GET", f"/admin/v1/tenants/{globex}/keys")["data"][0]["id"]
        _admin(e, "POST", f"/admin/v1/keys/{key_id}/revoke")
        status, headers, _ = _raw(e, "GET", "/console/spend", headers={"Cookie": f"gw_console={session}"})
        assert status == 303 and headers["Location"] == "/console/signin"
    finally:
        driver.quit()


def test_sign_in_refusals_and_the_cookie(env):
    e = env
    driver = _browser()
    try:
        _sign_in(driver, e, "not-the-token-0123")
        assert driver.find_element(By.ID, "signin-error").text.startswith("That is neither")
        assert "not-the-token" not in driver.current_url and driver.get_cookie("gw_console") is None
        _shot(driver, "signin-refused")
    finally:
        driver.quit()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, text = _raw(e, "POST", "/console/signin", "token=not-the-token-0123", form)
    assert status == 401 and headers["Set-Cookie"] is None and "not-the-token" not in text
    status, headers, _ = _raw(e, "POST", "/console/signin", urllib.parse.urlencode({"token": ADMIN_TOKEN}), form)
    assert status == 303 and headers["Location"] == "/console/"
    assert set(headers["Set-Cookie"].split("; ")[1:]) == {"Path=/console", "Max-Age=3600", "HttpOnly", "SameSite=Strict"}
    _, headers, _ = _raw(e, "POST", "/console/signin", urllib.parse.urlencode({"token": ADMIN_TOKEN}),
                         {**form, "X-Forwarded-Proto": "https"})
    assert headers["Set-Cookie"].endswith("; Secure")
    status, _, _ = _raw(e, "POST", "/console/signin", urllib.parse.urlencode({"token": ADMIN_TOKEN}),
                        {**form, "Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, headers, _ = _raw(e, "GET", "/console/quota")
    assert status == 303 and headers["Location"] == "/console/signin"

    # The cookie is HMAC-SHA256 under a key derived from the admin token (docs/console.md), so any replica
    # with the same token accepts it; a changed byte, an expiry past or too far ahead is refused.
    key = hmac.new(ADMIN_TOKEN.encode(), b"gateway console session key v1", hashlib.sha256).digest()

    def cookie(expiry, role="admin", tenant="", key_id=""):
        payload = f"v1|{role}|{tenant}|{key_id}|{int(expiry)}|bm9uY2U".encode()
        b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
        return b64(payload) + "." + b64(hmac.new(key, payload, hashlib.sha256).digest())

    def home(value):
        return _raw(e, "GET", "/console/", headers={"Cookie": f"gw_console={value}"})[0]

    good = cookie(time.time() + 600)
    assert home(good) == 200
    assert home(good[:-2] + ("AA" if not good.endswith("AA") else "BB")) == 303
    assert home(cookie(time.time() - 5)) == 303
    assert home(cookie(time.time() + 86_400)) == 303
    status, headers, _ = _raw(e, "POST", "/console/signout", headers={"Cookie": f"gw_console={good}"})
    assert status == 303 and "Max-Age=0" in headers["Set-Cookie"]
    # Every console answer forbids loading anything from elsewhere.
    _, headers, _ = _raw(e, "GET", "/console/signin")
    assert "default-src 'none'" in headers["Content-Security-Policy"] and headers["Cache-Control"] == "no-store"
