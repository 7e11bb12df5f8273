"""Dump every config's merged dict (``_base_`` resolved) as sorted JSON, one file per config.

    python tools/dump_configs.py --out /tmp/configs_before            # before a config refactor
    python tools/dump_configs.py --out /tmp/configs_after --compare /tmp/configs_before

``--compare`` lists, per config, the dotted keys whose merged values differ from an earlier dump (and
configs present on one side only); it exits 1 when anything differs, so a refactor that should change
nothing can be checked in one command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmengine.config import Config

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "adzoo" / "minddrive" / "configs"


def merged(path: Path) -> dict:
    """The config's merged dict as JSON values (tuples become lists)."""
    return json.loads(json.dumps(Config.fromfile(str(path)).to_dict(), sort_keys=True, default=repr))


def differences(before, after, prefix: str = "") -> list[str]:
    """Dotted keys where ``before`` and ``after`` differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after)):
            name = f"{prefix}.{key}" if prefix else key
            if key not in before:
                out.append(f"+ {name} = {json.dumps(after[key])}")
            elif key not in after:
                out.append(f"- {name} (was {json.dumps(before[key])})")
            else:
                out.extend(differences(before[key], after[key], name))
        return out
    if before != after:
        return [f"~ {prefix}: {json.dumps(before)} -> {json.dumps(after)}"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=Path, default=DEFAULT_DIR, help="folder of configs (*.py, not _base_/)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write <config>.json into")
    parser.add_argument("--compare", type=Path, default=None, help="an earlier dump to compare with")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.configs.glob("*.py")):
        text = json.dumps(merged(path), sort_keys=True, indent=1) + "\n"
        (args.out / f"{path.stem}.json").write_text(text)
    if args.compare is None:
        return 0
    changed = False
    names = sorted({p.stem for p in args.out.glob("*.json")} | {p.stem for p in args.compare.glob("*.json")})
    for name in names:
        old, new = args.compare / f"{name}.json", args.out / f"{name}.json"
        if not old.exists() or not new.exists():
            print(f"{name}: only in {'the new dump' if new.exists() else 'the earlier dump'}")
            changed = True
            continue
        lines = differences(json.loads(old.read_text()), json.loads(new.read_text()))
        for line in lines:
            print(f"{name}: {line}")
        changed = changed or bool(lines)
    if not changed:
        print(f"{len(names)} configs: merged dicts identical")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
