"""The official Anthropic Python SDK against the gateway (x-api-key auth, Messages API)."""
import anthropic
import pytest


@pytest.fixture
def client(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)


def test_message(client):
    m = client.messages.create(
        model="mock-claude", max_tokens=100, messages=[{"role": "user", "content": "Hello, Claude"}]
    )
    assert m.type == "message" and m.role == "assistant"
    assert m.stop_reason == "end_turn"
    assert len(m.content[0].text.split()) == 24
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0


def test_message_stream(client):
    with client.messages.stream(
        model="mock-claude", max_tokens=100, messages=[{"role": "user", "content": "Stream, Claude"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 24
    assert final.content[0].text == text
    assert final.usage.output_tokens > 0


def test_bad_key(gateway):
    bad = anthropic.Anthropic(base_url=gateway.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="mock-claude", max_tokens=5, messages=[{"role": "user", "content": "x"}])


def test_missing_max_tokens_is_invalid_request(gateway):
    import json
    import urllib.error
    import urllib.request

    body = json.dumps({"model": "mock-claude", "messages": [{"role": "user", "content": "x"}]}).encode()
    req = urllib.request.Request(
        gateway.url + "/v1/messages", data=body, headers={"x-api-key": gateway.key}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    err = json.loads(e.value.read())
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
