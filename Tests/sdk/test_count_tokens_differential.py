"""The gateway's OpenAI-style count endpoint against the OpenAI cookbook's counting recipe computed with
the real tiktoken (3 tokens per message, 1 per name, 3 for reply priming; every value's tokens), on
random chats: the count that budgets reserve before a request goes upstream."""
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tokenizer"))
from tiktoken_reference import encode_ordinary  # noqa: E402
from conftest import count_chat_tokens  # noqa: E402

SEED = int(os.environ.get("TOKENIZER_SEED", random.randrange(1 << 30)))
PIECES = ["Hello", " world", "!", " I'm", " don't", "\n", "\n\n", "  ", "\t", " 12345", " 3.14", "中文", "测试",
          "日本語", "한국어", "é", "e\u0301", "\uac00\u11a8", "👍🏽", "👨\u200d👩\u200d👧", "<|endoftext|>", "```py\nx=1\n```",
          "{\"a\": [1, 2]}", "ǅ", "'S", " \u00a0", "\u3000", "ΣΊΣΥΦΟΣ", "مرحبا", "नमस्ते", "QmFzZTY0K2RhdGE="]


def cookbook(encoding, messages):
    tokens = 3  # reply priming
    for message in messages:
        tokens += 3
        for key, value in message.items():
            tokens += len(encode_ordinary(encoding, value))
            if key == "name":
                tokens += 1
    return tokens


def random_chat(rng):
    messages = []
    for _ in range(rng.randint(1, 6)):
        message = {"role": rng.choice(["system", "user", "assistant"]),
                   "content": "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))}
        if rng.random() < 0.3:
            message["name"] = rng.choice(["alice", "Bob_2", "tool-runner"])
        messages.append(message)
    return messages


def counted(gateway, model, messages):
    return count_chat_tokens(gateway, model, messages)[0]


def test_chat_counts_match_the_cookbook_recipe(gateway):
    rng = random.Random(SEED)
    for model, encoding in [("mock-gpt-4o-mini", "o200k_base"), ("gpt-3.5-turbo", "cl100k_base"), ("mock-qwen", "qwen")]:
        for _ in range(60):
            messages = random_chat(rng)
            assert counted(gateway, model, messages) == cookbook(encoding, messages), \
                f"seed {SEED}: {model} on {json.dumps(messages, ensure_ascii=False)}"
