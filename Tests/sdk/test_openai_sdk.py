"""The official OpenAI Python SDK, pointed at the gateway's base URL, against the built-in mock provider."""
import openai
import pytest


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0)


def test_chat_completion(client):
    r = client.chat.completions.create(
        model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "Hello through the gateway"}]
    )
    assert r.object == "chat.completion"
    assert r.model == "mock-gpt-4o-mini"
    assert r.choices[0].message.role == "assistant"
    assert len(r.choices[0].message.content.split()) == 24
    assert r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_completion_stream(client):
    stream = client.chat.completions.create(
        model="mock-gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert len(text.split()) == 24
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def test_max_tokens_truncates(client):
    r = client.chat.completions.create(
        model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_tokens=5
    )
    assert r.choices[0].finish_reason == "length"
    assert len(r.choices[0].message.content.split()) == 5


def test_completions(client):
    r = client.completions.create(model="mock-gpt-4o-mini", prompt="Once upon a time", max_tokens=50)
    assert r.choices[0].text


def test_embeddings_default_base64(client):
    r = client.embeddings.create(model="mock-embedding", input=["one", "two", "three"])
    assert len(r.data) == 3
    assert all(len(d.embedding) == 8 for d in r.data)
    assert all(-1 <= v < 1 for d in r.data for v in d.embedding)


def test_responses(client):
    r = client.responses.create(model="mock-gpt-4o-mini", input="Say something")
    assert r.status == "completed"
    assert len(r.output_text.split()) == 24
    events = [e.type for e in client.responses.create(model="mock-gpt-4o-mini", input="Say it", stream=True)]
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert "response.output_text.delta" in events


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert "mock-gpt-4o-mini" in ids and "gpt-4o" in ids


def test_bad_key_is_authentication_error(gateway):
    bad = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-gw-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "invalid_api_key"


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])


def test_upstream_fault_is_502(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(
            model="mock-gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-status": "500"},
        )
    assert e.value.status_code == 502


def test_provider_without_key_is_503(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 503


def test_revoked_key_stops_working(gateway):
    key = gateway.cli("keys", "create", "--tenant", "sdk-tenant").strip().splitlines()[-1]
    c = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    c.chat.completions.create(model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    prefix = key[:12]
    gateway.cli("keys", "revoke", prefix)
    import time

    deadline = time.time() + 1.0
    while True:
        try:
            c.chat.completions.create(model="mock-gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
        except openai.AuthenticationError:
            break
        assert time.time() < deadline, "revocation must take effect within a second"
        time.sleep(0.05)
