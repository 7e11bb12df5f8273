"""The language model: one Qwen2 with MindDrive's special tokens and three PEFT LoRA adapters.

``build_llm`` loads ``Qwen2ForCausalLM.from_pretrained`` from a local directory (``ckpts/Qwen2-0.5B``) or
builds random weights from a config dict (tests, CPU quick start). The base weights are always frozen; only
LoRA adapters train. Adapters (``ADAPTERS``) share the base and are switched per call with ``set_adapter``:

* ``action_expert``   -- trained in imitation learning; produces the waypoint-token hidden states.
* ``decision_expert`` -- scores the 7 speed meta-action tokens; trained by PPO.
* ``value_expert``    -- with a linear head, the value net. Upstream keeps a second LoRA'd LLM copy for it;
  because the base is frozen in every stage, "copy + LoRA" equals "shared base + its own adapter", which
  saves one full base model of memory (~1 GB for 0.5B in bf16, ~6 GB for 3B).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any

import torch
from torch import nn

from minddrive.constants import SPECIAL_TOKENS
from minddrive.errors import UserError

ADAPTERS = ("action_expert", "decision_expert", "value_expert")
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def build_tokenizer(cfg: dict[str, Any]):
    """``dict(type='tiny', vocab_size=512)`` or ``dict(type='pretrained', path='ckpts/Qwen2-0.5B')``."""
    from minddrive.data.tokenizer import build_tiny_tokenizer, load_tokenizer

    kind = cfg.get("type", "pretrained")
    if kind == "tiny":
        return build_tiny_tokenizer(int(cfg.get("vocab_size", 512)))
    if kind == "pretrained":
        return load_tokenizer(cfg["path"])
    raise UserError(f"model.llm.tokenizer.type: expected 'tiny' or 'pretrained', got {kind!r}")


def build_base_llm(cfg: dict[str, Any], torch_dtype: torch.dtype | None = None):
    """The bare Qwen2ForCausalLM: ``from_pretrained`` when ``cfg['pretrained']`` names a directory."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    attn = cfg.get("attn_implementation", "sdpa")
    path = cfg.get("pretrained")
    if path:
        if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
            raise UserError(f"model.llm.pretrained: {path!r} is not a Hugging Face model directory "
                            "(expected config.json + weights, e.g. ckpts/Qwen2-0.5B)")
        return Qwen2ForCausalLM.from_pretrained(path, attn_implementation=attn, dtype=torch_dtype or torch.float32)
    if "config" not in cfg:
        raise UserError("model.llm: expected 'pretrained' (a local directory) or 'config' (Qwen2Config kwargs)")
    config = Qwen2Config(**cfg["config"])
    config._attn_implementation = attn
    return Qwen2ForCausalLM(config)


def init_added_token_rows(llm, token_ids: list[int], seed: int) -> torch.Tensor:
    """Give the added tokens distinct, seeded embeddings near the existing distribution.

    They must differ: with tied embeddings the speed tokens' output rows are their input rows, and
    identical rows would make every decision distribution uniform whatever the adapters do.
    """
    emb = llm.get_input_embeddings().weight
    known = torch.ones(emb.shape[0], dtype=torch.bool)
    known[token_ids] = False
    base = emb.detach()[known[: emb.shape[0]]].float()
    gen = torch.Generator().manual_seed(seed)
    rows = base.mean(0) + base.std(0) * torch.randn(len(token_ids), emb.shape[1], generator=gen)
    with torch.no_grad():
        emb[token_ids] = rows.to(emb.dtype)
        out = llm.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != emb.data_ptr():
            out.weight[token_ids] = rows.to(out.weight.dtype)
    return rows


