"""Prompt text shared by the dataset (training) and the policy (inference).

Both sides build their token sequences from these functions, which keeps the
token positions of the decision and of the waypoint queries identical in
training and at rollout time. Special tokens are written without surrounding
spaces so that tokenising a prefix and appending one special-token id gives
exactly the tokens of the full text.
"""

from __future__ import annotations

from minddrive.constants import (DECISION_ANSWER_PREFIX, DECISION_QUESTION, IMAGE_TOKEN, PATH_ACTIONS,
                                 PATH_TOKENS, PATH_WAYPOINT_TOKEN, SPEED_TOKENS, WAYPOINT_TOKEN)

SYSTEM_PROMPT = "You are a helpful assistant."
SCENE_PREFIX = f"{IMAGE_TOKEN}\nYou are driving a car."
PLANNING_QUESTION = "Please provide the planning trajectory for the ego car."
PLANNING_ANSWER = f"Here is the planning trajectory{WAYPOINT_TOKEN}{PATH_WAYPOINT_TOKEN}"

Turn = tuple[str, str]


def chat_header() -> str:
    return f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"


def user_block(question: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def answer_block(answer: str) -> str:
    return f"{answer}<|im_end|>\n"


def decision_question(path_index: int) -> str:
    return f"{SCENE_PREFIX} The navigation command is {PATH_ACTIONS[path_index]}. {DECISION_QUESTION}"


def decision_answer(speed_index: int, path_index: int) -> str:
    return f"{DECISION_ANSWER_PREFIX}{SPEED_TOKENS[speed_index]}{PATH_TOKENS[path_index]}."


def decision_prompt(path_index: int) -> str:
    """Chat text whose next token is the speed meta-action (what the decision expert scores)."""
    return chat_header() + user_block(decision_question(path_index)) + DECISION_ANSWER_PREFIX


def action_prompt(speed_index: int, path_index: int) -> str:
    """Chat text for the action expert: the chosen decision, then the planning query tokens."""
    return (chat_header() + user_block(decision_question(path_index)) + answer_block(decision_answer(speed_index, path_index))
            + user_block(PLANNING_QUESTION) + answer_block(PLANNING_ANSWER))


def conversation_text(turns: list[Turn]) -> tuple[str, list[tuple[int, int]]]:
    """Render ``turns`` with the Qwen2 chat template.

    Returns the text and the character spans ``(start, end)`` of every answer (including
    its ``<|im_end|>``), which is what training labels keep; everything else is masked.
    The first question must already carry the image placeholder (see ``SCENE_PREFIX``).
    """
    text = chat_header()
    spans: list[tuple[int, int]] = []
    for question, answer in turns:
        text += user_block(question)
        start = len(text)
        text += answer_block(answer)
        spans.append((start, len(text) - 1))  # the trailing newline is not trained
    return text, spans
