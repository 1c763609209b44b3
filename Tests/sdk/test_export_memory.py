"""The export streams: 200,000 records go out with the exporter's memory far below the size of the output."""
import os
import sqlite3
import subprocess
import tempfile
import time

from conftest import BIN, ROOT, new_tenant

ROWS = 200_000


def test_export_memory_stays_flat_for_many_rows():
    data = tempfile.mkdtemp(prefix="gw-export-")
    new_tenant(data, "bulk")  # creates the database with the current schema
    db = sqlite3.connect(os.path.join(data, "gateway.sqlite"))
    tenant = db.execute("SELECT id FROM tenants").fetchone()[0]
    start = int(time.time() * 1_000_000) - ROWS * 1000
    db.executemany(
        """INSERT INTO billing_records (id, request_id, tenant_id, key_id, started_at, ended_at, endpoint, model,
           upstream_model, provider, stream, status, http_status, prompt_tokens, cached_tokens, cache_write_tokens,
           completion_tokens, reasoning_tokens, usage_source, local_prompt_tokens, local_completion_tokens,
           local_estimate, price_entry, currency, cost_nanos)
           VALUES (?, ?, ?, 'key', ?, ?, '/v1/chat/completions', 'mock-gpt-4o-mini', 'mock-gpt-4o-mini', 'mock', 0,
           'completed', 200, 100, 0, 0, 50, 0, 'upstream', 100, 50, 0, 'p@x', 'USD', ?)""",
        ((f"rec_{i}", f"req_{i}", tenant, start + i * 1000, start + i * 1000 + 500, 1000 + i % 7) for i in range(ROWS)),
    )
    db.commit()
    db.close()
    small = _export(data, f"{start + 20_000 * 1000}")  # the first 20,000 rows
    large = _export(data, "2100-01-01")  # all 200,000
    assert small["lines"] == 20_000 + 1 and large["lines"] == ROWS + 1
    assert large["size"] > 40 * 1024 * 1024
    print(f"\nexport peak RSS: {small['peak_kib']} KiB for 20,000 rows, {large['peak_kib']} KiB for {ROWS} rows "
          f"({large['size']} bytes)")
    # Ten times the rows, ten times the output (over 40 MB), and the exporter's memory does not grow with it.
    assert large["peak_kib"] - small["peak_kib"] < 8 * 1024


def _export(data, to):
    """Runs `gateway export` in its own process and reads that process's peak RSS."""
    out = os.path.join(data, f"export-{to}.csv")
    to_arg = to if "-" in to else _rfc3339(int(to))
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    peak = subprocess.run(
        ["python3", "-c", probe, BIN, "export", "--from", "2020-01-01", "--to", to_arg, "--output", out, "--data", data],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=600).stdout.strip()
    with open(out, newline="") as f:
        lines = sum(1 for _ in f)
    return {"peak_kib": int(peak), "size": os.path.getsize(out), "lines": lines}


def _rfc3339(micros):
    seconds, rest = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest:06d}Z"
