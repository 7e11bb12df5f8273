"""Tokenizers: the real Qwen2 tokenizer from ``ckpts/`` and a tiny one trained on the fly for tests.

Both get MindDrive's special tokens (image placeholder, planning queries, meta-actions)
added as single ids, so the decision is exactly one token.
"""

from __future__ import annotations

import os
from functools import lru_cache

from minddrive.constants import PATH_ACTIONS, SPECIAL_TOKENS, SPEED_ACTIONS
from minddrive.errors import UserError

CHAT_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def add_minddrive_tokens(tokenizer) -> dict[str, int]:
    """Add the special tokens (idempotent) and return ``{token: id}``."""
    tokenizer.add_tokens(list(SPECIAL_TOKENS), special_tokens=True)
    return {tok: tokenizer.convert_tokens_to_ids(tok) for tok in SPECIAL_TOKENS}


def load_tokenizer(path: str):
    """Load a tokenizer saved with ``save_pretrained`` (e.g. ``ckpts/Qwen2-0.5B``) and add our tokens."""
    from transformers import AutoTokenizer

    if not os.path.isdir(path):
        raise UserError(f"{path}: tokenizer directory not found (expected a Qwen2 checkpoint under ckpts/)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    add_minddrive_tokens(tokenizer)
    return tokenizer


def _tiny_corpus() -> list[str]:
    from minddrive.data import prompts

    lines = [prompts.decision_prompt(p) for p in range(len(PATH_ACTIONS))]
    lines += [prompts.action_prompt(s, p) for s in range(len(SPEED_ACTIONS)) for p in range(len(PATH_ACTIONS))]
    lines += [
        "The ego vehicle is driving on a road with a car ahead, a pedestrian on the right and a red traffic light.",
        "What can you tell about the current driving conditions from the images? Where are the critical objects?",
        "There is a vehicle 12.5 meters ahead in the same lane moving at 3.0 m/s; the light is green, yellow or red.",
        "Please describe your driving behavior and explain the reasons. Stop sign, junction, turn left, turn right.",
        "0 1 2 3 4 5 6 7 8 9 meters seconds m/s left right front back cyclist construction accident emergency",
    ]
    return lines


@lru_cache(maxsize=4)
def build_tiny_tokenizer(vocab_size: int = 512):
    """A small byte-level BPE trained on MindDrive prompt text, for tests and the CPU quick start."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(CHAT_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_tiny_corpus() * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    add_minddrive_tokens(fast)
    return fast
