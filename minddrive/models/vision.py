"""Image backbones: each maps (B, 3, H, W) normalised images to a stride-16 feature map (B, C, H/16, W/16).

* :class:`SmallCNN` -- a few strided convolutions, for tests and CPU runs.
* :class:`EVA02ViT` -- an EVA-02-shaped plain ViT (patch 16, SwiGLU MLP, windowed attention in most
  blocks and global attention every ``global_every``-th block, PyTorch SDPA) written in plain torch so
  it runs where timm cannot be imported. Tiny shapes for tests; embed 1024 / depth 24 / heads 16 at
  640x640 for the real configs (EVA-02-L/16, as upstream ORION/MindDrive).
* :class:`TimmBackbone` -- wraps a timm model when timm imports (the CUDA device machines).

Pretrained weights come from a local file (``ckpts/...``) via ``pretrained=``; never from a hub.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._pytree import tree_leaves
from torch.utils.checkpoint import checkpoint

from minddrive.errors import UserError
from minddrive.registry import MODELS


def load_local_weights(module: nn.Module, path: str | None, where: str) -> None:
    """Load a state dict (``.safetensors`` or torch ``.pth``) from a local file into ``module``."""
    if not path:
        return
    if not os.path.isfile(path):
        raise UserError(f"{where}.pretrained: weight file {path!r} not found (put it under ckpts/)")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state.get("model", state))
    missing, unexpected = module.load_state_dict(state, strict=False)
    if len(missing) == len(module.state_dict()):
        raise UserError(f"{where}.pretrained: {path!r} shares no parameter names with {type(module).__name__}")


@MODELS.register_module()
class SmallCNN(nn.Module):
    """Four stride-2 conv stages (stride 16 overall) with BatchNorm-free GroupNorm, cheap on CPU."""

    def __init__(self, out_channels: int = 64, widths: tuple[int, ...] = (16, 32, 48), pretrained: str | None = None):
        super().__init__()
        chans = (3, *widths, out_channels)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(min(8, c_out), c_out), nn.GELU()]
        self.body = nn.Sequential(*layers)
        self.out_channels = out_channels
        self.stride = 2 ** (len(chans) - 1)
        load_local_weights(self, pretrained, "model.vision.backbone")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


class _LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` that, under autocast, normalises in the autocast dtype instead of float32.

    Autocast runs ``layer_norm`` in float32 and returns float32, so every ViT norm wrote a float32 copy of
    the widest activations (the 2730-wide MLP hidden) only for the next Linear to cast it back to bf16:
    memory traffic the size of the matmuls' time. The kernel still accumulates its statistics in float32;
    the output is what the next Linear would have seen after its own cast. Without autocast (float32
    runs, or a model cast to bf16) it is exactly ``nn.LayerNorm``; parameter names are unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kind = x.device.type
        if kind not in ("cuda", "cpu") or not torch.is_autocast_enabled(kind):  # e.g. meta-device shape tests
            return super().forward(x)
        dtype = torch.get_autocast_dtype(kind)
        with torch.autocast(kind, enabled=False):
            return F.layer_norm(x.to(dtype), self.normalized_shape, self.weight.to(dtype), self.bias.to(dtype), self.eps)


FLOAT8 = torch.float8_e4m3fn
FLOAT8_MAX = torch.finfo(FLOAT8).max


def quantize_float8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(float8 e4m3 weight (out, in), scale (1, out)): one scale per output channel, ``weight ~ q * scale``."""
    w = weight.detach().float()
    scale = w.abs().amax(1, keepdim=True).clamp(min=1e-12) / FLOAT8_MAX
    return (w / scale).to(FLOAT8), scale.t().contiguous()


