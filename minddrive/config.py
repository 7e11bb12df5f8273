"""Load mmcv-style Python configs through ``mmengine.Config`` with one-line errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Iterable

from mmengine.config import Config, DictAction

from minddrive.errors import UserError

__all__ = ["Config", "DictAction", "load_config", "require_keys", "parse_cfg_options", "check_overrides",
           "check_ranges", "RANGES"]

#: the one mark for an override that adds a key the config does not have: ``+train_cfg.new_key=3``
NEW_KEY_MARK = "+"
#: mmengine's mark for "replace this dict instead of merging into it": keys below it may be new
DELETE_KEY = "_delete_"
#: ranges checked wherever a key of this name appears in a config: name -> (lowest, highest, integer)
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "batch_size": (1, None, True),
    "micro_batch_size": (1, None, True),
    "accumulate": (1, None, True),
    "max_epochs": (1, None, True),
    "max_iters": (0, None, True),         # 0: run max_epochs instead
    "envs_per_worker": (1, None, True),
    "decision_interval": (1, None, True),
    "num_workers": (0, None, True),
    "lr": (0, None, False),               # exclusive: a learning rate of 0 trains nothing
}
# RL settings (rl.gamma, ppo.*, ...) are checked by their own dataclasses (minddrive.rl.settings).


def parse_cfg_options(items: Iterable[str] | None) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1,2]"]`` into ``{"a.b": 1, "c": [1, 2]}`` as ``--cfg-options`` does."""
    options: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise UserError(f"--cfg-options: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        options[key] = DictAction._parse_iterable(value)
    return options


def load_config(path: str | os.PathLike, cfg_options: dict[str, Any] | Iterable[str] | None = None) -> Config:
    """Read a config file (``_base_`` inheritance resolved) and apply dotted-key overrides."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: config file not found")
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as exc:
        raise UserError(f"{path}:{exc.lineno}: syntax error in config: {exc.msg}") from None
    except FileNotFoundError as exc:
        raise UserError(f"{path}: a _base_ file it inherits from is missing: {exc.filename or exc}") from None
    except Exception as exc:  # mmengine raises various types for bad _base_ or key errors
        raise UserError(f"{path}: cannot load config: {exc}") from None
    if cfg_options:
        # Command-line overrides (a list of KEY=VALUE) are checked key by key; a dict comes from code,
        # which may add keys freely.
        if not isinstance(cfg_options, dict):
            cfg_options = check_overrides(cfg, parse_cfg_options(cfg_options), path)
        cfg.merge_from_dict(cfg_options)
    check_ranges(cfg, path)
    return cfg


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a dict"
    return type(value).__name__


def _fits(old: Any, new: Any) -> bool:
    """Whether ``new`` may replace ``old`` (same kind of value; an int where a float was; None either way)."""
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, int):
        return isinstance(new, int)
    if isinstance(old, float):
        return isinstance(new, (int, float))
    if isinstance(old, str):
        return isinstance(new, str)
    if isinstance(old, (list, tuple)):
        return isinstance(new, (list, tuple))
    if isinstance(old, Mapping):
        return isinstance(new, Mapping)
    return True


def check_overrides(cfg: Any, options: dict[str, Any], path: str) -> dict[str, Any]:
    """Check ``--cfg-options`` against the merged config before it changes; returns them without marks.

    Every key must exist unless marked new (``+key=...``) or below a dict replaced with mmengine's
    ``key._delete_=True``; every value must be of the kind the config holds there (an integer where an
    integer is, ...). The first bad one is a :class:`UserError` naming file, key, value and expectation.
    """
    replaced = [k[: -len(DELETE_KEY) - 1] for k in options if k.lstrip(NEW_KEY_MARK).endswith("." + DELETE_KEY)]
    clean: dict[str, Any] = {}
    for raw_key, value in options.items():
        new = raw_key.startswith(NEW_KEY_MARK)
        key = raw_key[len(NEW_KEY_MARK):] if new else raw_key
        clean[key] = value
        if key.endswith("." + DELETE_KEY) or new or any(key.startswith(r.lstrip(NEW_KEY_MARK) + ".") for r in replaced):
            continue
        node: Any = cfg
        for depth, part in enumerate(key.split(".")):
            if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, (Mapping, Config)) and part in node:
                node = node[part]
            else:
                where = ".".join(key.split(".")[:depth]) or "the top level"
                raise UserError(f"{path}: --cfg-options {key}={value!r}: no key '{part}' under {where} "
                                f"(a mistyped key? mark a new one as {NEW_KEY_MARK}{key}=...)")
        if not _fits(node, value):
            raise UserError(f"{path}: --cfg-options {key}={value!r}: expected {_type_name(node)} "
                            f"(the config has {node!r})")
    return clean


def check_ranges(cfg: Any, path: str) -> None:
    """Check every key named in :data:`RANGES`, wherever it appears, after all overrides."""

    def walk(node: Any, prefix: str) -> None:
        items = node.items() if isinstance(node, (Mapping, Config)) else (
            enumerate(node) if isinstance(node, (list, tuple)) else ())
        for name, value in items:
            dotted = f"{prefix}{name}"
            if isinstance(name, str) and name in RANGES and value is not None:
                low, high, integer = RANGES[name]
                kind = "an integer" if integer else "a number"
                ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
                if ok and value != value:  # NaN
                    ok = False
                bounds = []
                if low is not None:
                    bounds.append(f">= {low}" if integer or low != 0 else f"> {low}")
                    ok = ok and (value >= low if integer or low != 0 else value > low)
                if high is not None:
                    bounds.append(f"<= {high}")
                    ok = ok and value <= high
                if not ok:
                    raise UserError(f"{path}: {dotted}={value!r}: expected {kind} {' and '.join(bounds)}")
            if isinstance(value, (Mapping, Config, list, tuple)):
                walk(value, dotted + ".")

    walk(cfg, "")


def require_keys(cfg: Any, keys: Iterable[str], where: str) -> None:
    """Fail with one line naming ``where`` and the first missing dotted key."""
    for dotted in keys:
        node = cfg
        for part in dotted.split("."):
            if not isinstance(node, (Mapping, Config)) or part not in node:
                raise UserError(f"{where}: missing key '{dotted}'")
            node = node[part]
