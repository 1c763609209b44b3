"""Check of qwen's NFC against Python's unicodedata over the pairs of characters where normalization
acts: every mark (nonzero combining class), character with a canonical decomposition or part of one,
followed by every such character (in "a…b"); and every starter followed by every second part of a
two-part decomposition (a quarter of the starters above U+FFFF, chosen at random). Each text goes
through `gateway tokens encode --encoding qwen` and through tiktoken after Python's NFC; equal tokens
mean equal normalized bytes, since decoding inverts encoding.

All of them (24.3 million) take four and a half minutes with the release build, too long for every
test run; run it when the Swift toolchain changes, since Swift's own normalization is what it guards
against:

    swift build -c release --product gateway
    .venv/bin/python Tests/tokenizer/nfc_exhaustive.py [--share 0.02] [GATEWAY_BIN]

The differential test checks a random share of them on every run (`pair_texts`).
"""
import functools
import json
import os
import random
import subprocess
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(__file__))
from tiktoken_reference import ROOT, encoding  # noqa: E402

QWEN = encoding("qwen")


@functools.cache
def pools():
    """From this Python's Unicode data (14.0 for Python 3.11): the marks (nonzero combining class), the
    characters with a canonical decomposition, the parts of those decompositions, the second parts of
    two-part ones, and the starters (combining class 0)."""
    marks, decomposable, parts, seconds, starters = [], [], set(), set(), []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF or unicodedata.category(chr(c)) in ("Cn", "Co", "Cs"):
            continue
        if unicodedata.combining(chr(c)):
            marks.append(c)
        else:
            starters.append(c)
        d = unicodedata.decomposition(chr(c))
        if d and not d.startswith("<"):
            decomposable.append(c)
            split = [int(x, 16) for x in d.split()]
            parts.update(split)
            if len(split) == 2:
                seconds.add(split[1])
    return {"marks": marks, "decomposable": decomposable, "parts": sorted(parts), "seconds": sorted(seconds),
            "starters": starters}


def pair_texts(rng, share=1.0):
    """The texts above, each kept with probability `share`."""
    p = pools()
    acting = sorted(set(p["marks"]) | set(p["decomposable"]) | set(p["parts"]))
    seconds = p["seconds"]
    for a in acting:
        for b in acting:
            if share >= 1 or rng.random() < share:
                yield "a" + chr(a) + chr(b) + "b"
    for a in p["starters"]:
        if a > 0xFFFF and rng.random() > 0.25:
            continue
        for b in seconds:
            if share >= 1 or rng.random() < share:
                yield chr(a) + chr(b) + " "


def differing(binary, batch):
    """The texts of `batch` whose qwen tokens from `binary` differ from tiktoken's after Python's NFC."""
    p = subprocess.run([binary, "tokens", "encode", "--encoding", "qwen"],
                       input="".join(json.dumps(t) + "\n" for t in batch), capture_output=True, text=True, check=True)
    bad = []
    for text, line in zip(batch, p.stdout.splitlines()):
        if json.loads(line) != QWEN.encode_ordinary(unicodedata.normalize("NFC", text)):
            bad.append(text)
    return bad


def main():
    args = sys.argv[1:]
    share = 1.0
    if args[:1] == ["--share"]:
        share, args = float(args[1]), args[2:]
    binary = args[0] if args else os.path.join(ROOT, ".build", "release", "gateway")
    total, bad, batch = 0, [], []
    for t in pair_texts(random.Random(1), share):
        batch.append(t)
        if len(batch) == 200_000:
            bad += differing(binary, batch)
            total += len(batch)
            batch = []
            print(f"{total} checked, {len(bad)} differ", flush=True)
    if batch:
        bad += differing(binary, batch)
        total += len(batch)
    for t in bad[:20]:
        print("differs:", " ".join(f"{ord(c):04X}" for c in t))
    print(f"{total} texts, {len(bad)} differ")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
