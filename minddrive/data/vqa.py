"""Stage-specific QA sampling and conversation tokenisation with answer-only labels.

Stage 1 trains scene description and critical-object QA (the Chat-B2D turns of the frame, in file order);
stage 2 trains the decision QA then the planning QA, exactly the text ``prompts.action_prompt`` renders, so
the speed token sits where the policy scores it; stage 3 mixes both, a planning sample with probability
``planning_qa_ratio``.
"""

from __future__ import annotations

import warnings

import numpy as np

from minddrive.constants import DECISION_QUESTION, IMAGE_TOKEN, SPEED_TOKENS
from minddrive.data import prompts

IGNORE_INDEX = -100
MAX_LENGTH = 2048
STAGES = (1, 2, 3)


def with_scene_prefix(question: str) -> str:
    """The first question of a conversation carries ``prompts.SCENE_PREFIX`` (and only one image token)."""
    stripped = question
    for prefix in (prompts.SCENE_PREFIX, IMAGE_TOKEN):
        if stripped.startswith(prefix):
            stripped = stripped[len(prefix):]
    return f"{prompts.SCENE_PREFIX} {stripped.strip()}"


def description_turns(vqa_turns: list[prompts.Turn]) -> list[prompts.Turn]:
    """Chat-B2D turns other than the meta-action and planning QA (those train in the planning format only).

    A meta-action QA is known by its question or by a speed token in its answer (Chat-B2D-plus puts it last,
    and upstream finds it by position, not by question text).
    """
    turns = [(q, a) for q, a in vqa_turns if DECISION_QUESTION not in q and prompts.PLANNING_QUESTION not in q
             and not any(token in a for token in SPEED_TOKENS)]
    if turns:
        turns[0] = (with_scene_prefix(turns[0][0]), turns[0][1])
    return turns


def planning_turns(speed_action: int, path_action: int, command: int) -> list[prompts.Turn]:
    """Decision QA then planning QA, as ``prompts.action_prompt``; without a speed label, planning QA only."""
    if speed_action < 0:
        return [(with_scene_prefix(prompts.PLANNING_QUESTION), prompts.PLANNING_ANSWER)]
    path = path_action if path_action >= 0 else command
    return [(prompts.decision_question(command), prompts.decision_answer(speed_action, path)),
            (prompts.PLANNING_QUESTION, prompts.PLANNING_ANSWER)]


def sample_turns(stage: int, vqa_turns: list[prompts.Turn], speed_action: int, path_action: int, command: int,
                 rng: np.random.Generator, planning_qa_ratio: float = 0.8) -> tuple[list[prompts.Turn], bool]:
    """The conversation a sample trains in ``stage`` and whether it is a planning sample."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage}")
    description = description_turns(vqa_turns)
    if stage == 1:
        return description, False
    if stage == 3 and description and rng.random() >= planning_qa_ratio:
        return description, False
    return planning_turns(speed_action, path_action, command), True


class ConversationTokenizer:
    """Chat-template text -> ``input_ids`` and ``labels`` (answers only), truncated to ``max_length``.

    Labels come from the tokenizer's offset mapping against the answer character spans of
    ``prompts.conversation_text``, so they are right for any tokenizer (tiny BPE or Qwen2). Truncation is
    counted in ``num_truncated`` and warned about once per instance (per loader worker).
    """

    def __init__(self, tokenizer, max_length: int = MAX_LENGTH):
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.num_truncated = 0
        self._warned = False

    def __call__(self, turns: list[prompts.Turn]) -> dict[str, np.ndarray]:
        text, spans = prompts.conversation_text(turns)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        input_ids = np.asarray(encoded["input_ids"], dtype=np.int64)
        offsets = np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        in_answer = np.zeros(len(input_ids), dtype=bool)
        for start, end in spans:
            in_answer |= (offsets[:, 0] >= start) & (offsets[:, 1] <= end) & (offsets[:, 1] > offsets[:, 0])
        labels = np.where(in_answer, input_ids, IGNORE_INDEX)
        if len(input_ids) > self.max_length:
            self.num_truncated += 1
            if not self._warned:
                self._warned = True
                warnings.warn(f"conversation of {len(input_ids)} tokens truncated to max_length={self.max_length} "
                              f"(counted in num_truncated; further truncations are not warned about)", stacklevel=2)
            input_ids, labels = input_ids[: self.max_length], labels[: self.max_length]
        return dict(input_ids=input_ids, labels=labels)
