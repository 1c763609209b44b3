"""A client that stops reading mid-stream: the gateway holds the upstream back, then relays every event in
order once the client reads again, and bills all of it.

The gateway runs as its own process here: about 4 MB of events pass through the meter, which in the
Swift test process would share event loops with the timing tests.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from conftest import BIN, ROOT, _cli, _free_port, new_tenant, start_gateway
from test_chaos import _config, _request_bytes, _wait_port

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tokenizer"))
from tiktoken_reference import encode_ordinary  # noqa: E402

EVENTS = 20000
WORDS = 100000

PLANS = """
default_plan: open
plans:
  open: {}
"""


def _unchunk(raw: bytes) -> bytes:
    """The body of a chunked HTTP/1.1 response (an HTTP chunk may end anywhere in an event)."""
    head_end = raw.index(b"\r\n\r\n") + 4
    body, at = bytearray(), head_end
    while True:
        line_end = raw.index(b"\r\n", at)
        size = int(raw[at:line_end], 16)
        if size == 0:
            return bytes(body)
        body += raw[line_end + 2:line_end + 2 + size]
        at = line_end + 2 + size + 2


def test_stalled_reader_gets_every_event_in_order_and_is_fully_billed():
    data = tempfile.mkdtemp(prefix="gw-backpressure-")
    plans_path = os.path.join(data, "plans.yaml")
    with open(plans_path, "w") as f:
        f.write(PLANS)
    key = new_tenant(data, "slow-reader")
    emulator_port = _free_port()
    emulator = subprocess.Popen(
        [BIN, "emulator", "--port", str(emulator_port)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config_path = os.path.join(data, "gateway.yaml")
    with open(config_path, "w") as f:
        f.write(_config(emulator_port, plans_path))
    os.environ["CHAOS_UPSTREAM_KEY"] = "backpressure-upstream-secret"
    proc = None
    try:
        _wait_port(emulator_port)
        port = _free_port()
        proc = start_gateway(data, port, config=config_path)
        sock = socket.socket()
        # A small receive buffer: the 4 MB cannot hide in the sockets, so the gateway's channel to this
        # client stops being writable and the relay must wait for it rather than drop or reorder.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        sock.sendall(_request_bytes(key, body, {"x-mock-words": str(WORDS), "x-mock-chunks": str(EVENTS)}))
        # Longer than the provider's 1.5 s idle-read timeout: time the client holds reads back is not the
        # upstream's silence.
        time.sleep(3)
        raw = bytearray()
        sock.settimeout(60)
        while True:
            part = sock.recv(65536)
            if not part:
                break
            raw += part
        sock.close()
        assert raw.startswith(b"HTTP/1.1 200"), raw[:300]
        events = _unchunk(bytes(raw)).split(b"\n\n")
        content, deltas = "", 0
        for event in events:
            if not event.startswith(b"data: {"):
                continue
            choices = json.loads(event[6:]).get("choices") or []
            delta = choices[0].get("delta", {}).get("content") if choices else None
            if delta:
                deltas += 1
                content += delta
        assert events[-2] == b"data: [DONE]", events[-3:]
        assert deltas == EVENTS
        assert len(content.split()) == WORDS

        deadline, records = time.time() + 10, []
        while time.time() < deadline and not records:
            out = _cli(data, "export", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "jsonl")
            records = [json.loads(line) for line in out.splitlines() if line.strip()]
            time.sleep(0.1)
        assert len(records) == 1
        record = records[0]
        assert record["status"] == "completed", record
        assert record["usage_source"] == "upstream", record
        # The meter saw every byte the client got, in order.
        assert record["local_completion_tokens"] == len(encode_ordinary("o200k_base", content))
        assert proc.poll() is None
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
        emulator.terminate()
        emulator.wait(timeout=30)
