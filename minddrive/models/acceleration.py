"""Speed-ups of the MindDrive model, applied from outside by the entry points; the model itself stays eager.

Three entry points, each applied once:

* :func:`accelerate_for_training` (imitation trainer): ``train_cfg.frozen_llm_dtype`` (frozen LLM Linear
  weights stored in bf16) and ``train_cfg.compile`` (regional ``torch.compile``, optionally replayed from CUDA
  graphs).
* :func:`accelerate_for_ppo` (PPO learner): ``ppo.compile``, and one CUDA-graph generation per model pass.
* :func:`accelerate_for_inference` (policy loading for rollouts, evaluation and the leaderboard agent): the
  runtime keys ``cuda_graphs``, ``compile``, ``merge_adapters``, ``vit_float8`` (``rollout.policy``,
  ``eval_driver.policy``, ``agent.policy``).

How they reach into the model, without branches in it: compiling submodules in place (``nn.Module.compile``:
parameter names and checkpoints unchanged), instance attributes that shadow the model's methods
(``encode_scene``, ``decoder_forward``, ``lora_routing``, ``lm_loss_sum``, ``planning_losses``, ``forward``;
removed again when the speed-up is turned off), and the frozen weights' storage dtype. Every fast path gives
the eager model's numbers (``tests/models/test_inference_fast_paths.py``), except the opt-in float8 ViT, an
approximation. Measurements behind each choice: ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import nn
from torch.utils._pytree import tree_map

from minddrive.errors import UserError
from minddrive.models import losses as L
from minddrive.models.llm import ADAPTERS
from minddrive.models.minddrive import MindDrive, lm_loss_sum

INFERENCE_OPTIONS = ("cuda_graphs", "compile", "merge_adapters", "vit_float8")


# ================================================================== entry points
@dataclass
class TrainingAcceleration:
    """What :func:`accelerate_for_training` applied: ``cuda_graphed`` (some region replays from CUDA graphs,
    whose gradients the next replay overwrites: see :func:`own_gradients`) and lines for the log."""
    cuda_graphed: bool = False
    notes: list[str] = field(default_factory=list)


def accelerate_for_training(model: nn.Module, train_cfg: dict, device: torch.device,
                            strategy: dict | None = None) -> TrainingAcceleration:
    """``train_cfg.frozen_llm_dtype`` then ``train_cfg.compile`` on ``model`` (on its device, before wrapping).
    With CUDA-graphed regions each ``model.forward`` call starts a new CUDA-graph generation."""
    out = TrainingAcceleration()
    note = store_frozen_llm(model, train_cfg, device, strategy)
    if note:
        out.notes.append(note)
    out.cuda_graphed = compile_model_regions(model, train_cfg.get("compile"), "train_cfg.compile")
    if out.cuda_graphed:
        _shadow(model, "forward", _GraphStepCall(model, "forward"))
    return out


def accelerate_for_ppo(policy: Any, spec: Any) -> bool:
    """``ppo.compile`` (``spec``) on the policy's model; a MindDrive policy's ``evaluate_decisions`` and
    ``scene_tokens`` then each start a new CUDA-graph generation on CUDA. Returns whether any region replays
    from CUDA graphs."""
    inner = getattr(policy, "model", None)
    model = inner if isinstance(inner, nn.Module) else policy
    graphed = compile_model_regions(model, spec, "ppo.compile")
    if isinstance(model, MindDrive) and model is not policy:
        for name, clone in (("evaluate_decisions", False), ("scene_tokens", True)):
            if hasattr(type(policy), name):
                _shadow(policy, name, _GraphStepCall(policy, name, clone=clone, cuda_only=True))
    return graphed


def accelerate_for_inference(policy: Any, runtime: dict | None = None) -> Any:
    """The runtime's speed-up keys (:data:`INFERENCE_OPTIONS`) on a ``MindDrivePolicy``; its other keys
    (``dtype``, ``fuse_decision_value``) are the policy's own, given to its constructor. Order: CUDA graphs,
    merged adapters (after any dtype cast, so the copies have the weights' dtype), float8 ViT, regional
    compile (before any capture). ``cuda_graphs``: ``act``'s scene encoder and LLM passes replayed from CUDA
    graphs (CUDA only, gradient-free only, captured at the first call of each shape). ``compile``: a
    ``torch.compile`` backend for :func:`compile_regions`. ``merge_adapters``: gradient-free LLM passes on
    copies of the weights with each adapter merged in (:class:`MergedAdapters`). ``vit_float8``: the ViT's
    matmuls in float8 without gradients (an approximation, opt-in)."""
    from minddrive.models.policy import POLICY_OPTIONS

    runtime = dict(runtime or {})
    unknown = sorted(set(runtime) - set(INFERENCE_OPTIONS) - set(POLICY_OPTIONS))
    if unknown:
        raise UserError(f"policy runtime: unknown keys {unknown}; expected some of "
                        f"{list(POLICY_OPTIONS + INFERENCE_OPTIONS)}")
    model = policy.model
    use_cuda_graphs(model, bool(runtime.get("cuda_graphs", False)))
    merge_adapters(model, bool(runtime.get("merge_adapters", False)))
    use_vit_float8(model, bool(runtime.get("vit_float8", False)))
    if runtime.get("compile"):
        compile_regions(model, backend=runtime["compile"])
    return policy


# ================================================================== regional torch.compile
def regional_compile_options(spec: Any, key: str = "train_cfg.compile") -> dict[str, Any]:
    """``spec`` -> :func:`compile_regions` keyword arguments ({} = eager).

    A backend name (``"inductor"``), or ``dict(backend=..., mode=..., llm_mode=...)``: ``mode="reduce-overhead"``
    replays every compiled region from CUDA graphs, ``llm_mode`` sets the LLM layers' mode alone (where the
    host launching the LoRA layers' small kernels bounds a step)."""
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
    if not isinstance(model, MindDrive):
        raise UserError(f"{key}: {type(model).__name__} has no compile regions (only MindDrive has); expected "
                        "compile=None for this model")
    compile_regions(model, **options)
    return "reduce-overhead" in (options.get("mode"), options.get("llm_mode"))


def _compiled_layers(model: MindDrive) -> list[nn.Module]:
    # The trajectory head too: its GRU decoders unroll into many tiny kernels.
    return [*model._decoder_lm[0].layers, *getattr(model.query_decoder, "layers", []), model.trajectory_head]


def _raise_dynamo_cache_limit() -> None:
    import torch._dynamo

    # Variants (attention kind, train / inference, dtype) of one layer class must all fit; the default limit
    # of 8 could silently drop later variants back to eager.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 32)


def compile_regions(model: MindDrive, backend: str = "inductor", mode: str | None = None,
                    llm_mode: str | None = None) -> None:
    """Regional ``torch.compile``: the ViT blocks (:func:`compile_vit_blocks`), the LLM's decoder layers, the
    query decoder's layers and the trajectory head, each compiled in place (parameter names and checkpoints
    unchanged), and the LM and planning losses; a layer class is traced once and reused by every layer. Why:
    eager, the host launching the LoRA-wrapped layers' many small kernels and autocast's weight casts one by
    one leaves the GPU idle; fused, there are far fewer. Sequence lengths and, in rollouts, batch sizes vary,
    so every region compiles with automatic dynamic shapes: one recompile when a size first changes, not one
    per size. ``llm_mode`` (default ``mode``) is the LLM layers' own compile mode, e.g. ``"reduce-overhead"``
    (CUDA graphs)."""
    import torch._dynamo

    _raise_dynamo_cache_limit()
    # nn.GRU is a graph break unless Dynamo may unroll it: the trajectory head's GRU decodes would run eagerly
    # between small graphs, with the host's glue around them. Unrolled, the head is one graph.
    torch._dynamo.config.allow_rnn = True
    if has_vit_blocks(model.backbone):
        compile_vit_blocks(model.backbone, backend=backend, mode=mode, dynamic=None)
    llm_layers = set(map(id, model._decoder_lm[0].layers))
    for layer in _compiled_layers(model):
        layer_mode = llm_mode if llm_mode is not None and id(layer) in llm_layers else mode
        layer.compile(backend=backend, mode=layer_mode)
    # The LM loss over the labelled rows: its float32 logits (rows x vocabulary) and their softmax fuse.
    # Dynamic: the number of labelled rows changes every batch (no CUDA graphs for it, whatever the mode).
    _shadow(model, "lm_loss_sum", torch.compile(lm_loss_sum, backend=backend, dynamic=True))
    # The planning losses: ~100 small ops forward and more backward (automatic dynamic shapes: the map and
    # agent counts may change with the data).
    _shadow(model, "planning_losses", torch.compile(L.planning_losses, backend=backend, dynamic=None))


def decompile_regions(model: MindDrive) -> None:
    """Back to eager (undoes :func:`compile_regions` and the training step marks; compiled code stays cached)."""
    if has_vit_blocks(model.backbone):
        decompile_vit_blocks(model.backbone)
    for layer in _compiled_layers(model):
        layer._compiled_call_impl = None  # what nn.Module.compile sets; None = plain forward
    for name in ("lm_loss_sum", "planning_losses", "forward"):
        model.__dict__.pop(name, None)


def has_vit_blocks(backbone: nn.Module) -> bool:
    from minddrive.models.vision import EVA02ViT

    return isinstance(backbone, EVA02ViT)


def compile_vit_blocks(vit: nn.Module, backend: str = "inductor", mode: str | None = None,
                       dynamic: bool | None = False) -> None:
    """``torch.compile`` each ViT block in place. The blocks share one class and one ``forward``, so Dynamo
    traces it once per variant (windowed / global attention; train / inference; dtype) and every block reuses
    that code: compile time is that of one block. ``dynamic=None`` (automatic dynamic shapes) recompiles once
    for a batch size that changes, instead of once per size."""
    _raise_dynamo_cache_limit()
    for block in vit.blocks:
        block.compile(backend=backend, mode=mode, dynamic=dynamic)


def decompile_vit_blocks(vit: nn.Module) -> None:
    """Back to eager blocks (undoes :func:`compile_vit_blocks`; the compiled code stays cached)."""
    for block in vit.blocks:
        block._compiled_call_impl = None


def vit_blocks_compiled(vit: nn.Module) -> bool:
    return any(getattr(block, "_compiled_call_impl", None) is not None for block in vit.blocks)


def own_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Give each gradient its own memory before another backward adds into it. Through CUDA-graphed regions a
    weight gradient comes out of a graph's memory pool, and autograd adopts that very tensor as ``.grad`` when
    there is none: the next replay of the graph would overwrite it before adding to it (``accessing tensor
    output of CUDAGraphs that has been overwritten``). Used by the trainer's gradient accumulation
    (``Engine.backward``) and PPO's micro-batches."""
    for p in params:
        if p.grad is not None:
            p.grad = p.grad.clone()


class _GraphStepCall:
    """``owner.name(...)`` preceded by ``torch.compiler.cudagraph_mark_step_begin()``: CUDA-graph trees
    (regions compiled with ``reduce-overhead``) otherwise count every call of a compiled region as a new
    invocation, and in a pass without gradients free each graphed layer's output before the next layer reads
    it. ``clone``: the result is copied out (a graphed output is overwritten by the next replay). A callable
    object (not a closure) so a deep copy of its owner calls the copy."""

    def __init__(self, owner: Any, name: str, clone: bool = False, cuda_only: bool = False):
        self.owner, self.name, self.clone, self.cuda_only = owner, name, clone, cuda_only
        self.__signature__ = inspect.signature(getattr(type(owner), name).__get__(owner))

    def __call__(self, *args, **kwargs):
        if not self.cuda_only or self.owner.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        out = getattr(type(self.owner), self.name)(self.owner, *args, **kwargs)
        return out.clone() if self.clone and torch.is_tensor(out) else out


def _shadow(obj: Any, name: str, value: Any) -> None:
    """Shadow ``obj``'s method ``name`` for this instance (written to ``__dict__``: not a submodule or buffer)."""
    obj.__dict__[name] = value


# ================================================================== frozen LLM weights stored in bf16
def frozen_decoder_linears(peft_model) -> list[nn.Linear]:
    """The base model's ``nn.Linear`` layers inside its decoder layers (LoRA's base layers, and any projection
    LoRA does not target): all frozen. Not the embeddings, the (tied) LM head or the norms."""
    layers = peft_model.base_model.model.model.layers
    return [m for name, m in layers.named_modules() if isinstance(m, nn.Linear) and "lora_" not in name]


def store_frozen_llm_linears(model: MindDrive, dtype: torch.dtype) -> int:
    """Keep the frozen LLM decoder layers' Linear weights and biases in ``dtype`` (in place); returns the bytes
    freed. Graphs captured over the old weights are dropped.

    Under autocast to ``dtype`` no number changes: autocast casts every Linear's weight and bias to ``dtype``
    before its matmul anyway, in every forward (frozen tensors are not in its cast cache), and the residual
    stream, norms and embeddings keep their float32. What goes is that cast and half the weights' memory.
    Only for passes under autocast: a float32 pass would meet bf16 weights (``F.linear`` refuses mixed
    dtypes)."""
    freed = 0
    for linear in frozen_decoder_linears(model.llm.peft):
        for param in (linear.weight, linear.bias):
            if param is None or param.dtype == dtype:
                continue
            if param.requires_grad:
                raise ValueError("store_frozen_llm_linears: a base Linear of the LLM is trainable")
            freed += param.numel() * (param.element_size() - dtype.itemsize)
            param.data = param.data.to(dtype)
    fast = fast_paths(model)
    if fast is not None:
        fast.drop_captured_graphs()
    return freed


def store_frozen_llm(model: nn.Module, tcfg: dict, device: torch.device, strategy: dict | None) -> str | None:
    """``train_cfg.frozen_llm_dtype``: ``"bf16"`` keeps the LLM's frozen decoder-layer Linear weights in bf16
    (:func:`store_frozen_llm_linears`): under the bf16 autocast the same numbers, minus a cast of every frozen
    weight in every step and half their memory. Returns a line for the log, or None."""
    wanted = tcfg.get("frozen_llm_dtype")
    if wanted in (None, "fp32"):
        return None
    if wanted != "bf16":
        raise UserError(f"train_cfg.frozen_llm_dtype: expected None, 'fp32' or 'bf16', got {wanted!r}")
    if tcfg.get("precision", "bf16") != "bf16":
        raise UserError("train_cfg.frozen_llm_dtype='bf16' needs precision='bf16' (its passes run under bf16 "
                        "autocast)")
    kind = dict(strategy or {}).get("type", "ddp")
    if kind == "fsdp" and dict(strategy).get("shard_frozen", True):
        raise UserError("train_cfg.frozen_llm_dtype='bf16' with strategy.type='fsdp' needs strategy.shard_frozen="
                        "False (an FSDP unit's flat parameter holds one dtype)")
    if kind == "deepspeed":
        return "frozen_llm_dtype: DeepSpeed's bf16 mode holds the whole model in bf16 already"
    if device.type != "cuda":
        return f"frozen_llm_dtype='bf16' not applied: no bf16 autocast on {device.type}, the LLM stays float32"
    if not isinstance(model, MindDrive):
        raise UserError(f"train_cfg.frozen_llm_dtype: {type(model).__name__} has no frozen LLM (only MindDrive "
                        "has); expected None for this model")
    freed = store_frozen_llm_linears(model, torch.bfloat16)
    return f"frozen LLM decoder-layer Linear weights kept in bf16 ({freed / 2**30:.2f} GiB freed)"


# ================================================================== gradient-free fast paths (inference)
class InferenceFastPaths:
    """The gradient-free fast paths of one model: CUDA graphs of the scene encoder and of the LLM passes, and
    merged adapters. Installed as instance attributes shadowing the model's ``encode_scene``,
    ``decoder_forward`` and ``lora_routing`` (each calls the model's own method where its fast path is off or
    gradients are on); removed when every path is off (:func:`fast_paths` finds it)."""

    HOOKS = ("encode_scene", "decoder_forward", "lora_routing")

    def __init__(self, model: MindDrive):
        self.model = model
        self.decoder_graphs: DecoderGraphs | None = None
        self.scene_graphs: SceneGraphs | None = None
        self.merged: MergedAdapters | None = None

    @property
    def active(self) -> bool:
        return any(x is not None for x in (self.decoder_graphs, self.scene_graphs, self.merged))

    def drop_captured_graphs(self) -> None:
        """Graphs captured before a change of code path or weights storage would replay the old one."""
        if self.decoder_graphs is not None:
            self.decoder_graphs = DecoderGraphs()
        if self.scene_graphs is not None:
            self.scene_graphs = SceneGraphs()

    def encode_scene(self, batch: dict[str, Any]):
        model = self.model
        eager = functools.partial(type(model).encode_scene, model)
        if self.scene_graphs is None or torch.is_grad_enabled():
            return eager(batch)
        if getattr(model.backbone, "float8_enabled", False):  # a replay skips the ViT's forward, which refreshes
            model.backbone.refresh_float8()  # the quantised copies the graph reads
        return self.scene_graphs(batch, eager)

    def decoder_forward(self, adapters: tuple[str, ...], embeds: torch.Tensor, attention_mask: torch.Tensor):
        model = self.model
        eager = functools.partial(type(model).decoder_forward, model)
        if torch.is_grad_enabled():
            return eager(adapters, embeds, attention_mask)
        if self.merged is not None:
            self.merged.refresh()  # before any graph replay: the graphs read the merged copies
        if self.decoder_graphs is not None:
            return self.decoder_graphs(adapters, embeds, attention_mask, eager)
        return eager(adapters, embeds, attention_mask)

    def lora_routing(self, adapters: tuple[str, ...]):
        if self.merged is not None and not torch.is_grad_enabled():
            return self.merged(adapters)
        return type(self.model).lora_routing(self.model, adapters)


def fast_paths(model: nn.Module) -> InferenceFastPaths | None:
    """The model's installed :class:`InferenceFastPaths`, or None (the model runs eagerly)."""
    return model.__dict__.get("_inference_fast_paths")


def _update_fast_paths(model: MindDrive, change) -> None:
    fast = fast_paths(model) or InferenceFastPaths(model)
    change(fast)
    if fast.active:
        _shadow(model, "_inference_fast_paths", fast)
        for name in InferenceFastPaths.HOOKS:
            _shadow(model, name, getattr(fast, name))
    else:
        for name in ("_inference_fast_paths", *InferenceFastPaths.HOOKS):
            model.__dict__.pop(name, None)


def use_cuda_graphs(model: MindDrive, enabled: bool = True, scene: bool = True) -> None:
    """Replay gradient-free LLM passes and, with ``scene``, ``encode_scene`` from CUDA graphs
    (:class:`DecoderGraphs`, :class:`SceneGraphs`; graphs already captured are kept), or (``enabled=False``)
    back to launching them kernel by kernel."""
    def change(fast):
        if not enabled:
            fast.decoder_graphs = fast.scene_graphs = None
            return
        if fast.decoder_graphs is None:
            fast.decoder_graphs = DecoderGraphs()
        if scene and fast.scene_graphs is None:
            fast.scene_graphs = SceneGraphs()
    _update_fast_paths(model, change)


def merge_adapters(model: MindDrive, enabled: bool = True) -> None:
    """Run gradient-free LLM passes on merged copies of the adapters (:class:`MergedAdapters`: one matmul per
    projection instead of three); ``False`` drops the copies. Passes with gradients (training, PPO's
    recompute) always run the unmerged adapters."""
    fast = fast_paths(model)
    if enabled == (fast is not None and fast.merged is not None):
        return
    if enabled and not model._lora_layers:
        raise UserError("merge_adapters: this PEFT version keeps the active adapter where MindDrive cannot "
                        "reach it; run without merging")

    def change(fast):
        fast.merged = MergedAdapters(model._lora_layers) if enabled else None
        fast.drop_captured_graphs()
    _update_fast_paths(model, change)


def use_vit_float8(model: MindDrive, enabled: bool = True) -> None:
    """The ViT's matmuls in float8 for gradient-free passes (``EVA02ViT.use_float8``, an approximation)."""
    backbone = model.backbone
    if not hasattr(backbone, "use_float8"):
        if enabled:
            raise UserError(f"vit_float8: the {type(backbone).__name__} backbone has no float8 path (EVA02ViT has)")
        return
    if enabled != backbone.float8_enabled:
        backbone.use_float8(enabled)
        fast = fast_paths(model)
        if fast is not None:
            fast.drop_captured_graphs()


# ------------------------------------------------------------------ CUDA graphs
class GraphCache:
    """CUDA graphs captured once per input signature and replayed, with static copies of the inputs.

    :meth:`replay` copies the inputs into the signature's static copies, replays its graph and returns
    clones of the outputs, so results never alias a later replay. A signature whose capture fails (e.g. a
    host sync inside the captured code), or one beyond ``max_graphs``, is left to the caller to run eagerly
    from then on (recorded in ``failures``): the fast path can only cost speed, never a run.
    """

    def __init__(self, max_graphs: int = 8, warmup: int = 2):
        self.max_graphs, self.warmup = max_graphs, warmup
        self.graphs: dict[Any, tuple] = {}
        self.failures: dict[Any, str] = {}

    def replay(self, key, inputs: dict[str, torch.Tensor], run) -> Any | None:
        """``run(static_inputs)``'s outputs for ``inputs`` from the graph of ``key`` (captured at its first
        call), or None where ``key`` runs eagerly."""
        entry = self.graphs.get(key)
        if entry is None:
            if key in self.failures or len(self.graphs) >= self.max_graphs:
                return None
            static = {k: v.clone() for k, v in inputs.items()}
            device = next(iter(inputs.values())).device
            try:
                graph, outputs = capture_graph(lambda: run(static), device, self.warmup)
            except Exception as exc:
                self.failures[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                return None
            entry = self.graphs[key] = (static, graph, outputs)
        static, graph, outputs = entry
        for k, v in inputs.items():
            static[k].copy_(v)
        graph.replay()
        return tree_map(lambda t: t.clone() if torch.is_tensor(t) else t, outputs)


def _autocast_key() -> tuple:
    autocast = torch.is_autocast_enabled("cuda")
    return autocast, torch.get_autocast_dtype("cuda") if autocast else None


class DecoderGraphs(GraphCache):
    """CUDA graphs of the LLM pass, one per static shape.

    ``act``'s LLM passes have static shapes per batch size (prompts come from fixed-width token tables), and
    at small batches a pass with LoRA on every projection is bound by kernel launches, not by the GPU; a graph
    replays the whole pass as one launch. Keyed by (adapters, input shape, dtype, autocast). The (B, L) mask
    is an input of the graph; the pass turns it into the 4-D mask inside the graph
    (``MindDrive.decoder_forward``: transformers would read a (B, L) mask on the host, illegal while capturing).
    """

    def __call__(self, adapters: tuple[str, ...], embeds: torch.Tensor, mask: torch.Tensor, forward) -> torch.Tensor:
        if embeds.device.type != "cuda" or mask.dim() != 2:
            return forward(adapters, embeds, mask)
        key = (adapters, tuple(embeds.shape), embeds.dtype, mask.dtype, *_autocast_key())
        out = self.replay(key, dict(embeds=embeds, mask=mask),
                          lambda s: forward(adapters, s["embeds"], s["mask"]))
        return forward(adapters, embeds, mask) if out is None else out


def capture_graph(run, device: torch.device, warmup: int):
    """``(graph, outputs)``: ``run`` warmed up on a side stream (cuBLAS handles, lazy inits, autotuning happen
    outside the graph), then captured once; ``graph.replay()`` rewrites ``outputs`` in place."""
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(warmup):
            run()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = run()
    return graph, outputs


class SceneGraphs(GraphCache):
    """CUDA graphs of ``MindDrive.encode_scene``, one per input signature.

    At batch 1 the host launching the ViT, PETR geometry and query-decoder kernels one by one leaves the GPU
    idle; a graph launches them all at once. Keyed by the batch's tensor keys, shapes and dtypes and the
    autocast state (an episode's first frame has no memory: its own graph). Every tensor of the batch is
    copied into the graph's static copy, so nothing the encoder reads is stale. Only for batches of tensors
    already on the model's CUDA device (a host tensor would be copied inside the graph).
    """

    def __call__(self, batch: dict[str, Any], encode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tensors = {k: v for k, v in batch.items() if torch.is_tensor(v)}
        if not tensors or any(v.device.type != "cuda" for v in tensors.values()) or len(tensors) != len(batch):
            return encode(batch)
        key = (tuple((k, tuple(v.shape), v.dtype, v.device) for k, v in sorted(tensors.items())), *_autocast_key())
        out = self.replay(key, tensors, encode)
        return encode(batch) if out is None else out


# ------------------------------------------------------------------ merged adapters
class MergedAdapters:
    """Inference copies of every LoRA layer's weight with each adapter merged in: ``W + scaling * B @ A``.

    With the adapter unmerged, every projection of an LLM pass is a base matmul plus two rank-r matmuls and an
    add, tiny kernels at batch 1. Merged, a single-adapter pass runs one matmul per projection, and a row-split
    pass (``llm.RowAdapterSplit``'s layout: block ``i`` of the rows under
    ``adapters[i]``) one batched matmul over the stacked merged weights.

    Merged weights are copies (one per adapter, each the size of the decoder layers' projections), valid
    for the weights they were merged from: :meth:`refresh` re-merges in place (graphs captured over them stay
    valid) when any LoRA or base weight was modified in place since (their version counters moved, e.g. an
    optimiser step or ``load_state_dict``). Without gradients only: merged weights carry none to the adapters.
    """

    def __init__(self, layers: list[nn.Module], adapters: tuple[str, ...] = ADAPTERS):
        if not layers:
            raise ValueError("MergedAdapters needs the PEFT LoRA layers (llm.lora_layers found none)")
        missing = [a for a in adapters if any(a not in layer.lora_A for layer in layers)]
        if missing:
            raise ValueError(f"MergedAdapters: adapter(s) {missing} are not on every LoRA layer")
        self.layers, self.adapters = layers, tuple(adapters)
        with torch.no_grad():
            self.weights = [torch.empty((len(adapters), *layer.base_layer.weight.shape),
                                        dtype=layer.base_layer.weight.dtype, device=layer.base_layer.weight.device)
                            for layer in layers]
        self._sources = [t for layer in layers for t in (layer.base_layer.weight, *(
            w for a in adapters for w in (layer.lora_A[a].weight, layer.lora_B[a].weight)))]
        self._merged_version: int | None = None
        self._views: dict[tuple[str, ...], tuple[list[int], bool, list[torch.Tensor]]] = {}
        self.refresh()

    def _version(self) -> int:
        return sum(t._version for t in self._sources)

    def refresh(self) -> bool:
        """Re-merge if a source weight changed since the last merge; True when it did."""
        version = self._version()
        if version == self._merged_version:
            return False
        with torch.no_grad():
            for layer, merged in zip(self.layers, self.weights):
                base = layer.base_layer.weight
                for i, name in enumerate(self.adapters):
                    a, b = layer.lora_A[name].weight, layer.lora_B[name].weight
                    delta = (b.float() @ a.float()) * layer.scaling[name]
                    merged[i].copy_(base.float() + delta)
            for index, contiguous, views in self._views.values():
                if not contiguous:
                    for view, merged in zip(views, self.weights):
                        view.copy_(merged[index])
        self._merged_version = self._version()
        return True

    def _weight_views(self, adapters: tuple[str, ...]) -> list[torch.Tensor]:
        """Each layer's merged weights for this adapter layout, (len(adapters), out, in)."""
        if adapters not in self._views:
            index = [self.adapters.index(a) for a in adapters]
            contiguous = index == list(range(index[0], index[0] + len(index)))
            # A contiguous run of adapters is a view of the stacked weights; any other order is a copy,
            # rewritten in place by each re-merge.
            self._views[adapters] = (index, contiguous, [merged[index[0]:index[0] + len(index)] if contiguous
                                                         else merged[index] for merged in self.weights])
        return self._views[adapters][2]

    @contextlib.contextmanager
    def __call__(self, adapters: tuple[str, ...]):
        """Inside, every LoRA layer computes with the merged weights of ``adapters`` (row blocks as above).

        Each layer's class is swapped for a subclass whose ``forward`` reads the layer's ``merged_weight``
        attribute: one class and one function for every layer, so a compiled decoder layer traces once for all
        24 layers (a per-layer function object would be a guard per layer, and a recompile for each).
        """
        unknown = [a for a in adapters if a not in self.adapters]
        if unknown:
            raise ValueError(f"MergedAdapters: {unknown} not merged (have {self.adapters})")
        classes = [type(layer) for layer in self.layers]
        try:
            for layer, cls, weight in zip(self.layers, classes, self._weight_views(tuple(adapters))):
                # Written to __dict__ directly: nn.Module.__setattr__ costs ~1 us per layer in bookkeeping.
                layer.__dict__["merged_weight"] = weight
                layer.__class__ = _merged_class(cls)
            yield
        finally:
            for layer, cls in zip(self.layers, classes):
                layer.__class__ = cls
                layer.__dict__.pop("merged_weight", None)


_MERGED_CLASSES: dict[type, type] = {}


def _merged_class(cls: type) -> type:
    """``cls`` (a PEFT LoRA layer class) with ``forward`` computing from ``self.merged_weight``."""
    if cls in _MERGED_CLASSES.values():  # already swapped (a nested context): keep it
        return cls
    if cls not in _MERGED_CLASSES:
        def forward(self, x, *args, **kwargs):
            return _merged_linear(self.merged_weight, self.base_layer.bias, x)

        _MERGED_CLASSES[cls] = type(f"Merged{cls.__name__}", (cls,), {"forward": forward, "__module__": __name__})
    return _MERGED_CLASSES[cls]


def _merged_linear(weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """``weight`` (n, out, in): rows of ``x`` in n equal contiguous blocks, block i through ``weight[i]``."""
    n = weight.shape[0]
    if n == 1:
        return torch.nn.functional.linear(x, weight[0], bias)
    blocks = x.reshape(n, -1, x.shape[-1])
    out = torch.bmm(blocks, weight.transpose(1, 2)).reshape(*x.shape[:-1], weight.shape[1])
    return out if bias is None else out + bias.to(out.dtype)
