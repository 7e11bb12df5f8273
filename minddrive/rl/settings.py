"""RL settings read from a config section into a dataclass, each value checked against its field's rule.

A field made with :func:`setting` carries one default and the rule its value must meet (kind and range);
:func:`read_settings` rejects unknown keys and values that break a rule with one line naming the config file,
the key, the value and what was expected. :class:`ReturnParams` (config key ``rl``) lives here;
``minddrive.rl.ppo.PPOHyperParams`` (``ppo``) is read the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, TypeVar

from minddrive.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Rule:
    """What a setting's value must be: ``kind`` ("int", "number", "bool", "names"), an optional range, None."""

    kind: str
    low: float | None = None     # lowest allowed (inclusive unless ``above``)
    high: float | None = None    # highest allowed (inclusive)
    above: bool = False          # ``low`` itself is not allowed
    optional: bool = False       # None is allowed

    def allows(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "names":
            return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        if isinstance(value, bool) or not isinstance(value, int if self.kind == "int" else (int, float)):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high

    def expected(self) -> str:
        words = {"int": "an integer", "number": "a number", "bool": "true or false",
                 "names": "a list of names"}[self.kind]
        if self.low is not None and self.high is not None:
            words += f" in {'(' if self.above else '['}{self.low:g}, {self.high:g}]"
        elif self.low is not None:
            words += f" {'>' if self.above else '>='} {self.low:g}"
        return f"None or {words}" if self.optional else words


def setting(default: Any, kind: str, low: float | None = None, high: float | None = None, *, above: bool = False,
            optional: bool = False) -> Any:
    """A dataclass field with ``default`` whose configured value must meet :class:`Rule` (kind, range)."""
    return field(default=default, metadata=dict(rule=Rule(kind, low, high, above, optional)))


def config_file(cfg: Any) -> str:
    """The file a loaded config came from (``Config.filename``), for error messages."""
    return str(getattr(cfg, "filename", None) or "config")


def read_settings(cls: type[T], values: Mapping[str, Any] | None, section: str, where: str = "config") -> T:
    """``cls`` from the config section ``section`` (its ``values``): unknown keys and values that break a
    field's rule raise :class:`UserError` naming ``where`` (the config file), the key and what was expected."""
    values = dict(values or {})
    known = {f.name: f for f in fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise UserError(f"{where}: {section}.{key}: unknown setting; expected one of: {', '.join(sorted(known))}")
        rule = known[key].metadata.get("rule")
        if rule is not None and not rule.allows(value):
            raise UserError(f"{where}: {section}.{key} = {value!r}: expected {rule.expected()}")
        if isinstance(value, list):
            values[key] = tuple(value)
    return cls(**values)


@dataclass(frozen=True)
class ReturnParams:
    """How rewards become returns and advantages (config key ``rl``; GAE, Schulman et al. 2016).
    The defaults are upstream's (its rollout buffer's gamma 0.99 and lambda 1, applied per decision, and upstream
    decides on every simulator tick: docs/rl_protocol.md)."""

    gamma: float = setting(0.99, "number", 0.0, 1.0)       # discount per decision
    gae_lambda: float = setting(1.0, "number", 0.0, 1.0)   # GAE's bias-variance trade-off (1: Monte Carlo)

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None, where: str = "config") -> "ReturnParams":
        return read_settings(cls, values, "rl", where)