def float8_linear(x: torch.Tensor, weight: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` with a :func:`quantize_float8` weight: the input is quantised per token (one scale per
    row) and the product runs on float8 tensor cores (``torch._scaled_mm``), output in ``x``'s dtype."""
    q_weight, w_scale = weight
    rows = x.reshape(-1, x.shape[-1])
    scale = rows.abs().amax(1, keepdim=True).float().clamp(min=1e-12) / FLOAT8_MAX
    q = (rows.float() / scale).to(FLOAT8)
    out = torch._scaled_mm(q, q_weight.t(), scale_a=scale, scale_b=w_scale, out_dtype=x.dtype)
    if bias is not None:
        out = out + bias.to(out.dtype)
    return out.view(*x.shape[:-1], out.shape[-1])


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, float8: dict | None, key: str):
    """``F.linear``, or its float8 form where the module holds quantised weights (inference only)."""
    if float8 is not None and not torch.is_grad_enabled():
        return float8_linear(x, float8[key], bias)
    return F.linear(x, weight, bias)


class _SwiGLU(nn.Module):
    """EVA-02's MLP: ``w3(LayerNorm(silu(a) * b))`` with ``a, b = w12(x)``.

    EVA-02-L's hidden width is 1024 * 8/3 = 2730, a row length the bf16 tensor-core GEMMs cannot use at full
    speed: on an H200 the two MLP matmuls ran at 229 and 173 TFLOP/s against 622 and 555 with the width
    padded to 2736 (``benchmarks/scene_profile.py``), and the MLP is 2/3 of the ViT's FLOPs. On CUDA the
    forward therefore pads the *weights* per call (zero rows in ``w12``, zero columns in ``w3``; a copy ~1 %
    the size of the activations) so the padded hidden units are exactly 0 and contribute nothing; the
    sub-LayerNorm still normalises over the real 2730 units. Parameters and checkpoints keep the real shapes.

    The width is padded to a multiple of 32 (2752), not 16: ``w12``'s output rows (2 x 2736 bf16 = 10,944
    bytes) were not whole 128-byte lines, so compiled, Inductor padded that output's row stride, and cuBLAS
    takes its bias epilogue only for a contiguous output: it broadcast-copied the bias into the 38400 x 5472
    output first, ~8.5 ms of an H100 IL step (``scene_profile.py --parts vit_ops``).
    """

    ALIGN = 32  # elements: w12's rows (2 x ALIGN x 2 bytes) whole 128-byte lines; float8 GEMMs need 16
    pad_hidden: bool | None = None  # None: on CUDA only (CPU GEMMs gain nothing); True/False force it
    float8: dict | None = None  # quantised padded weights (EVA02ViT.use_float8), inference only

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.norm = _LayerNorm(hidden)  # EVA-02 puts a sub-LayerNorm inside the MLP
        self.w3 = nn.Linear(hidden, dim)

    def padded_weights(self, pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(w12, b12, w3) with ``pad`` zero hidden units appended to each half of w12 and to w3's inputs."""
        hidden = self.w3.in_features
        w12 = F.pad(self.w12.weight.view(2, hidden, -1), (0, 0, 0, pad)).view(2 * (hidden + pad), -1)
        b12 = F.pad(self.w12.bias.view(2, hidden), (0, pad)).view(-1)
        return w12, b12, F.pad(self.w3.weight, (0, pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.w3.in_features
        float8 = self.float8 if self.float8 is not None and not torch.is_grad_enabled() else None
        pad = (-hidden) % self.ALIGN  # the float8 weights are always padded
        if float8 is None and not (x.device.type == "cuda" if self.pad_hidden is None else self.pad_hidden):
            pad = 0
        if float8 is not None:  # quantised (padded) weights and the padded bias, made once
            w12, b12, w3 = None, float8["b12"], None
        else:
            w12, b12, w3 = self.padded_weights(pad) if pad else (self.w12.weight, self.w12.bias, self.w3.weight)
        a, b = _linear(x, w12, b12, float8, "w12").chunk(2, dim=-1)
        gated = F.silu(a) * b  # padded units: silu(0) * 0 = 0
        if not pad:
            h = self.norm(gated)
        elif torch.compiler.is_compiling():
            h = self.padded_norm(gated, pad)
        else:  # eager: ATen's fused layer_norm kernel over the real units beats padded_norm's separate ops
            h = F.pad(self.norm(gated[..., :hidden]), (0, pad))
        return _linear(h, w3, self.w3.bias, float8, "w3")

    def padded_norm(self, x: torch.Tensor, pad: int) -> torch.Tensor:
        """``self.norm`` over the real units of ``x`` (..., hidden + pad), whose last ``pad`` units are 0; the
        output's are 0 too. Statistics and normalisation run over the whole padded row: cutting it to 2730 for
        ``LayerNorm`` and padding it back for ``w3`` gave Inductor two row lengths, so the statistics, the
        normalisation and their backward became separate kernels, each reading the 2 x 2752-wide input. Over
        the padded row an H100 IL step's ViT ran 8 ms faster (forward 69.7 -> 66.3 ms, backward 153.3 -> 148.2;
        ``benchmarks/RESULTS.md`` run 7, call 11). Compiled only: run eagerly, its half a dozen float32 ops each
        make a full pass (and keep their outputs for backward): the eager IL step went from 583 to 775 ms and
        56 to 70 GiB (run 8)."""
        n = x.shape[-1] - pad
        xf = x.float()
        mean = xf.sum(-1, keepdim=True) / n
        centred = xf - mean
        var = (centred.square().sum(-1, keepdim=True) - pad * mean.square()) / n  # each pad unit added mean^2
        weight, bias = F.pad(self.norm.weight, (0, pad)), F.pad(self.norm.bias, (0, pad))
        return (centred * torch.rsqrt(var + self.norm.eps) * weight + bias).to(x.dtype)


class _ViTBlock(nn.Module):
    """Pre-norm block; attention is global or inside non-overlapping ``window`` x ``window`` patch windows."""

    float8: dict | None = None  # quantised qkv/proj weights (EVA02ViT.use_float8), inference only

    def __init__(self, dim: int, heads: int, mlp_ratio: float, window: int | None):
        super().__init__()
        self.heads, self.window = heads, window
        self.norm1 = _LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = _LayerNorm(dim)
        self.mlp = _SwiGLU(dim, int(dim * mlp_ratio))

    def _attend(self, qkv: torch.Tensor) -> torch.Tensor:  # qkv: (B', T, 3C) -> attention output before ``proj``
        b, t, c = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        # (3, B', heads, T, 64) views with a unit-stride last dim: SDPA takes them as they are (flash/cuDNN
        # kernels under bf16) without a contiguous copy.
        q, k, v = qkv.view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(b, t, c)

    def forward(self, x: torch.Tensor, hw: tuple[int, int], checkpointed: bool = False) -> torch.Tensor:
        # Recompute-in-backward happens inside the block, so a wrapper around the block (FSDP) runs its own
        # forward once: recomputing through the wrapper re-gathers and re-binds its parameters mid-backward,
        # which FSDP's SHARD_GRAD_OP refuses ("changing the parameters between forward and backward").
        if checkpointed:
            return checkpoint(self._block, x, hw, use_reentrant=False)
        return self._block(x, hw)

    def _block(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        h, w = hw
        b, _, c = x.shape
        y = self.norm1(x)
        if self.window:
            s = self.window
            ph, pw = (-h) % s, (-w) % s  # pad the grid to whole windows
            hp, wp = h + ph, w + pw
            # The windows pad the normed tokens with zeros, whose qkv is the bias alone: project only the real
            # tokens and pad their qkv with the bias.
            qkv = F.pad(_linear(y, self.qkv.weight, None, self.float8, "qkv").view(b, h, w, 3 * c), (0, 0, 0, pw, 0, ph))
            if self.qkv.bias is not None:
                qkv = qkv + self.qkv.bias
            win = qkv.view(b, hp // s, s, wp // s, s, 3 * c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, 3 * c)
            win = self._attend(win)
            grid = win.view(b, hp // s, wp // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
            y = grid[:, :h, :w].reshape(b, h * w, c)
        else:
            y = self._attend(_linear(y, self.qkv.weight, self.qkv.bias, self.float8, "qkv"))
        # ``proj`` is per token, so applying it after dropping the window padding gives the same values. Like
        # qkv above, it skips the padded rows (40x40 patches pad to 48x48 at window 16: 31 % of the rows).
        x = x + _linear(y, self.proj.weight, self.proj.bias, self.float8, "proj")
        return x + self.mlp(self.norm2(x))


@MODELS.register_module()
class EVA02ViT(nn.Module):
    """EVA-02-shaped ViT backbone. Real config: ``embed_dim=1024, depth=24, num_heads=16, img_size=(640, 640)``.

    Global attention in blocks ``global_every-1, 2*global_every-1, ...`` (2, 5, 8, ... for 3) and windowed
    attention elsewhere, as the EVA-02 detection backbones. Absolute position embeddings are bicubically
    resized when the input differs from ``img_size``. ``grad_checkpoint`` recomputes each block in backward.
    """

    patch_matmul: bool | None = None  # None: patches embedded by a matmul on CUDA (embed_patches); True/False force

    def __init__(self, img_size: tuple[int, int] = (640, 640), patch_size: int = 16, embed_dim: int = 1024,
                 depth: int = 24, num_heads: int = 16, mlp_ratio: float = 4 * 2 / 3, window_size: int = 16,
                 global_every: int = 3, out_channels: int | None = None, grad_checkpoint: bool = False,
                 pretrained: str | None = None):
        super().__init__()
        self.patch_size = patch_size
        self.stride = patch_size
        self.grid = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *self.grid))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            _ViTBlock(embed_dim, num_heads, mlp_ratio, None if (i + 1) % global_every == 0 else window_size)
            for i in range(depth))
        self.norm = _LayerNorm(embed_dim)
        self.out_channels = out_channels or embed_dim
        self.neck = nn.Identity() if self.out_channels == embed_dim else nn.Conv2d(embed_dim, self.out_channels, 1)
        self.grad_checkpoint = grad_checkpoint
        load_local_weights(self, pretrained, "model.vision.backbone")
        self._float8_version: int | None = None  # source weights' version sum when quantised; None = float8 off

    def use_float8(self, enabled: bool = True) -> None:
        """Gradient-free forwards run the blocks' four matmuls in float8 (e4m3; weights quantised once per
        output channel, activations per token, :func:`float8_linear`), Hopper's float8 tensor cores having
        twice the bf16 rate: the 0.5B's scene encoder at batch 1 went from ~21.5 to ~18.7 ms on an H100.
        Inference only, and an approximation: ``benchmarks/gpu_bench.py`` reports how far the ViT features
        and the decisions move. Passes with gradients (training) use the real weights. Needs float8 matmuls
        (CUDA sm89+, or the CPU)."""
        if not enabled:
            for block in self.blocks:
                block.float8 = block.mlp.float8 = None
            self._float8_version = None
            return
        device = self.pos_embed.device
        if device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 9):
            raise UserError("vit_float8: float8 matmuls need an sm89+ GPU (Ada, Hopper or newer)")
        self._float8_version = -1
        self.refresh_float8()

    @property
    def float8_enabled(self) -> bool:
        return self._float8_version is not None

    def refresh_float8(self) -> bool:
        """Re-quantise if float8 is on and a block weight changed in place since (version counters moved)."""
        if not self.float8_enabled:
            return False
        weights = [p for block in self.blocks
                   for p in (block.qkv.weight, block.proj.weight, block.mlp.w12.weight, block.mlp.w12.bias,
                             block.mlp.w3.weight)]
        version = sum(p._version for p in weights)
        if version == self._float8_version:
            return False
        with torch.no_grad():
            for block in self.blocks:
                mlp = block.mlp
                pad = (-mlp.w3.in_features) % mlp.ALIGN  # float8 GEMMs need multiples of 16: always padded
                w12, b12, w3 = mlp.padded_weights(pad)
                quantised = dict(qkv=quantize_float8(block.qkv.weight), proj=quantize_float8(block.proj.weight),
                                 w12=quantize_float8(w12), b12=b12.detach().clone(), w3=quantize_float8(w3))
                if block.float8 is None:
                    block.float8 = {k: quantised[k] for k in ("qkv", "proj")}
                    mlp.float8 = {k: quantised[k] for k in ("w12", "b12", "w3")}
                else:  # in place, so CUDA graphs captured over the quantised weights replay the new ones
                    for held in (block.float8, mlp.float8):
                        for key, value in held.items():
                            for dst, src in zip(tree_leaves(value), tree_leaves(quantised[key])):
                                dst.copy_(src)
        self._float8_version = version
        return True

    def embed_patches(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch tokens (B, h*w, C) of ``patch_embed`` and the grid (h, w).

        A convolution whose kernel equals its stride is one matmul over the flattened patches. On CUDA that is
        how it runs: cuDNN picked an implicit-GEMM kernel taking ~0.8 ms for six 640x640 bf16 images (H200,
        ``benchmarks/scene_profile.py``), a ~15 GFLOP matmul's work. Same weights, same numbers."""
        p = self.patch_size
        if not (images.device.type == "cuda" if self.patch_matmul is None else self.patch_matmul):
            x = self.patch_embed(images)
            return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])
        b, c, height, width = images.shape
        h, w = height // p, width // p  # a strided conv drops a remainder of rows/columns too
        patches = images[:, :, :h * p, :w * p].reshape(b, c, h, p, w, p).permute(0, 2, 4, 1, 3, 5)
        weight = self.patch_embed.weight.flatten(1)  # (C, 3 * p * p), in the (channel, row, column) order above
        return F.linear(patches.reshape(b, h * w, c * p * p), weight, self.patch_embed.bias), (h, w)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            self.refresh_float8()
        x, (h, w) = self.embed_patches(images)
        b, c = x.shape[0], x.shape[2]
        pos = self.pos_embed
        if (h, w) != self.grid:
            pos = F.interpolate(pos, size=(h, w), mode="bicubic", align_corners=False)
        x = x + pos.flatten(2).transpose(1, 2)
        checkpointed = self.grad_checkpoint and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            x = block(x, (h, w), checkpointed=checkpointed)
        x = self.norm(x).transpose(1, 2).reshape(b, c, h, w)
        return self.neck(x)


@MODELS.register_module()
class TimmBackbone(nn.Module):
    """A timm model's last feature map (only where timm imports, i.e. with a CUDA torch build)."""

    def __init__(self, model_name: str = "eva02_large_patch14_448", out_channels: int | None = None,
                 pretrained: str | None = None, **timm_kwargs):
        super().__init__()
        try:
            import timm
        except Exception as exc:  # timm needs torchvision, which does not import beside the CPU torch wheel
            raise UserError(f"model.vision.backbone: type TimmBackbone needs timm ({exc}); use EVA02ViT or SmallCNN")
        self.model = timm.create_model(model_name, pretrained=False, features_only=True, **timm_kwargs)
        info = self.model.feature_info
        self.stride = info.reduction()[-1]
        channels = info.channels()[-1]
        self.out_channels = out_channels or channels
        self.neck = nn.Identity() if self.out_channels == channels else nn.Conv2d(channels, self.out_channels, 1)
        load_local_weights(self.model, pretrained, "model.vision.backbone")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.neck(self.model(images)[-1])


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["SmallCNN", "EVA02ViT", "TimmBackbone", "load_local_weights", "count_parameters"]
