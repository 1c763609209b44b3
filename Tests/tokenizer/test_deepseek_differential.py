"""Differential test: the gateway's deepseek_v3 encoding against Hugging Face `tokenizers` with DeepSeek's
own tokenizer.json (`Tokenizer.from_file(...).encode(text, add_special_tokens=False)`), on the corpus, random
strings dense in what the pre-tokenizer treats specially (numbers, CJK and kana, words after punctuation,
rare whitespace, added tokens), long pieces with no whitespace, and a sweep of the Unicode code points
(all of them with TOKENIZER_SWEEP=full, an eighth, chosen per run, otherwise). Also checks that the
vocabulary the package ships is what `make_deepseek_vocab.py` derives from the checksummed tokenizer.json.

Each test prints how many strings it compared; TOKENIZER_SEED repeats a run.
"""
import glob
import json
import os
import random
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import make_deepseek_vocab  # noqa: E402

tokenizers = pytest.importorskip("tokenizers")

ROOT = make_deepseek_vocab.ROOT
BIN = os.environ.get("GATEWAY_BIN", os.path.join(ROOT, ".build", "debug", "gateway"))
SEED = int(os.environ.get("TOKENIZER_SEED", random.randrange(1 << 30)))
HERE = os.path.dirname(os.path.abspath(__file__))

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " \t\n\r", "  \n\n\r\n",
    ".,;:!?'\"()[]{}<>/\\|-_+=*&^%$#@~`", "'s't're've'm'll'd'S'T'RE'VE", "中文测试你好世界的一是不了人龥龦丁",
    "こんにちはカタカナ漢字ー・゠゛゜ゝゞゟヿ\u3040\u3097\u3099\u309a", "한국어테스트", "مرحبا بالعالم",
    "नमस्ते दुनिया", "àéîõüçñÀÉÎÕÜÇÑ", "\u0301\u0308\u0327\u20dd", "👍🏽👨‍👩‍👧🇺🇸❤️",
    "\u00a0\u2028\u2029\u3000\u2009\u200a\u1680\u0085\u000b\u000c", "١٢٣٤٥٦٧٨٩٠०१२३४५六七八ⅫⅣ½²〇",
    "\u200d\u200c\ufeff\u0000\u0001\u007f\ue000\U000f0000", "，。、「」！？：；（）《》…—",
    "㐀㐁䶵\U00020000\U0002a6d6\uf900\u9fa6\u9fff\u4dff",
]
# Words after punctuation (`.append`, `'s`, `_id`), added tokens whole and cut short, and their neighbours.
WORDS = [
    ".append", "'s", "_id", "$var", "#include", "@user", "-flag", "/path", "::Type", "(x", "[Key", "~home",
    "<think>", "</think>", "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>",
    "<｜tool▁calls▁begin｜>", "<｜tool▁sep｜>", "｜DSML｜", "<dsml:", "</dsml:", "<|EOT|>", "<｜place▁holder▁no▁7｜>",
    "<｜", "｜>", "<think", "think>", "<｜User", "▁", "<｜/table>｜", "<｜tr｜>",
]


def reference():
    return tokenizers.Tokenizer.from_file(make_deepseek_vocab.SOURCE)


def ours(texts, command=("encode",)):
    p = subprocess.run(
        [BIN, "tokens", *command, "--encoding", "deepseek_v3"],
        input="".join(json.dumps(t) + "\n" for t in texts), capture_output=True, text=True, timeout=900,
    )
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def compare(texts):
    """Token ids from `tokens encode` and counts from `tokens count --lines` against Hugging Face's."""
    ref = reference()
    got = ours(texts)
    counts = ours(texts, ("count", "--lines"))
    assert len(got) == len(texts) and len(counts) == len(texts)
    expected = [e.ids for e in ref.encode_batch(texts, add_special_tokens=False)]
    for text, tokens, count, want in zip(texts, got, counts, expected):
        assert tokens == want, f"seed {SEED}: deepseek_v3 differs on {text!r}"
        assert count == len(want), f"seed {SEED}: deepseek_v3 counts {count}, not {len(want)}, in {text!r}"
    print(f"deepseek_v3: {len(texts)} strings, {sum(len(t.encode()) for t in texts)} bytes, all equal")


def random_texts(rng, n):
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 40)):
            if rng.random() < 0.15:
                parts.append(rng.choice(WORDS))
            else:
                pool = rng.choice(POOLS)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 6))))
        out.append("".join(parts))
    return out


def long_texts(rng, n):
    """Long pieces with no whitespace: one letter or one unit repeated, random letters, base64, digits, runs
    of ideographs and kana, words glued together, and a long run of one pool."""
    out = []
    for _ in range(n):
        kind = rng.randrange(6)
        pool = rng.choice(POOLS)
        if kind == 0:
            unit = "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
            out.append(unit * rng.randint(200, 3000))
        elif kind == 1:
            out.append("".join(rng.choice(POOLS[0]) for _ in range(rng.randint(100, 4000))))
        elif kind == 2:
            alphabet = POOLS[0] + POOLS[1] + "+/"
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(100, 4000))))
        elif kind == 3:
            ranges = [(0x4E00, 0x9FA5), (0x3041, 0x30FF), (0x3400, 0x4DBF), (0xAC00, 0xD7A3)]
            out.append("".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(rng.randint(100, 3000))))
        elif kind == 4:
            words = ["the", "and", "Token", "count", "gateway", "HTTP", "json", "x", "Q", "zz", "é", "ß"]
            out.append("".join(rng.choice(words) for _ in range(rng.randint(50, 1500))))
        else:
            out.append("".join(rng.choice(pool) for _ in range(rng.randint(200, 3000))))
    out.append("a" * 200_000)
    out.append("ab" * 50_000 + "a")
    out.append("的" * 30_000)
    out.append("0" * 10_000 + "中" * 1_000 + " " * 5_000 + "x")
    return out


def test_shipped_vocabulary_is_derived_from_the_checksummed_json():
    make_deepseek_vocab.check()


def test_corpus():
    texts = []
    for path in sorted(glob.glob(os.path.join(HERE, "corpus", "*.txt"))):
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        texts.append(text)
        texts.extend(text.splitlines(keepends=True))
    compare(texts)


def test_random_strings():
    compare(random_texts(random.Random(SEED), 4000))


def test_long_pieces():
    compare(long_texts(random.Random(SEED), 60))


def test_code_point_sweep():
    full = os.environ.get("TOKENIZER_SWEEP") == "full"
    part = random.Random(SEED).randrange(8)
    code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    blocks = [code_points[k:k + 256] for k in range(0, len(code_points), 256)]
    chosen = blocks if full else [b for i, b in enumerate(blocks) if i % 8 == part]
    # Each code point between letters, after punctuation, between digits, before a space and an ideograph.
    texts = ["".join("a" + chr(c) + "A." + chr(c) + "1" + chr(c) + " " + chr(c) + "中 " for c in block)
             for block in chosen]
    compare(texts)
