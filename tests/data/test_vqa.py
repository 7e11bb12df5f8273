"""Stage QA sampling and tokenisation: only answer tokens train; the speed token sits where the policy scores it."""

from __future__ import annotations

import numpy as np
import pytest

from minddrive.constants import SPEED_TOKENS
from minddrive.data import prompts
from minddrive.data.vqa import IGNORE_INDEX, ConversationTokenizer, planning_turns, sample_turns

VQA = [("What can you tell about the current driving conditions from the images?", "A car is ahead."),
       ("Where are the critical objects in the scene?", "There is a vehicle 10 meters ahead."),
       ("What actions should the car be taking?", "The car should be<slow_down><lanefollow>."),
       (prompts.PLANNING_QUESTION, prompts.PLANNING_ANSWER)]


def test_labels_keep_exactly_the_answer_tokens(tokenizer):
    turns = [(prompts.SCENE_PREFIX + " " + VQA[0][0], VQA[0][1]), VQA[1]]
    out = ConversationTokenizer(tokenizer)(turns)
    ids, labels = out["input_ids"], out["labels"]
    kept = labels != IGNORE_INDEX
    np.testing.assert_array_equal(labels[kept], ids[kept])
    # The kept tokens are the two answers, each with its <|im_end|>, and nothing else.
    runs = np.split(np.flatnonzero(kept), np.flatnonzero(np.diff(np.flatnonzero(kept)) > 1) + 1)
    assert [tokenizer.decode(ids[r]) for r in runs] == [a + "<|im_end|>" for _, a in turns]
    text, _ = prompts.conversation_text(turns)
    assert tokenizer.decode(ids) == text


def test_stage2_tokens_match_the_policy_prompts(tokenizer):
    speed, path = 3, 2
    out = ConversationTokenizer(tokenizer)(planning_turns(speed, path, command=path))
    full = tokenizer(prompts.action_prompt(speed, path), add_special_tokens=False)["input_ids"]
    prefix = tokenizer(prompts.decision_prompt(path), add_special_tokens=False)["input_ids"]
    assert out["input_ids"].tolist() == full
    # The policy scores the token right after decision_prompt: it must be the speed token, and trained.
    assert full[: len(prefix)] == prefix
    assert out["input_ids"][len(prefix)] == tokenizer.convert_tokens_to_ids(SPEED_TOKENS[speed])
    assert out["labels"][len(prefix)] == out["input_ids"][len(prefix)]
    question = tokenizer(prompts.chat_header() + prompts.user_block(prompts.decision_question(path)),
                         add_special_tokens=False)["input_ids"]
    assert (out["labels"][: len(question)] == IGNORE_INDEX).all()
    np.testing.assert_array_equal(out["labels"][len(question): len(prefix)], full[len(question): len(prefix)])


def test_stage_sampling():
    rng = np.random.default_rng(0)
    turns, planning = sample_turns(1, VQA, 4, 0, 0, rng)
    assert not planning and turns[1:] == [VQA[1]]  # meta-action and planning QA train in the planning format only
    assert turns[0][0] == f"{prompts.SCENE_PREFIX} {VQA[0][0]}"
    turns, planning = sample_turns(2, VQA, 4, 0, 0, rng)
    assert planning and turns == [(prompts.decision_question(0), prompts.decision_answer(4, 0)),
                                  (prompts.PLANNING_QUESTION, prompts.PLANNING_ANSWER)]
    draws = [sample_turns(3, VQA, 4, 0, 0, rng)[1] for _ in range(2000)]
    assert np.mean(draws) == pytest.approx(0.8, abs=0.03)
    assert sample_turns(3, [], 4, 0, 0, rng)[1]  # no VQA file: always a planning sample
    # Unknown speed label: planning QA only, and it still opens with the scene prefix.
    turns, planning = sample_turns(2, [], -1, 0, 0, rng)
    assert planning and turns == [(f"{prompts.SCENE_PREFIX} {prompts.PLANNING_QUESTION}", prompts.PLANNING_ANSWER)]


def test_truncation_is_counted_and_warned_once(tokenizer):
    conv = ConversationTokenizer(tokenizer, max_length=16)
    with pytest.warns(UserWarning, match="truncated to max_length=16"):
        out = conv([VQA[0]])
    assert len(out["input_ids"]) == len(out["labels"]) == 16
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conv([VQA[1]])  # second truncation: counted, not warned again
    assert conv.num_truncated == 2
    assert ConversationTokenizer(tokenizer)([VQA[0]])["input_ids"].size > 16
