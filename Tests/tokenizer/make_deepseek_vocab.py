"""Derives the compact DeepSeek V3 vocabulary the package ships from DeepSeek's `tokenizer.json`.

    .venv/bin/python Tests/tokenizer/make_deepseek_vocab.py [path/to/deepseek_v3_tokenizer.json]

The default source is ../shared/vocab/deepseek_v3_tokenizer.json, checked against the SHA-256 that
../shared/vocab/SHA256SUMS gives it. Writes Sources/Metering/Resources/vocab/deepseek_v3.bpe, copies the
licence beside it and updates its lines in that folder's SHA256SUMS. `check()` (used by the tests)
rebuilds the file in memory and compares it with the shipped one, byte for byte.

Format (little-endian), loaded by `ByteLevelVocabulary.swift`:
    8 bytes  magic "DSBPEv1\\n"
    32 bytes SHA-256 of the tokenizer.json it was derived from
    u32 vocabulary size, u32 merge count, u32 id of merge 0's token, u32 added-token count
    256 x u32: the token of each byte
    merges x (u32 left, u32 right): merge r joins left and right into token `first + r`
    added tokens x (u32 id, u8 flags: 1 special, 2 normalized; u16 length, UTF-8 content)
"""
import hashlib
import json
import os
import shutil
import struct
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.join(ROOT, "..", "shared", "vocab")
SOURCE = os.path.join(SHARED, "deepseek_v3_tokenizer.json")
VOCAB = os.path.join(ROOT, "Sources", "Metering", "Resources", "vocab")
OUT = os.path.join(VOCAB, "deepseek_v3.bpe")
LICENSE = "deepseek_v3_tokenizer.LICENSE"
MAGIC = b"DSBPEv1\n"


def byte_level_alphabet():
    """GPT-2's byte ↔ printable character map, which Hugging Face's ByteLevel pre-tokenizer uses."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def expected_sha256(name):
    """The SHA-256 that ../shared/vocab/SHA256SUMS gives `name`."""
    with open(os.path.join(SHARED, "SHA256SUMS")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[1] == name:
                return parts[0]
    raise SystemExit(f"{name} is not in {SHARED}/SHA256SUMS")


def build(source=SOURCE):
    raw = open(source, "rb").read()
    digest = hashlib.sha256(raw).digest()
    d = json.loads(raw)
    model = d["model"]
    assert model["type"] == "BPE" and not model.get("ignore_merges") and model.get("byte_fallback") in (None, False)
    assert model.get("continuing_subword_prefix") is None and model.get("end_of_word_suffix") is None
    vocab = model["vocab"]
    to_byte = byte_level_alphabet()
    byte_ids = [vocab["".join(c for c, b in to_byte.items() if b == x)] for x in range(256)]
    merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
    first = vocab[merges[0][0] + merges[0][1]]
    pairs = []
    for r, (a, b) in enumerate(merges):
        # The loader derives each merge's token from its rank: check that holds.
        assert vocab[a + b] == first + r, f"merge {r} does not make token {first + r}"
        pairs.append((vocab[a], vocab[b]))
    added = sorted(d["added_tokens"], key=lambda t: t["id"])
    for t in added:
        assert not (t["lstrip"] or t["rstrip"] or t["single_word"]), t
    covered = set(byte_ids) | set(range(first, first + len(pairs))) | {t["id"] for t in added}
    assert all(i in covered for i in vocab.values()), "a vocabulary entry is neither a byte, a merge nor added"
    out = bytearray(MAGIC + digest)
    out += struct.pack("<4I", len(vocab), len(pairs), first, len(added))
    out += struct.pack("<256I", *byte_ids)
    for a, b in pairs:
        out += struct.pack("<2I", a, b)
    for t in added:
        content = t["content"].encode()
        out += struct.pack("<IBH", t["id"], (1 if t["special"] else 0) | (2 if t["normalized"] else 0), len(content))
        out += content
    return bytes(out)


def check():
    """The shipped file is what the shared tokenizer.json (matching its checksum) derives."""
    raw = open(SOURCE, "rb").read()
    assert hashlib.sha256(raw).hexdigest() == expected_sha256("deepseek_v3_tokenizer.json")
    built = build()
    with open(OUT, "rb") as f:
        assert f.read() == built, "deepseek_v3.bpe differs from what make_deepseek_vocab.py derives"
    return built


def update_sums(names):
    path = os.path.join(VOCAB, "SHA256SUMS")
    lines = [line for line in open(path).read().splitlines() if line.split("  ")[-1] not in names]
    for name in names:
        lines.append(f"{hashlib.sha256(open(os.path.join(VOCAB, name), 'rb').read()).hexdigest()}  {name}")
    with open(path, "w") as f:
        f.write("\n".join(sorted(lines, key=lambda line: line.split("  ")[-1])) + "\n")


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else SOURCE
    if source == SOURCE:
        assert hashlib.sha256(open(source, "rb").read()).hexdigest() == expected_sha256("deepseek_v3_tokenizer.json")
    data = build(source)
    with open(OUT, "wb") as f:
        f.write(data)
    shutil.copyfile(os.path.join(os.path.dirname(source), LICENSE), os.path.join(VOCAB, LICENSE))
    update_sums(["deepseek_v3.bpe", LICENSE])
    print(f"{len(data)} bytes → {OUT}")


if __name__ == "__main__":
    main()
