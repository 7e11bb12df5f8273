"""Load mmcv-style Python configs through ``mmengine.Config`` with one-line errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Iterable

from mmengine.config import Config, DictAction

from minddrive.errors import UserError

__all__ = ["Config", "DictAction", "load_config", "require_keys", "parse_cfg_options"]


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
        if not isinstance(cfg_options, dict):
            cfg_options = parse_cfg_options(cfg_options)
        cfg.merge_from_dict(cfg_options)
    return cfg


def require_keys(cfg: Any, keys: Iterable[str], where: str) -> None:
    """Fail with one line naming ``where`` and the first missing dotted key."""
    for dotted in keys:
        node = cfg
        for part in dotted.split("."):
            if not isinstance(node, (Mapping, Config)) or part not in node:
                raise UserError(f"{where}: missing key '{dotted}'")
            node = node[part]