def build_llm(cfg: dict[str, Any], tokenizer, seed: int = 0, torch_dtype: torch.dtype | None = None):
    """Base Qwen2 + special tokens + the three LoRA adapters, base frozen. Returns the PEFT model."""
    from peft import LoraConfig, get_peft_model

    llm = build_base_llm(cfg, torch_dtype)
    if len(tokenizer) > llm.config.vocab_size:  # Qwen2's 151,936-row table already has room for our tokens
        llm.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    special_ids = [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    init_added_token_rows(llm, special_ids, seed)
    for p in llm.parameters():
        p.requires_grad_(False)
    if cfg.get("gradient_checkpointing", False):
        set_activation_checkpointing(llm, True)
    lora = dict(r=16, lora_alpha=16, lora_dropout=0.05, target_modules=list(DEFAULT_LORA_TARGETS))
    lora.update(cfg.get("lora", {}))
    lora["target_modules"] = list(lora["target_modules"])
    config = LoraConfig(bias="none", task_type="CAUSAL_LM", **lora)
    with warnings.catch_warnings():
        # PEFT's PeftModel.__init__ reads the deprecated ``is_gradient_checkpointing`` property itself; the
        # warning is about PEFT's code, not ours (we use ``set_activation_checkpointing``).
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        model = get_peft_model(llm, config, adapter_name=ADAPTERS[0])
    for name in ADAPTERS[1:]:
        model.add_adapter(name, LoraConfig(bias="none", task_type="CAUSAL_LM", **lora))
    return model


def set_activation_checkpointing(causal_lm, enabled: bool) -> None:
    """Turn the LLM's layer recomputation on (non-reentrant) or off. transformers 5 renamed the API to
    ``activation_checkpointing_*`` and warns on the old ``gradient_checkpointing_*`` names; use whichever
    the installed version has."""
    if hasattr(causal_lm, "activation_checkpointing_enable"):
        if enabled:
            causal_lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            causal_lm.activation_checkpointing_disable()
    elif enabled:
        causal_lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        causal_lm.gradient_checkpointing_disable()


def activation_checkpointing_enabled(causal_lm) -> bool:
    if hasattr(type(causal_lm), "is_activation_checkpointing"):
        return bool(causal_lm.is_activation_checkpointing)
    return bool(getattr(causal_lm, "is_gradient_checkpointing", False))


def lora_layers(peft_model) -> list[nn.Module]:
    """The PEFT tuner layers whose ``_active_adapter`` selects the adapter in forward; empty if this PEFT
    version keeps that state elsewhere (callers then switch through ``set_adapter``)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in peft_model.modules() if isinstance(m, BaseTunerLayer)]
    return layers if layers and all(hasattr(m, "_active_adapter") for m in layers) else []


def is_base_parameter(name: str) -> bool:
    """True for a frozen base-LLM weight (anything that is not a LoRA tensor)."""
    return "lora_" not in name


def frozen_decoder_linears(peft_model) -> list[nn.Linear]:
    """The base model's ``nn.Linear`` layers inside its decoder layers (LoRA's base layers, and any projection
    LoRA does not target): all frozen. Not the embeddings, the (tied) LM head or the norms."""
    layers = peft_model.base_model.model.model.layers
    return [m for name, m in layers.named_modules() if isinstance(m, nn.Linear) and "lora_" not in name]


def store_frozen_linears(peft_model, dtype: torch.dtype) -> int:
    """Keep the frozen decoder-layer Linear weights and biases in ``dtype`` (in place); returns the bytes freed.

    Under autocast to ``dtype`` no number changes: autocast casts every Linear's weight and bias to ``dtype``
    before its matmul anyway, in every forward (frozen tensors are not in its cast cache), and the residual
    stream, norms and embeddings keep their float32. What goes is that cast (per step: read the float32
    weights, write a bf16 copy, keep it for backward; 5.2 ms of a 3B IL step's 34.8 ms LLM forward at batch 2
    on an H100) and half the weights' memory: the 3B batch-4 step went from 350.2 to 344.8 ms and from 71.2 to
    60.7 GiB (``benchmarks/RESULTS.md``, run 8). Only for passes under autocast: a float32 pass would meet
    bf16 weights (``F.linear`` refuses mixed dtypes)."""
    freed = 0
    for linear in frozen_decoder_linears(peft_model):
        for param in (linear.weight, linear.bias):
            if param is None or param.dtype == dtype:
                continue
            if param.requires_grad:
                raise ValueError("store_frozen_linears: a base Linear of the LLM is trainable")
            freed += param.numel() * (param.element_size() - dtype.itemsize)
            param.data = param.data.to(dtype)
    return freed


def lora_parameter_count(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, r: int,
                         targets=DEFAULT_LORA_TARGETS) -> int:
    """Parameters of one LoRA adapter on a Qwen2: r * (in + out) per targeted projection per layer."""
    head_dim = hidden // heads
    shapes = {"q_proj": (hidden, hidden), "k_proj": (hidden, kv_heads * head_dim), "v_proj": (hidden, kv_heads * head_dim),
              "o_proj": (hidden, hidden), "gate_proj": (hidden, intermediate), "up_proj": (hidden, intermediate),
              "down_proj": (intermediate, hidden)}
    return layers * sum(r * sum(shapes[t]) for t in targets)


class LLMHandle(nn.Module):
    """Thin holder so the PEFT model's parameter names stay stable under ``model.llm.*``."""

    def __init__(self, peft_model):
        super().__init__()
        self.peft = peft_model


