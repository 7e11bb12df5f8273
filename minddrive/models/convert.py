"""IL -> RL checkpoint conversion: the decision expert and the value net start from the action expert's LoRA.

Upstream initialises both RL roles from the imitation-trained action expert; the value head itself stays
as it was (a fresh linear layer), since imitation never trains it.
"""

from __future__ import annotations

import os
from typing import Any

from minddrive.errors import UserError

SOURCE, TARGETS = "action_expert", ("decision_expert", "value_expert")


def copy_action_expert(state: dict) -> tuple[dict, dict[str, dict[str, int]]]:
    """Return a new state with ``.action_expert.`` LoRA tensors copied over the target adapters, and counts."""
    out = dict(state)
    report = {t: {"tensors": 0, "params": 0} for t in TARGETS}
    sources = [k for k in state if f".{SOURCE}." in k and "lora_" in k]
    if not sources:
        raise UserError(f"checkpoint has no {SOURCE} LoRA tensors to copy (is it a MindDrive checkpoint?)")
    for key in sources:
        for target in TARGETS:
            dst = key.replace(f".{SOURCE}.", f".{target}.")
            if dst not in state:
                raise UserError(f"checkpoint lacks {dst!r} (expected all adapters {TARGETS} to be present)")
            if state[dst].shape != state[key].shape:
                raise UserError(f"checkpoint: {dst} shape {tuple(state[dst].shape)} != {key} {tuple(state[key].shape)}")
            out[dst] = state[key].clone()
            report[target]["tensors"] += 1
            report[target]["params"] += state[key].numel()
    return out, report


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False) -> dict[str, Any]:
    """Write ``dst`` = ``src`` with the action expert copied into decision expert and value net; returns the
    report (also printed). Works on the stored tensors only, no model is built. ``dst`` must be absent or
    an earlier conversion's output (anything else is refused, or moved aside with ``overwrite``)."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    from minddrive.models.checkpoint import CONFIG_FILE, META_FILE, WEIGHTS_FILE, load_checkpoint
    from minddrive.utils.io import OWNER_FILE, atomic_path, claim_dir

    cfg, state, meta = load_checkpoint(src)
    new_state, report = copy_action_expert(state)
    meta = dict(meta, converted=True, converted_from=str(src), conversion=report)
    if Path(dst).resolve() == Path(src).resolve():
        raise UserError(f"--out {dst}: is the input checkpoint; write the conversion to another folder")
    claim_dir(dst, "convert", overwrite=overwrite)
    with atomic_path(dst, replace_dir=True) as tmp:  # dst is now this command's own folder
        tmp.mkdir()
        (tmp / OWNER_FILE).write_bytes((Path(dst) / OWNER_FILE).read_bytes())
        (tmp / CONFIG_FILE).write_text((Path(src) / CONFIG_FILE).read_text())
        save_file({k: v.contiguous() for k, v in new_state.items()}, str(tmp / WEIGHTS_FILE), metadata={"format": "minddrive"})
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    for target, counts in report.items():
        print(f"copied {SOURCE} -> {target}: {counts['tensors']} tensors, {counts['params']:,} parameters")
    print(f"wrote {dst}")
    return report
