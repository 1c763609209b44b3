"""Writes the tokenizer benchmark inputs (about 1 MB each) into the directory given as argv[1].

Real text comes from Debian's fortunes (English) and fortunes-zh (Chinese), code from the Swift and
C sources of the package checkouts; the worst cases are generated: a megabyte of one letter, random
base64, digits, and one long run of CJK characters with no whitespace; and two that make a backtracking
encoder take back nearly every position (its longest match never stands): a megabyte of `/`, and of
space and tab alternating.
"""
import base64
import glob
import os
import random
import sys

SIZE = 1_000_000
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def collect(paths, size=SIZE):
    """Concatenates the readable files, repeating them if they are shorter than `size` bytes."""
    texts = []
    for p in paths:
        try:
            with open(p, encoding="utf-8") as f:
                texts.append(f.read())
        except (UnicodeDecodeError, OSError):
            continue
    if not texts:
        return ""
    buf, total = [], 0
    while total < size:
        for t in texts:
            buf.append(t)
            total += len(t.encode())
            if total >= size:
                break
    return "".join(buf).encode()[:size].decode("utf-8", "ignore")


fortunes = "/usr/share/games/fortunes"
CHINESE = {"chinese", "song100", "tang300"}
plain = [p for p in sorted(glob.glob(fortunes + "/*")) if os.path.isfile(p) and "." not in os.path.basename(p)]
english = [p for p in plain if os.path.basename(p) not in CHINESE]
chinese = [p for p in plain if os.path.basename(p) in CHINESE]
code = sorted(glob.glob(root + "/.build/checkouts/swift-nio/Sources/**/*.swift", recursive=True))
code += sorted(glob.glob(root + "/.build/checkouts/swift-nio/Sources/**/*.c", recursive=True))

rng = random.Random(7)
cases = {
    "english.txt": collect(english),
    "chinese.txt": collect(chinese),
    "code.txt": collect(code),
    "a_1mb.txt": "a" * SIZE,
    "base64_1mb.txt": base64.b64encode(rng.randbytes(SIZE * 3 // 4)).decode()[:SIZE],
    "digits_1mb.txt": "".join(rng.choice("0123456789") for _ in range(SIZE)),
    "cjk_run_1mb.txt": "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(SIZE // 3)),
    "slashes_1mb.txt": "/" * SIZE,
    "space_tab_1mb.txt": " \t" * (SIZE // 2),
}
for name, text in cases.items():
    if len(text.encode()) < SIZE // 2:
        sys.exit(f"{name}: not enough source text ({len(text.encode())} bytes); install fortunes and fortunes-zh")
    with open(os.path.join(out, name), "w", encoding="utf-8") as f:
        f.write(text)
print(" ".join(os.path.join(out, n) for n in cases))
