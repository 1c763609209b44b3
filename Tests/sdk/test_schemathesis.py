"""Property-based conformance of the live gateway to docs/openapi.yaml, with Schemathesis.

Every operation in the spec (the admin API and `GET /v1/usage`) is exercised by Schemathesis's coverage and
fuzzing phases (positive and negative data, a fixed number of examples, a fixed seed) against a gateway of its
own (fresh data dir, so the random tenants it creates never reach the other tests). Each response must:
not be a 5xx, have a documented status code and content type, and match the documented body schema.

Path parameters (and the export's `tenant`) are pointed at seeded resources (by id, name or prefix) in most
cases and left as generated (almost always a 404) in the rest; body `plan` and `timezone` likewise get known
values in most cases. The choice is a hash of the generated value, so a case replays identically while
Hypothesis shrinks it. A seeded tenant or key must never answer 404. A second test sends every operation
without a credential and with a wrong one: 401, as documented.
"""
import os
import re
import shutil
import socket
import tempfile
import zlib

import pytest

import schemathesis  # noqa: E402  (installed by scripts/install-deps.sh)
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.checks import not_a_server_error  # noqa: E402

from conftest import ADMIN_TOKEN, ROOT, _cli, _free_port, start_gateway  # noqa: E402

SPEC = os.path.join(ROOT, "docs", "openapi.yaml")
MAX_EXAMPLES = 50  # per operation and phase (fuzzing); the coverage phase adds a bounded, spec-derived set
SEED = 20261207
PLANS = ["payg", "free", "team"]  # policies/plans.yaml
TIME_ZONES = ["UTC", "Asia/Shanghai"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _new_key(data: str, tenant: str, name: str) -> dict:
    out = _cli(data, "keys", "create", "--tenant", tenant, "--name", name)
    m = re.search(r"key id: (\S+)\s+prefix: (\S+)", out)
    assert m, out
    return {"id": m.group(1), "prefix": m.group(2), "secret": out.strip().splitlines()[-1]}


@pytest.fixture(scope="module")
def fuzzed_gateway():
    """A gateway of its own: `st-target` is what the admin path parameters point at (it may be suspended,
    re-planned or have its keys revoked); `st-own` is never named in a path, so its key keeps working for
    `GET /v1/usage`."""
    data = tempfile.mkdtemp(prefix="gw-st-")
    target = _cli(data, "tenants", "create", "st-target").strip().splitlines()[-1]
    keys = [_new_key(data, "st-target", "a"), _new_key(data, "st-target", "b")]
    _cli(data, "tenants", "create", "st-own")
    own = _new_key(data, "st-own", "usage")
    # One billing sink (pointing at a port nothing listens on: deliveries just wait), so that the sink
    # operations have a sink to name.
    policies = os.path.join(data, "policies")
    shutil.copytree(os.path.join(ROOT, "policies"), policies)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with open(os.path.join(policies, "gateway.yaml"), "a") as f:
        f.write(f'\nbilling_sinks:\n  - {{name: meter, kind: cloudevents, url: "http://127.0.0.1:{closed}/ce"}}\n')
    port = _free_port()
    proc = start_gateway(data, port, config=os.path.join(policies, "gateway.yaml"))
    try:
        yield {
            "url": f"http://127.0.0.1:{port}",
            "tenant": [target, "st-target"],
            "key": [keys[0]["id"], keys[0]["prefix"], keys[1]["id"]],
            "usage_key": own["secret"],
            "sink": ["meter"],
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except Exception:
            proc.kill()
        log = proc.stdout.read() if proc.stdout else ""
        shutil.rmtree(data, ignore_errors=True)
        assert "Fatal error" not in log and "Segmentation fault" not in log, log[-4000:]


# The schema is loaded at import (the lazy `schemathesis.pytest.from_fixture` loader does not work with
# pytest >= 9.2); the live gateway's URL and the credentials are given to each call instead.
schema = schemathesis.openapi.from_path(
    SPEC,
    config=SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "request-timeout": 30,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # Credentials are set per call below; missing/wrong ones are the second test's subject.
                "with-security-parameters": False,
            },
            # No `examples` in the spec; stateful links are inferred and report by-design behaviour (a DELETEd
            # budget or quota leaves the resource, which is the tenant, in place).
            "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        }
    ),
)


def _seeded(generated, choices: list[str]):
    """One of the seeded values, or the generated one, picked by a stable hash of the generated value."""
    i = zlib.crc32(repr(generated).encode()) % (len(choices) + 1)
    return generated if i == len(choices) else choices[i]


@schema.parametrize()
def test_live_gateway_conforms_to_openapi(case, fuzzed_gateway):
    seeded = []
    for params in (case.path_parameters, case.query):
        for name in ("tenant", "key"):
            if params and isinstance(params.get(name), str):
                params[name] = _seeded(params[name], fuzzed_gateway[name])
                if params[name] in fuzzed_gateway[name]:
                    seeded.append(f"{name}={params[name]}")
    if isinstance(case.body, dict):  # plans and time zones the server knows, so that writes can succeed
        for name, known in (("plan", PLANS), ("timezone", TIME_ZONES)):
            if isinstance(case.body.get(name), str):
                case.body[name] = _seeded(case.body[name], known)
    if case.headers is None:
        case.headers = {}
    # The operation's own credential: the tenant's virtual key for /v1/usage, the admin token elsewhere.
    token = fuzzed_gateway["usage_key"] if case.operation.path.startswith("/v1/usage") else ADMIN_TOKEN
    case.headers["Authorization"] = f"Bearer {token}"
    r = case.call_and_validate(base_url=fuzzed_gateway["url"], checks=CHECKS)
    # A seeded tenant or key exists (tenants and keys are never deleted, revoked keys included).
    if case.method.upper() == case.operation.method.upper():  # not one of the coverage phase's other methods
        assert not (seeded and r.status_code == 404), f"{case.method} {case.formatted_path} {seeded}: 404 {r.text}"


OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("credential", [None, "Bearer not-the-token"], ids=["no-credential", "wrong-token"])
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_every_operation_refuses_a_missing_or_wrong_credential(operation, credential, fuzzed_gateway):
    """401 for each operation (the fuzzing above always sends a valid credential), as documented."""
    names = {p.name for p in operation.path_parameters}
    extra = {"body": {"limit": "1.00"}} if list(operation.body) else {}
    case = operation.Case(
        path_parameters={n: fuzzed_gateway[n][0] for n in names},
        query={"from": "2026-01-01", "to": "2026-02-01"} if operation.path.endswith("/export") else None,
        headers={"Authorization": credential} if credential else None,
        **extra,
    )
    response = case.call(base_url=fuzzed_gateway["url"])
    case.validate_response(response, checks=CHECKS)
    assert response.status_code == 401, response.text
