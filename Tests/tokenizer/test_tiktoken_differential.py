"""Randomized differential test: the gateway's tokenizer against the real tiktoken, on inputs neither
has seen before. Also sweeps Unicode code points so the category tables are checked against
tiktoken's regex engine (all of them with TOKENIZER_SWEEP=full, an eighth, chosen per run, otherwise).

Short mixed strings reach the pre-tokenizer's corners; long pieces reach the merge paths that only
long input takes (backtracking, random letters, runs of one unit); and strings dense with marks,
decomposable characters and Hangul jamo check qwen's NFC against Python's `unicodedata`, which is
what Qwen's tokenizer applies.
"""
import json
import os
import random
import subprocess
import sys
import unicodedata

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from nfc_exhaustive import differing, pair_texts, pools  # noqa: E402
from tiktoken_reference import ENCODINGS, ROOT, encode_ordinary  # noqa: E402

BIN = os.environ.get("GATEWAY_BIN", os.path.join(ROOT, ".build", "debug", "gateway"))
SEED = int(os.environ.get("TOKENIZER_SEED", random.randrange(1 << 30)))

POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " \t\n\r", "  \n\n\r\n",
    ".,;:!?'\"()[]{}<>/\\|-_+=*&^%$#@~`", "'s't're've'm'll'd'S'T'RE'VE'M'LL'D", "中文测试你好世界的一是不了人",
    "こんにちはカタカナ漢字", "한국어테스트", "مرحبا بالعالم", "नमस्ते दुनिया", "àéîõüçñÀÉÎÕÜÇÑ",
    "\u0301\u0308\u0327\u20dd", "👍🏽👨‍👩‍👧🇺🇸❤️", "\u00a0\u2028\u2029\u3000\u2009\u200a\u1680\u0085\u000b\u000c",
    "١٢٣٤٥٦٧٨٩٠०१२३४५六七八ⅫⅣ½²", "ǅǈǋᾈᾉ", "ſſſ'ſ", "ʰʲˠ々ー", "\u200d\u200c\ufeff", "ΑΒΓαβγДЖЗджз",
]


def ours(encoding, texts, command=("encode",)):
    p = subprocess.run(
        [BIN, "tokens", *command, "--encoding", encoding],
        input="".join(json.dumps(t) + "\n" for t in texts), capture_output=True, text=True, timeout=600,
    )
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def random_texts(rng, n):
    out = []
    for _ in range(n):
        length = rng.randint(1, 80)
        out.append("".join(rng.choice(rng.choice(POOLS)) for _ in range(length)))
    return out


def compare(encoding, texts):
    """Token ids from `tokens encode`, and counts from `tokens count --lines` (counting has paths of its
    own, which find no ids), against tiktoken's."""
    got = ours(encoding, texts)
    counts = ours(encoding, texts, ("count", "--lines"))
    assert len(got) == len(texts) and len(counts) == len(texts)
    for text, tokens, count in zip(texts, got, counts):
        expected = encode_ordinary(encoding, text)
        assert tokens == expected, f"seed {SEED}: {encoding} differs on {text!r}"
        assert count == len(expected), f"seed {SEED}: {encoding} counts {count}, not {len(expected)}, in {text!r}"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_random_strings(encoding):
    rng = random.Random(SEED)
    compare(encoding, random_texts(rng, 3000))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_code_point_sweep(encoding):
    full = os.environ.get("TOKENIZER_SWEEP") == "full"
    rng = random.Random(SEED)
    part = rng.randrange(8)
    code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    blocks = [code_points[k:k + 256] for k in range(0, len(code_points), 256)]
    chosen = blocks if full else [b for i, b in enumerate(blocks) if i % 8 == part]
    # Each code point between letters, after an upper-case letter, between digits and before a space.
    texts = ["".join("a" + chr(c) + "A " + chr(c) + "1" + chr(c) + " " for c in block) for block in chosen]
    compare(encoding, texts)


