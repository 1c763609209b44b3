"""Single-threaded tiktoken throughput on the same files: `encode_ordinary`, best of N passes."""
import os
import sys
import time

import tiktoken
from tiktoken.load import load_tiktoken_bpe

QWEN_PAT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def encoding(name, vocab_dir):
    if name == "qwen":
        ranks = load_tiktoken_bpe(os.path.join(vocab_dir, "qwen.tiktoken"))
        return tiktoken.Encoding(name="qwen", pat_str=QWEN_PAT, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 151643})
    return tiktoken.get_encoding(name)


def main():
    name, vocab_dir, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    enc = encoding(name, vocab_dir)
    enc.encode_ordinary("warm up")
    for path in sys.argv[4:]:
        text = open(path, encoding="utf-8").read()
        n = len(text.encode())
        passes, start, best = 0, time.perf_counter(), float("inf")
        try:
            while True:
                t0 = time.perf_counter()
                tokens = len(enc.encode_ordinary(text))
                best = min(best, time.perf_counter() - t0)
                passes += 1
                if time.perf_counter() - start >= seconds:
                    break
        except BaseException as error:  # noqa: BLE001 - a Rust panic is a BaseException
            # tiktoken's regex engine overflows its stack on some inputs (a megabyte of space and tab
            # under o200k's and qwen's patterns); report it instead of ending the run.
            print(f"{path}: tiktoken failed: {type(error).__name__}: {error}", file=sys.stderr)
            print(f"{path}\t{n}\t-1\t0\t0")
            continue
        print(f"{path}\t{n}\t{tokens}\t{n / best / 1e6:.1f}\t{best * 1000:.2f}")


main()
