"""Generates Tests/MeteringTests/Vectors/tokenizer_vectors.json from the corpus with the real tiktoken, and
for deepseek_v3 with Hugging Face `tokenizers` and DeepSeek's tokenizer.json (`encode(text,
add_special_tokens=False)`).

    .venv/bin/python Tests/tokenizer/generate_vectors.py

Cases: every corpus file whole and line by line, for each encoding; plus large generated inputs
(a unit repeated), whose expected token counts are stored rather than their text.
"""
import glob
import json
import os

import make_deepseek_vocab
import tiktoken
import tokenizers
from tiktoken_reference import ENCODINGS, ROOT, encode_ordinary

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "Tests", "MeteringTests", "Vectors", "tokenizer_vectors.json")

# Large inputs: each is `unit` repeated `repeat` times (about 1 MB unless noted).
GENERATED = [
    ("a_x_1M", "a", 1_000_000),
    ("digits_1M", "0123456789", 100_000),
    ("cjk_run_1M", "的一是不了人我在有他这为之大来以个中上们", 16_667),
    ("base64ish_1M", "QmFzZTY0K2RhdGEvd2l0aG91dCtzcGFjZXM9PQ", 26_316),
    ("long_word_100k", "Supercalifragilistic", 5_000),
    ("spaces_100k", " ", 100_000),
    ("newlines_100k", "\n \r\n\t", 25_000),
    ("emoji_100k", "👨\u200d👩\u200d👧", 5_000),
]


DEEPSEEK = tokenizers.Tokenizer.from_file(make_deepseek_vocab.SOURCE)


def encode(enc, text):
    if enc == "deepseek_v3":
        return DEEPSEEK.encode(text, add_special_tokens=False).ids
    return encode_ordinary(enc, text)


def main():
    make_deepseek_vocab.check()
    cases = []
    for path in sorted(glob.glob(os.path.join(HERE, "corpus", "*.txt"))):
        name = os.path.basename(path)[:-4]
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        pieces = [(name, text)] + [(f"{name}:{i + 1}", line) for i, line in enumerate(text.splitlines(keepends=True))]
        for label, t in pieces:
            for enc in ENCODINGS + ["deepseek_v3"]:
                cases.append({"encoding": enc, "name": label, "text": t, "tokens": encode(enc, t)})
    generated = []
    for label, unit, repeat in GENERATED:
        for enc in ENCODINGS + ["deepseek_v3"]:
            generated.append({"encoding": enc, "name": label, "unit": unit, "repeat": repeat,
                              "count": len(encode(enc, unit * repeat))})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"tiktoken": tiktoken.__version__ if hasattr(tiktoken, "__version__") else "0.14",
                   "tokenizers": tokenizers.__version__, "cases": cases, "generated": generated}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"{len(cases)} cases, {len(generated)} generated → {OUT}")


main()
