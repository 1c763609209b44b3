"""The gateway's chat count endpoint for DeepSeek's models against Hugging Face `tokenizers` with DeepSeek's
tokenizer.json, on random chats rendered in DeepSeek-V3.1's chat template: the count must be exact, and say
so (`x-gateway-token-count: exact`, `x-gateway-tokenizer: deepseek_v3`)."""
import json
import os
import random
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tokenizer"))
import make_deepseek_vocab  # noqa: E402
from conftest import count_chat_tokens  # noqa: E402

tokenizers = pytest.importorskip("tokenizers")

SEED = int(os.environ.get("TOKENIZER_SEED", random.randrange(1 << 30)))
PIECES = ["Hello", " world", "!", " don't", "\n", "\n\n", "  ", " 12345", "中文", "测试", "日本語のテキスト", "한국어",
          "é", "👍🏽", "<think>", "</think>", "<｜User｜>", "```py\nx=1\n```", "{\"a\": [1, 2]}", "\u3000", "QmFzZTY0"]
BOS, EOS, USER, ASSISTANT = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"


def render(messages):
    """DeepSeek-V3.1's template with the generation prompt, non-thinking: system prompts first (joined by
    a blank line), then each turn; an assistant turn keeps what follows its first `</think>` unless it
    answers tool results."""
    out = BOS + "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    last_user = after_tool = False
    for m in messages:
        if m["role"] == "user":
            out += USER + m["content"]
            last_user, after_tool = True, False
        elif m["role"] == "assistant" and "tool_calls" in m:
            out += ASSISTANT + "</think>" if last_user else ""
            calls = "".join(f"<｜tool▁call▁begin｜>{c['function']['name']}<｜tool▁sep｜>{c['function']['arguments']}"
                            "<｜tool▁call▁end｜>" for c in m["tool_calls"])
            out += (m["content"] or "") + "<｜tool▁calls▁begin｜>" + calls + "<｜tool▁calls▁end｜>" + EOS
            last_user = after_tool = False
        elif m["role"] == "assistant":
            out += ASSISTANT + "</think>" if last_user else ""
            content = m["content"]
            if not after_tool and "</think>" in content:
                content = content.split("</think>", 1)[1]
            out += content + EOS
            last_user = after_tool = False
        elif m["role"] == "tool":
            out += "<｜tool▁output▁begin｜>" + m["content"] + "<｜tool▁output▁end｜>"
            last_user, after_tool = False, True
    return out + (ASSISTANT + "</think>" if last_user else "")


def random_chat(rng):
    text = lambda: "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 30)))  # noqa: E731
    messages = [{"role": "system", "content": text()} for _ in range(rng.randint(0, 2))]
    for _ in range(rng.randint(1, 4)):
        messages.append({"role": "user", "content": text()})
        kind = rng.random()
        if kind < 0.3:
            messages.append({"role": "assistant", "content": rng.choice(["", text()]), "tool_calls": [
                {"type": "function", "function": {"name": rng.choice(["get_weather", "搜索"]),
                                                  "arguments": json.dumps({"q": text()}, ensure_ascii=False)}}
                for _ in range(rng.randint(1, 3))]})
            messages.append({"role": "tool", "content": text()})
            messages.append({"role": "assistant", "content": text() + "</think>" + text()})
        elif kind < 0.8:
            messages.append({"role": "assistant", "content": text() + rng.choice(["", "</think>"]) + text()})
    return messages


def counted(gateway, model, messages):
    count, headers = count_chat_tokens(gateway, model, messages)
    assert headers["x-gateway-token-count"] == "exact"
    assert headers["x-gateway-tokenizer"] == "deepseek_v3"
    return count


def test_documented_example(gateway):
    """DeepSeek's documentation reports prompt_tokens 10 for this request."""
    messages = [{"role": "system", "content": "You are a helpful assistant"}, {"role": "user", "content": "Hi"}]
    assert counted(gateway, "deepseek-chat", messages) == 10


def test_chat_counts_match_the_rendered_template(gateway):
    reference = tokenizers.Tokenizer.from_file(make_deepseek_vocab.SOURCE)
    rng = random.Random(SEED)
    for _ in range(150):
        messages = random_chat(rng)
        expected = len(reference.encode(render(messages), add_special_tokens=False).ids)
        for model in ("deepseek-chat", "deepseek-reasoner"):
            assert counted(gateway, model, messages) == expected, \
                f"seed {SEED}: {model} on {json.dumps(messages, ensure_ascii=False)}"
