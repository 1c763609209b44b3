"""Starts a real gateway (the built binary, default policies, a fresh SQLite store) for the SDK tests."""
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("GATEWAY_BIN", os.path.join(ROOT, ".build", "debug", "gateway"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(data: str, *args: str) -> str:
    out = subprocess.run(
        [BIN, *args, "--data", data], cwd=ROOT, check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout


class Gateway:
    def __init__(self, url: str, key: str, data: str):
        self.url = url
        self.key = key
        self.data = data

    def cli(self, *args: str) -> str:
        return _cli(self.data, *args)


@pytest.fixture(scope="session")
def gateway():
    data = tempfile.mkdtemp(prefix="gw-sdk-")
    _cli(data, "tenants", "create", "sdk-tenant")
    key = _cli(data, "keys", "create", "--tenant", "sdk-tenant", "--name", "sdk").strip().splitlines()[-1]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.Popen(
        [BIN, "serve", "--data", data, "--config", "policies/gateway.yaml", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("gateway did not become ready:\n" + (proc.stdout.read() if proc.stdout else ""))
    try:
        yield Gateway(url, key, data)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log = proc.stdout.read() if proc.stdout else ""
        assert key not in log, "the virtual key must never be logged"