def long_texts(rng, n):
    """Long pieces: runs from one pool, runs of one unit past 8 KiB (with a head and a tail), random
    letters with a random share of capitals and vowels, base64 and hex, words glued together, and runs
    of random (mostly rare) ideographs, kana and Hangul, with other three-byte scripts at times, which the
    encoder cuts between characters."""
    out = []
    for _ in range(n):
        kind = rng.randrange(7)
        pool = rng.choice(POOLS)
        if kind == 0:
            out.append("".join(rng.choice(pool) for _ in range(rng.randint(16, 1500))))
        elif kind == 1:
            unit = "".join(rng.choice(pool) for _ in range(rng.randint(1, 16)))
            size = len(unit.encode())
            head = "".join(rng.choice(pool) for _ in range(rng.randint(0, 4)))
            tail = "".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
            out.append(head + unit * rng.randint(8300 // size, 12000 // size) + tail)
        elif kind == 2:
            capitals, vowels = rng.random(), rng.random()
            letters = (rng.choice("aeiou") if rng.random() < vowels else rng.choice("bcdfghjklmnpqrstvwxyz")
                       for _ in range(rng.randint(16, 400)))
            out.append("".join(c.upper() if rng.random() < capitals else c for c in letters))
        elif kind == 3:
            alphabet = rng.choice([POOLS[0] + POOLS[1] + "+/", "0123456789abcdef", POOLS[0] + POOLS[1] + "-_"])
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(16, 3000))))
        elif kind == 4:
            words = ["the", "and", "token", "Count", "gateway", "HTTP", "json", "Swift", "x", "Q", "zz", "中文"]
            out.append("".join(rng.choice(words) for _ in range(rng.randint(5, 600))))
        elif kind == 5:
            out.append("".join(rng.choice(rng.choice(POOLS)) for _ in range(rng.randint(80, 800))))
        else:
            ranges = [(0x4E00, 0x9FFF), (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0xAC00, 0xD7A3), (0x3041, 0x30FF)]
            if rng.random() < 0.3:
                # Three-byte scripts next to the few tokens that hold less than a character on either
                # side of a boundary (Thai, Telugu, Georgian, Khmer, halfwidth forms, Hangul from U+D000).
                ranges += [(0x0E01, 0x0E3A), (0x0C00, 0x0C7F), (0x10A0, 0x10FF), (0x1780, 0x17DD), (0xFF61, 0xFFDC),
                           (0xD000, 0xD7A3)]
            common = POOLS[6] + "，。、"
            chars = (chr(rng.randint(*rng.choice(ranges))) if rng.random() < 0.8 else rng.choice(common)
                     for _ in range(rng.randint(20, 1500)))
            # Only characters that CI's Python knows (see the README on NFC and Unicode versions).
            out.append("".join(c for c in chars if unicodedata.category(c) != "Cn"))
    return out


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_long_pieces(encoding):
    rng = random.Random(SEED)
    compare(encoding, long_texts(rng, 120))


def normalization_pools():
    """Characters NFC acts on (``nfc_exhaustive.pools``): marks, decomposable characters and their parts;
    Hangul jamo and syllables; and characters above U+FFFF, whose low 16 bits Swift's own normalization
    mistook for a character to compose."""
    p = pools()
    astral = [chr(c) for c in p["starters"] if c > 0xFFFF and (c & 0xFFFF) < 0x2000]
    jamo = [chr(c) for c in list(range(0x1100, 0x1116)) + list(range(0x1160, 0x1178)) + list(range(0x11A6, 0x11C5))]
    syllables = ["\uac00", "\uac01", "\ud558", "\ud7a3", "\ud55c"]
    return [[chr(c) for c in p[k]] for k in ("marks", "decomposable", "parts")] + [
        jamo + syllables, astral, list("aeoAEO xz中\n.'07")]


def test_qwen_normalization():
    rng = random.Random(SEED)
    groups = normalization_pools()
    texts = ["".join(rng.choice(rng.choice(groups)) for _ in range(rng.randint(1, rng.choice([8, 60, 600]))))
             for _ in range(1500)]
    compare("qwen", texts)


def test_qwen_normalization_pairs():
    """A random share (one in 400) of the pairs that `nfc_exhaustive.py` checks all of."""
    bad = differing(BIN, list(pair_texts(random.Random(SEED), 1 / 400)))
    assert not bad, f"seed {SEED}: qwen differs on {[' '.join(f'{ord(c):04X}' for c in t) for t in bad[:5]]}"
