"""Real-size shapes, built on the meta device (no weights allocated, no download)."""

from __future__ import annotations

import warnings

import pytest
import torch

from minddrive.config import load_config
from minddrive.errors import UserError
from minddrive.models.llm import build_base_llm, lora_parameter_count
from minddrive.models.vision import EVA02ViT

QWEN2_05B = "adzoo/minddrive/configs/_base_/models/minddrive_qwen2_05b.py"
QWEN25_3B = "adzoo/minddrive/configs/_base_/models/minddrive_qwen25_3b.py"


def _meta_llm(path):
    cfg = load_config(path).model.llm
    with torch.device("meta"):
        return build_base_llm(dict(config=cfg.config))


def test_qwen2_05b_parameter_count_and_lora():
    from peft import LoraConfig, get_peft_model

    llm = _meta_llm(QWEN2_05B)
    assert sum(p.numel() for p in llm.parameters()) == 494_032_768  # tied embeddings counted once
    lora_cfg = load_config(QWEN2_05B).model.llm.lora
    per_adapter = lora_parameter_count(896, 4864, 24, 14, 2, lora_cfg.r, lora_cfg.target_modules)
    assert per_adapter == 8_798_208  # r=16 on q,k,v,o,gate,up,down
    with warnings.catch_warnings():  # PEFT itself reads transformers' deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        peft = get_peft_model(llm, LoraConfig(r=lora_cfg.r, lora_alpha=lora_cfg.lora_alpha,
                                              target_modules=list(lora_cfg.target_modules)), adapter_name="action_expert")
    assert sum(p.numel() for n, p in peft.named_parameters() if "lora_" in n) == per_adapter


def test_qwen25_3b_shape():
    llm = _meta_llm(QWEN25_3B)
    c = llm.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads) == (2048, 36, 16, 2)
    assert sum(p.numel() for p in llm.parameters()) == 3_085_938_688  # Qwen2.5-3B, tied embeddings


def test_eva02_large_shape_on_meta():
    cfg = load_config(QWEN2_05B).model.vision.backbone
    with torch.device("meta"):
        vit = EVA02ViT(**{k: v for k, v in cfg.items() if k not in ("type", "pretrained")})
        out = vit(torch.empty(1, 3, 640, 640))
    assert out.shape == (1, 1024, 40, 40)
    assert 290e6 < sum(p.numel() for p in vit.parameters()) < 320e6  # EVA-02-L is ~304 M


def test_missing_pretrained_dir_is_a_one_line_user_error(tmp_path):
    with pytest.raises(UserError, match="ckpts/Qwen2-0.5B"):
        build_base_llm(dict(pretrained=str(tmp_path / "nope")))