class RowAdapterSplit:
    """One LLM forward whose batch rows use different LoRA adapters: the rows split into ``len(adapters)``
    equal contiguous blocks, block ``i`` with ``adapters[i]`` (e.g. decision and value over the same prompt,
    ``torch.cat([x, x])``, in one pass instead of two).

    Inside the context every LoRA layer runs its base weight over all rows (no active adapter) and a forward
    hook adds each block's own update ``lora_B(lora_A(dropout(x))) * scaling`` in place, the expression PEFT's
    ``Linear.forward`` evaluates for one active adapter, so each block equals a pass with that adapter alone
    (up to the base matmul running over more rows). Unlike PEFT's ``forward(adapter_names=...)`` it needs no
    index lists built on the host per layer, so the pass can be captured in a CUDA graph, and it keeps
    autograd working (PPO can score decision and value in one pass too).
    """

    def __init__(self, layers: list[nn.Module], adapters: tuple[str, ...]):
        if not layers:
            raise ValueError("RowAdapterSplit needs the PEFT LoRA layers (llm.lora_layers found none)")
        self.layers, self.adapters = layers, tuple(adapters)
        self._saved: list[Any] = []
        self._hooks: list[Any] = []

    def _hook(self, layer, args, output):
        x = args[0]
        rows = x.shape[0] // len(self.adapters)
        # Under autocast the adapters' matmuls run in the autocast dtype whatever x's dtype, so x is not cast to
        # the (float32) adapter weights first: the same numbers without two copies of x per adapter.
        cast = not torch.is_autocast_enabled(x.device.type)
        updates = []
        for i, name in enumerate(self.adapters):
            block = x[i * rows:(i + 1) * rows]
            if name not in layer.lora_A:
                updates.append(output.new_zeros((rows, *output.shape[1:])))
                continue
            lora_a, lora_b = layer.lora_A[name], layer.lora_B[name]
            block = block.to(lora_a.weight.dtype) if cast else block
            update = lora_b(lora_a(layer.lora_dropout[name](block))) * layer.scaling[name]
            updates.append(update.to(output.dtype))
        # Out of place, one add over all rows: an in-place add into each block of ``output`` made autograd copy
        # the whole output gradient per block (CopySlices), ~1/2 of an eager PPO minibatch's GPU time on the H100.
        return output + torch.cat(updates)

    def __enter__(self):
        for layer in self.layers:
            self._saved.append(layer._active_adapter)
            layer._active_adapter = []
            self._hooks.append(layer.register_forward_hook(self._hook))
        return self

    def __exit__(self, *exc):
        for hook in self._hooks:
            hook.remove()
        for layer, saved in zip(self.layers, self._saved):
            layer._active_adapter = saved
        self._hooks, self._saved = [], []
        return False


class MergedAdapters:
    """Inference copies of every LoRA layer's weight with each adapter merged in: ``W + scaling * B @ A``.

    With the adapter unmerged, every projection of an LLM pass is a base matmul plus two rank-r matmuls and an
    add; at batch 1 (~450 tokens) those are ~3 us kernels each, 432 of them per ``act`` on the 0.5B, on top of
    the base kernels (``benchmarks/scene_profile.py``). Merged, a single-adapter pass runs one matmul per
    projection, and a row-split pass (:class:`RowAdapterSplit`'s layout: block ``i`` of the rows under
    ``adapters[i]``) one batched matmul over the stacked merged weights.

    Merged weights are copies (one per adapter: ~0.7 GB each for the 0.5B in bf16, ~5.6 GB for the 3B), valid
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
