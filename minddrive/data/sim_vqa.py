"""Chat-B2D(-plus) style VQA generated from the privileged scene (docs/bench2drive.md#chat-b2d-vqa).

One file per frame, a JSON list of turns ``[{"from": "human", "value": Q}, {"from": "gpt", "value": A}]``:
scene description, critical objects (positions in the ego frame: x forward, y right, metres), a
driving-behaviour explanation and, last, the meta-action QA in Chat-B2D-plus's answer text
(``The car should be <speed_token> <path_token>``: upstream MindDrive reads the file's last pair and takes
the answer's last two words as the speed and path tokens). The planning QA is not in the file: loaders add it. Question phrasings are
drawn from templates with a generator seeded per frame, so a dataset is reproducible from its seed.
The first human turn carries no ``<image>`` prefix: loaders add it, as for the real Chat-B2D files.
"""

from __future__ import annotations

import math

import numpy as np

from minddrive.constants import (DECISION_ANSWER_PREFIX, DECISION_QUESTION, PATH_ACTIONS, PATH_TOKENS, SPEED_ACTIONS,
                                 SPEED_TOKENS)
from minddrive.sim.bev import world_to_ego
from minddrive.sim.scene import LIGHT_STATES, Scene

DESCRIPTION_QUESTIONS = (
    "What can you tell about the current driving conditions from the images?",
    "Describe the current driving scene.",
    "What is the overall situation around the ego vehicle?",
    "Can you summarize what is happening on the road right now?",
    "What are the road and traffic conditions in the images?",
)
CRITICAL_QUESTIONS = (
    "Where are the critical objects in the scene and what impact do they have on the ego vehicle?",
    "Which objects should the ego vehicle pay attention to, and where are they?",
    "Identify the objects that matter for driving right now and their positions.",
    "What are the important objects around the car and how do they affect it?",
)
BEHAVIOUR_QUESTION = "Please describe your driving behavior and explain the reasons."

WEATHER_WORDS = ("clear", "cloudy", "wet", "rainy", "stormy", "foggy")
KIND_WORDS = {"vehicle": "vehicle", "emergency": "emergency vehicle", "bicycle": "cyclist", "walker": "pedestrian",
              "static": "parked vehicle", "prop": "obstacle"}
CRITICAL_RANGE = 30.0        # metres ahead considered for critical objects
LATERAL_CORRIDOR = 4.0       # metres either side of the ego path


def _ego_xy(scene: Scene, x: float, y: float) -> tuple[float, float]:
    m = world_to_ego(scene.ego)
    return float(m[0, 0] * x + m[0, 1] * y + m[0, 2]), float(m[1, 0] * x + m[1, 1] * y + m[1, 2])


def _where(x: float, y: float) -> str:
    side = "ahead" if x > 2 else "behind" if x < -2 else "beside us"
    lateral = "on the left" if y < -1.5 else "on the right" if y > 1.5 else "in our lane"
    return f"{side} {lateral}" if side != "beside us" else f"{side} {lateral}"


def critical_objects(scene: Scene, limit: int = 3) -> list[dict]:
    """Objects within ``CRITICAL_RANGE`` ahead and near the ego path, nearest first, in the ego frame."""
    found = []
    for actor in scene.actors:
        x, y = _ego_xy(scene, actor.x, actor.y)
        if -3.0 < x < CRITICAL_RANGE and abs(y) < LATERAL_CORRIDOR + actor.extent[1]:
            found.append({"kind": KIND_WORDS.get(actor.kind, actor.kind), "x": x, "y": y, "speed": actor.speed,
                          "distance": math.hypot(x, y)})
    for light in scene.traffic_lights:
        x, y = _ego_xy(scene, light.x, light.y)
        if light.affects_ego and 0.0 < x < 2 * CRITICAL_RANGE:
            found.append({"kind": f"{LIGHT_STATES.get(int(light.state), 'unknown').lower()} traffic light", "x": x,
                          "y": y, "speed": 0.0, "distance": math.hypot(x, y)})
    for sign in scene.stop_signs:
        x, y = _ego_xy(scene, sign.x, sign.y)
        if sign.affects_ego and 0.0 < x < CRITICAL_RANGE:
            found.append({"kind": "stop sign", "x": x, "y": y, "speed": 0.0, "distance": math.hypot(x, y)})
    found.sort(key=lambda item: item["distance"])
    return found[:limit]


