"""The reference encodings: tiktoken 0.14 with the vocabularies this package ships, offline.

tiktoken finds cached vocabularies in TIKTOKEN_CACHE_DIR under the SHA-1 of their download URL
(docs/tokenizer.md); qwen is built from its .tiktoken file and pattern, and its input is NFC-normalized first,
as Qwen's reference tokenizer does.
"""
import os
import shutil
import tempfile
import unicodedata

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VOCAB = os.path.join(ROOT, "Sources", "Metering", "Resources", "vocab")
CACHE_NAMES = {
    "o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790",
    "cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
}
QWEN_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
ENCODINGS = ["o200k_base", "cl100k_base", "qwen"]

_cache = tempfile.mkdtemp(prefix="tiktoken-cache-")
for name, sha in CACHE_NAMES.items():
    shutil.copyfile(os.path.join(VOCAB, name + ".tiktoken"), os.path.join(_cache, sha))
os.environ["TIKTOKEN_CACHE_DIR"] = _cache

import tiktoken  # noqa: E402  (after TIKTOKEN_CACHE_DIR is set)
from tiktoken.load import load_tiktoken_bpe  # noqa: E402

_loaded = {}


def encoding(name):
    if name not in _loaded:
        if name == "qwen":
            specials = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
            specials.update({f"<|extra_{i}|>": 151646 + i for i in range(205)})
            _loaded[name] = tiktoken.Encoding(
                name="qwen", pat_str=QWEN_PATTERN,
                mergeable_ranks=load_tiktoken_bpe(os.path.join(VOCAB, "qwen.tiktoken")), special_tokens=specials)
        else:
            _loaded[name] = tiktoken.get_encoding(name)
    return _loaded[name]


def encode_ordinary(name, text):
    """Token ids with special-token text treated as ordinary text."""
    if name == "qwen":
        text = unicodedata.normalize("NFC", text)
    return encoding(name).encode_ordinary(text)
