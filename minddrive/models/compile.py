"""Regional ``torch.compile`` settings as users write them (``train_cfg.compile`` for imitation, ``ppo.compile``
for the PPO learner) -> ``MindDrive.compile_regions``."""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from minddrive.errors import UserError


def regional_compile_options(spec: Any, key: str = "train_cfg.compile") -> dict[str, Any]:
    """``spec`` -> ``MindDrive.compile_regions`` keyword arguments ({} = eager).

    A backend name (``"inductor"``), or ``dict(backend=..., mode=..., llm_mode=...)``: ``mode="reduce-overhead"``
    replays every compiled region from CUDA graphs, ``llm_mode`` sets the LLM layers' mode alone. On one H100
    a 0.5B stage-3 step went from 8.3-12.0 samples/s compiled to 12.5-14.0 with every region graphed: the
    host launching the LoRA layers' small kernels bounded the step (benchmarks/RESULTS.md, run 6)."""
    if not spec:
        return {}
    if isinstance(spec, str):
        return dict(backend=spec)
    if not isinstance(spec, dict):
        raise UserError(f"{key}: expected None, a backend name or a dict, got {spec!r}")
    unknown = sorted(set(spec) - {"backend", "mode", "llm_mode"})
    if unknown:
        raise UserError(f"{key}: unknown keys {unknown}; expected backend, mode, llm_mode")
    return dict(backend=str(spec.get("backend", "inductor")), mode=spec.get("mode"), llm_mode=spec.get("llm_mode"))


def compile_model_regions(model: nn.Module, spec: Any, key: str = "train_cfg.compile") -> bool:
    """Compile ``model``'s regions as ``spec`` says (nothing for an empty one); returns whether any region
    replays from CUDA graphs (``reduce-overhead``), whose outputs and gradients the next replay overwrites."""
    options = regional_compile_options(spec, key)
    if not options:
        return False
    if not hasattr(model, "compile_regions"):
        raise UserError(f"{key}: {type(model).__name__} has no compile_regions(); expected compile=None for this model")
    model.compile_regions(**options)
    return "reduce-overhead" in (options.get("mode"), options.get("llm_mode"))


def own_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Give each gradient its own memory before another backward adds into it. Through CUDA-graphed regions a
    weight gradient comes out of a graph's memory pool, and autograd adopts that very tensor as ``.grad`` when
    there is none: the next replay of the graph would overwrite it before adding to it (``accessing tensor
    output of CUDAGraphs that has been overwritten``). Used by the trainer's gradient accumulation
    (``Engine.backward``) and PPO's micro-batches."""
    for p in params:
        if p.grad is not None:
            p.grad = p.grad.clone()
