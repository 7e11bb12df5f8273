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
    (up to the base matmul running over more rows). Unlike PEFT's ``forward(adapter_names=...)`` it builds no
    index lists on the host per layer and keeps autograd working (PPO scores decision and value in one pass
    too, through the same numbers as the rollout).
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
        # Out of place, one add over all rows: an in-place add into each block of ``output`` makes autograd copy
        # the whole output gradient per block (CopySlices).
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
