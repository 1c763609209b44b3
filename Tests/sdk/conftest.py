"""Starts a real gateway (the built binary, default policies, a fresh SQLite store) for the SDK tests."""
import json
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


ADMIN_TOKEN = "test-admin-token-0123456789"


class Gateway:
    def __init__(self, url: str, key: str, data: str):
        self.url = url
        self.key = key
        self.data = data
        self.admin_token = ADMIN_TOKEN

    def cli(self, *args: str) -> str:
        return _cli(self.data, *args)

    def cli_raw(self, *args: str) -> str:
        """stdout decoded as UTF-8 with its line ends untouched (CSV uses CRLF)."""
        out = subprocess.run(
            [BIN, *args, "--data", self.data], cwd=ROOT, check=True, capture_output=True, timeout=60
        )
        return out.stdout.decode("utf-8")


def start_gateway(data: str, port: int, config: str = "policies/gateway.yaml") -> subprocess.Popen:
    """Starts `gateway serve` (default policies unless told) and waits until /readyz answers."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["GATEWAY_ADMIN_TOKEN"] = ADMIN_TOKEN
    proc = subprocess.Popen(
        [BIN, "serve", "--data", data, "--config", config, "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("gateway did not become ready:\n" + (proc.stdout.read() if proc.stdout else ""))


def count_chat_tokens(gateway, model: str, messages: list) -> tuple:
    """`POST /v1/chat/completions/count_tokens` on the gateway: the count and the response headers."""
    request = urllib.request.Request(
        gateway.url + "/v1/chat/completions/count_tokens", data=json.dumps({"model": model, "messages": messages}).encode(),
        headers={"Authorization": f"Bearer {gateway.key}", "Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["input_tokens"], response.headers


def new_tenant(data: str, name: str) -> str:
    """Creates a tenant with one key; returns the key's secret."""
    _cli(data, "tenants", "create", name)
    return _cli(data, "keys", "create", "--tenant", name, "--name", "k").strip().splitlines()[-1]


@pytest.fixture(scope="session")
def gateway():
    data = tempfile.mkdtemp(prefix="gw-sdk-")
    key = new_tenant(data, "sdk-tenant")
    port = _free_port()
    proc = start_gateway(data, port)
    url = f"http://127.0.0.1:{port}"
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