def describe_scene(scene: Scene) -> str:
    weather = WEATHER_WORDS[int(scene.weather_id) % len(WEATHER_WORDS)]
    counts: dict[str, int] = {}
    for actor in scene.actors:
        x, y = _ego_xy(scene, actor.x, actor.y)
        if math.hypot(x, y) < 50.0:
            word = KIND_WORDS.get(actor.kind, actor.kind)
            counts[word] = counts.get(word, 0) + 1
    parts = [f"The ego vehicle is driving at {scene.ego.speed * 3.6:.0f} km/h in {weather} weather in {scene.town}."]
    if counts:
        listed = ", ".join(f"{n} {word}{'s' if n > 1 else ''}" for word, n in sorted(counts.items()))
        parts.append(f"Within 50 meters there are {listed}.")
    else:
        parts.append("The road around the ego vehicle is empty.")
    lights = [light for light in scene.traffic_lights if light.affects_ego]
    if lights:
        parts.append(f"The traffic light ahead is {LIGHT_STATES.get(int(lights[0].state), 'off').lower()}.")
    if any(sign.affects_ego for sign in scene.stop_signs):
        parts.append("A stop sign controls the junction ahead.")
    parts.append(f"The navigation command is to {PATH_ACTIONS[int(scene.command)]}.")
    return " ".join(parts)


def describe_critical(scene: Scene) -> str:
    objects = critical_objects(scene)
    if not objects:
        return "There are no critical objects near the planned path; the ego vehicle can follow its route."
    sentences = []
    for obj in objects:
        article = "An" if obj["kind"][0] in "aeiou" else "A"
        sentence = (f"{article} {obj['kind']} at ({obj['x']:.1f}, {obj['y']:.1f}) meters, {_where(obj['x'], obj['y'])}, "
                    f"{obj['distance']:.1f} meters away")
        sentence += f", moving at {obj['speed'] * 3.6:.0f} km/h." if obj["speed"] > 0.3 else "."
        sentences.append(sentence)
    return " ".join(sentences)


def explain_behaviour(scene: Scene, speed_index: int, path_index: int) -> str:
    speed_words, path_words = SPEED_ACTIONS[speed_index], PATH_ACTIONS[path_index]
    objects = critical_objects(scene, limit=1)
    if objects:
        reason = f"because of the {objects[0]['kind']} {objects[0]['distance']:.0f} meters away"
    else:
        reason = "because the way ahead is clear"
    return f"I {speed_words} and {path_words}, {reason}."


def meta_action_answer(speed_index: int, path_index: int) -> str:
    """Chat-B2D-plus's meta-action answer: the prefix, then the speed and the path token, space separated."""
    return f"{DECISION_ANSWER_PREFIX} {SPEED_TOKENS[speed_index]} {PATH_TOKENS[path_index]}"


def frame_vqa(scene: Scene, speed_index: int, path_index: int, seed: int, frame: int) -> list[list[dict]]:
    """The VQA turns of one frame (deterministic for ``(seed, frame)``)."""
    rng = np.random.default_rng([int(seed) & 0x7FFFFFFF, int(frame)])

    def turn(question: str, answer: str) -> list[dict]:
        return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]

    return [
        turn(DESCRIPTION_QUESTIONS[rng.integers(len(DESCRIPTION_QUESTIONS))], describe_scene(scene)),
        turn(CRITICAL_QUESTIONS[rng.integers(len(CRITICAL_QUESTIONS))], describe_critical(scene)),
        turn(BEHAVIOUR_QUESTION, explain_behaviour(scene, speed_index, path_index)),
        turn(DECISION_QUESTION, meta_action_answer(speed_index, path_index)),
    ]


__all__ = ["frame_vqa", "meta_action_answer", "critical_objects", "describe_scene", "describe_critical", "explain_behaviour"]
