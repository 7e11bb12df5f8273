"""Scene queries cross-attending multi-camera features, with explicit temporal memory.

Object and lane queries (learned content + learned position) run through ``num_layers`` decoder layers:
self-attention over ``[queries; memory]``, cross-attention to every camera's feature pixels (keys carry the
PETR 3D position embedding), and an FFN. The memory is the previous frame's top-``memory_size`` object
queries (a FIFO of one frame's top-k, StreamPETR-style), passed in and returned explicitly -- the module
keeps no state, so a rollout step can be recomputed exactly and episodes reset by passing an empty mask.

Optional auxiliary heads score, box and polyline-decode the queries (detection / lane losses in
:mod:`minddrive.models.losses`); the object score also ranks queries for the memory and for selecting the
scene tokens handed to the LLM when fewer tokens than queries are wanted.
"""

from __future__ import annotations

import torch
from torch import nn

from minddrive.registry import MODELS


class _DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))

    def forward(self, q, q_pos, mem, mem_pos, mem_pad, img, img_pos):
        n = q.shape[1]
        keys = torch.cat([q + q_pos, mem + mem_pos], 1)
        values = torch.cat([q, mem], 1)
        pad = torch.cat([mem_pad.new_zeros(q.shape[0], n), mem_pad], 1)
        q = self.norms[0](q + self.self_attn(q + q_pos, keys, values, key_padding_mask=pad, need_weights=False)[0])
        q = self.norms[1](q + self.cross_attn(q + q_pos, img + img_pos, img, need_weights=False)[0])
        return self.norms[2](q + self.ffn(q))


@MODELS.register_module()
class SceneQueryDecoder(nn.Module):
    """Returns object/lane query features, the new memory, and (optionally) auxiliary predictions."""

    def __init__(self, embed_dim: int = 256, num_object_queries: int = 600, num_lane_queries: int = 300,
                 num_layers: int = 6, num_heads: int = 8, ffn_dim: int = 1024, dropout: float = 0.0,
                 memory_size: int = 256, aux_heads: bool = True, num_classes: int = 4, lane_points: int = 20):
        super().__init__()
        self.num_object_queries, self.num_lane_queries = num_object_queries, num_lane_queries
        self.memory_size, self.embed_dim = memory_size, embed_dim
        nq = num_object_queries + num_lane_queries
        self.query = nn.Embedding(nq, embed_dim)
        self.query_pos = nn.Embedding(nq, embed_dim)
        self.memory_pos = nn.Parameter(torch.zeros(1, 1, embed_dim))  # marks "from the previous frame"
        self.layers = nn.ModuleList(_DecoderLayer(embed_dim, num_heads, ffn_dim, dropout) for _ in range(num_layers))
        self.object_score = nn.Linear(embed_dim, 1)
        self.aux_heads = aux_heads
        if aux_heads:
            self.class_head = nn.Linear(embed_dim, num_classes)
            self.box_head = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 5))
            self.lane_head = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.ReLU(),
                                           nn.Linear(embed_dim, lane_points * 2))
            self.lane_score = nn.Linear(embed_dim, 1)
        self.lane_points = lane_points

    def empty_memory(self, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(batch_size, self.memory_size, self.embed_dim, device=device),
                torch.zeros(batch_size, self.memory_size, device=device))

    def forward(self, img: torch.Tensor, img_pos: torch.Tensor, prev_memory: torch.Tensor | None = None,
                prev_memory_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``img``/``img_pos``: (B, T, C) flattened camera tokens. Memory (B, K, C) / mask (B, K), or None."""
        b = img.shape[0]
        if prev_memory is None or prev_memory_mask is None:
            prev_memory, prev_memory_mask = self.empty_memory(b, img.device)
        mem = prev_memory.to(img.dtype)
        pad = prev_memory_mask < 0.5
        # An all-empty memory is safe: the queries themselves are always unmasked keys.
        q = self.query.weight.unsqueeze(0).expand(b, -1, -1)
        q_pos = self.query_pos.weight.unsqueeze(0).expand(b, -1, -1)
        mem_pos = self.memory_pos.expand(b, mem.shape[1], -1)
        for layer in self.layers:
            q = layer(q, q_pos, mem, mem_pos, pad, img, img_pos)
        objects, lanes = q[:, :self.num_object_queries], q[:, self.num_object_queries:]
        scores = self.object_score(objects).squeeze(-1)  # (B, N_obj)
        k = min(self.memory_size, objects.shape[1])
        top = scores.topk(k, dim=1).indices
        new_memory = torch.gather(objects, 1, top.unsqueeze(-1).expand(-1, -1, objects.shape[-1]))
        out = {"objects": objects, "lanes": lanes, "object_scores": scores,
               # no backprop through time: the memory is an input of the next step, like an observation
               "memory": new_memory.detach().float(), "memory_mask": torch.ones(b, k, device=img.device)}
        if self.aux_heads:
            out["class_logits"] = self.class_head(objects)
            out["boxes"] = self.box_head(objects)  # [x, y, length, width, yaw] ego frame
            out["lane_polylines"] = self.lane_head(lanes).view(b, lanes.shape[1], self.lane_points, 2)
            out["lane_scores"] = self.lane_score(lanes).squeeze(-1)
        return out


def select_top(tokens: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` highest-scoring tokens, in their original order (all when ``k`` >= count)."""
    if k >= tokens.shape[1]:
        return tokens
    idx = scores.topk(k, dim=1).indices.sort(dim=1).values
    return torch.gather(tokens, 1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
