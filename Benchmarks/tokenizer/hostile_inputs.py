"""Writes about 1 MB each of inputs chosen to make a tokenizer slow into the directory given as argv[1],
and prints their paths. Runs of one mark or a short unit (the encoder's longest match never stands),
long single pieces of random marks or letters in many scripts, rare whitespace, combining marks, and
text that qwen's NFC pass must look at. Time them with

    python3 Benchmarks/tokenizer/hostile_inputs.py /tmp/hostile |
        xargs .build/release/gateway tokens bench --encoding qwen --seconds 0.3

(columns: file, bytes, tokens, MB/s, ms per pass). Every one should count in well under 100 ms.
"""
import os
import random
import sys

N = 1_000_000
rng = random.Random(7)


def pick(alphabet, count):
    return "".join(rng.choice(alphabet) for _ in range(count))


def scalars(low, high, count):
    return "".join(chr(rng.randint(low, high)) for _ in range(count))


cases = {
    "spaces": " " * N,
    "newlines": "\n" * N,
    "crlf": "\r\n" * (N // 2),
    "space_tab": " \t" * (N // 2),
    "nbsp": "\u00a0" * (N // 2),
    "ideographic_space": "\u3000" * (N // 3),
    "slashes": "/" * N,
    "apostrophes": "'" * N,
    "contractions": "'s" * (N // 2),
    "punctuation": pick("!@#$%^&*()-=+[]{};:,.<>?/|~`", N),
    "ascii_random": scalars(0x20, 0x7E, N),
    "hex": pick("0123456789abcdef", N),
    "digits_spaced": " 1" * (N // 2),
    "fullwidth_digits": "\uff11" * (N // 3),
    "case_flips": pick("aA", N),
    "e_acute": "\u00e9" * (N // 2),
    "combining_marks": "a" + "\u0301" * (N // 2),
    "latin_greek_cyrillic": scalars(0x80, 0x7FF, N // 2),
    "greek_case": pick("αβγΑΒΓδΔ", N // 2),
    "cyrillic_case": pick("абвгдАБВГДеЁжЖ", N // 2),
    "arabic": pick("ابتثجحخدذرزسشصضطظعغفقكلمنهوي", N // 2),
    "devanagari": "".join(
        rng.choice("कखगघचछजझटठडढणतथदधनपफबभमयरलवशसह") + rng.choice(["", "ा", "ि", "ी", "ु", "्"])
        for _ in range(N // 5)
    ),
    "thai": scalars(0x0E01, 0x0E30, N // 3),
    "hangul": scalars(0xAC00, 0xD7A3, N // 3),
    "cjk_extension_b": scalars(0x20000, 0x2A6DF, N // 4),
    "emoji_zwj": "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466" * (N // 25),
}
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
paths = []
for name, text in cases.items():
    path = os.path.join(out, name + ".txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.encode()[:N].decode("utf-8", "ignore"))
    paths.append(path)
print(" ".join(paths))
