"""The layer order of the package: a module imports only from its own layer or the layers below it.

``LAYERS`` lists the layers bottom to top, each with the top-level modules and packages of ``minddrive`` that
belong to it. Inside one layer, packages may import each other as long as no two import each other (directly
or around a loop). ``tests/test_layers.py`` checks every import statement in the package against this list,
those inside functions included; ``docs/architecture.md`` explains the layers.
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("constants", "errors", "config", "registry", "utils", "interfaces", "penalty", "layers")),
    ("sim", ("sim",)),
    ("data", ("data",)),
    ("models", ("models",)),
    ("rollout", ("rollout",)),
    ("apps", ("train", "rl", "eval")),
    ("entry", ("cli", "demo", "demo_report")),
)
PACKAGE = "minddrive"


def unit_of(module: str) -> str:
    """The top-level module or package of ``minddrive`` a dotted module name belongs to ("" for the package)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        raise ValueError(f"{module!r} is not part of {PACKAGE}")
    return parts[1] if len(parts) > 1 else ""


def layer_of(module: str) -> int:
    """Index into ``LAYERS`` of a dotted module name; the bare package ``minddrive`` counts as core."""
    unit = unit_of(module)
    if unit == "":
        return 0
    for index, (_, units) in enumerate(LAYERS):
        if unit in units:
            return index
    raise KeyError(f"{module}: {PACKAGE}.{unit} belongs to no layer in minddrive.layers.LAYERS")


__all__ = ["LAYERS", "PACKAGE", "unit_of", "layer_of"]
