"""Single-threaded Hugging Face `tokenizers` throughput on the same files, for deepseek_v3: DeepSeek's
tokenizer.json, `encode(text, add_special_tokens=False)`, best of N passes. Prints what tiktoken_bench.py
prints: file, bytes, tokens, MB/s, ms per pass."""
import os
import sys
import time

# One thread: the Rust side would otherwise parallelize nothing for a single text, but say so anyway.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402


def main():
    path_json, seconds = sys.argv[1], float(sys.argv[2])
    tokenizer = Tokenizer.from_file(path_json)
    tokenizer.encode("warm up", add_special_tokens=False)
    for path in sys.argv[3:]:
        text = open(path, encoding="utf-8").read()
        n = len(text.encode())
        passes, start, best = 0, time.perf_counter(), float("inf")
        while True:
            t0 = time.perf_counter()
            tokens = len(tokenizer.encode(text, add_special_tokens=False).ids)
            best = min(best, time.perf_counter() - t0)
            passes += 1
            if time.perf_counter() - start >= seconds:
                break
        print(f"{path}\t{n}\t{tokens}\t{n / best / 1e6:.1f}\t{best * 1000:.2f}")


main()
