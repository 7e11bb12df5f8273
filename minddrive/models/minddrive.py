"""The MindDrive model: cameras -> scene tokens -> one Qwen2 with LoRA experts -> decision, value and trajectory.

Data flow (batch keys as :mod:`minddrive.interfaces`):

1. ``img`` (0..255) is normalised with ``data_preprocessor`` mean/std, encoded per camera by the backbone,
   given a PETR 3D position embedding from ``lidar2img``, and read by the scene-query decoder (with the
   explicit ``prev_memory``). The top-scoring object and lane queries plus one ego/navigation token (an MLP
   over ``ego_state``, ``target_point``, ``route`` and ``command``) are projected to the LLM width.
2. Image placeholder: each sequence has ONE ``<image>`` token; it is *replaced* by the N scene tokens and
   ``attention_mask``/``labels`` are expanded (labels -100 there), so every sequence grows by N-1 positions
   and right padding stays at the right. The dataset stays independent of N this way.
3. The LLM runs with one adapter active: ``action_expert`` for training conversations and planning,
   ``decision_expert`` for the 7-way speed decision (one forward; log-softmax of the LM logits restricted
   to the speed-token ids at the last prompt position), ``value_expert`` + ``value_head`` for V(s).
4. The hidden states at ``<waypoint_ego>`` and ``<path_waypoint_ego>`` feed the trajectory head, each joined
   with the action expert's state at the chosen speed / path meta-action token (so the plan follows the
   decision) and with the normalised ego/navigation token. Training fits both the CVAE posterior decode and
   the prior-mean decode that ``plan`` returns (trajectory_head.py).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable

import torch
from torch import nn

from minddrive.constants import (EGO_STATE_DIM, IMAGE_TOKEN, NUM_PATH_ACTIONS, NUM_ROUTE_POINTS, NUM_SPEED_ACTIONS, PATH_TOKENS,
                                 PATH_WAYPOINT_TOKEN, SPECIAL_TOKENS, SPEED_TOKENS, WAYPOINT_TOKEN)
from minddrive.data import prompts
from minddrive.errors import UserError
from minddrive.models import losses as L
from minddrive.models.llm import (ADAPTERS, LLMHandle, RowAdapterSplit, activation_checkpointing_enabled, build_llm,
                                  build_tokenizer, is_base_parameter, lora_layers, set_activation_checkpointing)
from minddrive.models.position_embedding import PETRPositionEmbedding
from minddrive.models.query_decoder import select_top
from minddrive.registry import MODELS, build

TRAINABLE_GROUPS = ("action_expert", "decision_expert", "value_expert", "vision", "projector", "query_decoder",
                    "trajectory_head", "value_head")
DEFAULT_LOSS_WEIGHTS = dict(lm=1.0, planning=3.0, map_boundary=3.0, kl=3.0, collision=1.0, aux_detection=0.0,
                            aux_lane=0.0)
# Fixed input scales for the ego/navigation token (metres and m/s are O(10)).
_POSITION_SCALE, _STATE_SCALE = 20.0, 10.0
PATH_ANCHORS = ("none", "route")


def lm_loss_sum(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
                ) -> torch.Tensor:
    """Summed next-token cross-entropy of ``hidden`` rows (N, H) through the LM head, in float32."""
    logits = torch.nn.functional.linear(hidden, weight, bias).float()
    return torch.nn.functional.cross_entropy(logits, targets, reduction="sum")



@MODELS.register_module()
class MindDrive(nn.Module):
    # The losses as attributes, so a caller can substitute fused versions of them from outside.
    lm_loss_sum = staticmethod(lm_loss_sum)
    planning_losses = staticmethod(L.planning_losses)

    def __init__(self, llm: dict, vision: dict, query_decoder: dict, trajectory_head: dict,
                 data_preprocessor: dict | None = None, scene_tokens: dict | None = None,
                 loss_weights: dict | None = None, map_boundary_threshold: float = 1.0,
                 ego_size: tuple[float, float] = (4.9, 2.1), collision_margin: float = 0.5,
                 trainable: Iterable[str] = ("action_expert", "vision", "projector", "query_decoder", "trajectory_head"),
                 plan_from_ego_token: bool = True, plan_from_decision_token: bool = True,
                 path_anchor: str = "none", seed: int = 0):
        super().__init__()
        # Everything random below is drawn from ``seed``, so a config rebuilds the identical frozen base
        # (checkpoints store only the trainable weights).
        torch.manual_seed(seed)
        preprocess = data_preprocessor or dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
        self.register_buffer("img_mean", torch.tensor(preprocess["mean"]).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor(preprocess["std"]).view(1, 1, 3, 1, 1), persistent=False)

        # --- vision ---
        dim = query_decoder.get("embed_dim", 256)
        self.backbone = build(vision["backbone"], MODELS, where="model.vision.backbone")
        self.input_proj = nn.Conv2d(self.backbone.out_channels, dim, 1)
        self.position_embedding = PETRPositionEmbedding(dim, **vision.get("position_embedding", {}))
        self.query_decoder = build(query_decoder, MODELS, where="model.query_decoder")
        tokens = scene_tokens or {}
        self.num_object_tokens = tokens.get("num_object_tokens", self.query_decoder.num_object_queries)
        self.num_lane_tokens = tokens.get("num_lane_tokens", self.query_decoder.num_lane_queries)

        # --- language model ---
        self.tokenizer = build_tokenizer(llm.get("tokenizer", {}))
        self.llm = LLMHandle(build_llm(llm, self.tokenizer, seed=seed))
        hidden = self.llm.peft.base_model.model.config.hidden_size
        self.hidden_size = hidden
        self.projector = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        nav_in = EGO_STATE_DIM + 2 + NUM_ROUTE_POINTS * 2 + NUM_PATH_ACTIONS
        self.ego_encoder = nn.Sequential(nn.Linear(nav_in, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.value_head = nn.Linear(hidden, 1)
        # Trajectory-head inputs per branch: the <waypoint_ego> / <path_waypoint_ego> hidden state, plus by
        # default (a) the action expert's hidden state at the chosen speed / path meta-action token and (b) the
        # ego/navigation token. Measured on the tiny config, the waypoint-token state varies ~0.015 across
        # decisions (it is dominated by its own frozen embedding; routing the decision there is slow to learn),
        # the decision-token state ~0.8: reading it makes the plan follow the decision (what RL relies on).
        # The ego token brings ego speed and route geometry directly; its sample-to-sample variation is ~0.02
        # at init (mostly shared bias/route content), so a LayerNorm on the head side lifts it ~8x without
        # changing what the LLM receives.
        self.plan_from_decision_token, self.plan_from_ego_token = plan_from_decision_token, plan_from_ego_token
        head_in = hidden * (1 + int(plan_from_decision_token) + int(plan_from_ego_token))
        self.ego_plan_norm = nn.LayerNorm(hidden) if plan_from_ego_token else nn.Identity()
        self.trajectory_head = build(dict(trajectory_head, in_dim=head_in), MODELS, where="model.trajectory_head")
        # ``path_anchor="route"``: the path branch predicts an offset from the navigation route (the ego position
        # through the next target points, resampled 2 m apart: the same polyline in training and closed loop).
        # Expert clips never leave the lane, so a path regressed from scratch learns no recovery; anchored, a
        # plan that has drifted still points back along the route (benchmarks/RESULTS.md, RL).
        self.path_anchor = self._check_path_anchor(path_anchor)

        ids = {t: self.tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        self.image_token_id, self.waypoint_token_id = ids[IMAGE_TOKEN], ids[WAYPOINT_TOKEN]
        self.path_token_id = ids[PATH_WAYPOINT_TOKEN]
        self.register_buffer("speed_token_ids", torch.tensor([ids[t] for t in SPEED_TOKENS]), persistent=False)
        self.register_buffer("path_action_token_ids", torch.tensor([ids[t] for t in PATH_TOKENS]), persistent=False)
        self.added_token_ids = list(ids.values())
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

        self.loss_weights = dict(DEFAULT_LOSS_WEIGHTS, **(loss_weights or {}))
        self.map_boundary_threshold, self.ego_size, self.collision_margin = map_boundary_threshold, ego_size, collision_margin
        self._prompt_cache: dict[str, list[int]] = {}
        self._prompt_tables: dict[tuple[str, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
        self._lora_parameters = [p for n, p in self.llm.named_parameters() if not is_base_parameter(n)]
        self._lora_layers = lora_layers(self.llm.peft)
        self._active_adapter: str | None = None
        self.set_trainable(trainable)
        self.use_adapter("action_expert")

    # ------------------------------------------------------------------ parameters / adapters
    @property
    def llm_embeddings(self) -> nn.Embedding:
        return self.llm.peft.base_model.model.get_input_embeddings()

    @property
    def _decoder_lm(self):
        """(Qwen2Model, lm_head) with the LoRA layers injected in place."""
        causal = self.llm.peft.base_model.model
        return causal.model, causal.lm_head

    def _group_modules(self) -> dict[str, list[nn.Module]]:
        return {"vision": [self.backbone, self.input_proj, self.position_embedding],
                "query_decoder": [self.query_decoder], "projector": [self.projector, self.ego_encoder],
                "trajectory_head": [self.trajectory_head, self.ego_plan_norm], "value_head": [self.value_head]}

    def scene_encoder_trainable(self) -> bool:
        """Whether any weight between the cameras and the scene tokens trains (vision, query decoder, projector)."""
        groups = self._group_modules()
        return any(p.requires_grad for name in ("vision", "query_decoder", "projector") for m in groups[name]
                   for p in m.parameters())

    def set_trainable(self, names: Iterable[str]) -> None:
        """Make exactly the named groups trainable (see ``TRAINABLE_GROUPS``); base LLM weights never are."""
        names = tuple(names)
        unknown = [n for n in names if n not in TRAINABLE_GROUPS]
        if unknown:
            raise UserError(f"model.trainable: unknown group(s) {unknown}; expected names from {TRAINABLE_GROUPS}")
        self._trainable = names
        self._apply_trainable()

    def _apply_trainable(self) -> None:
        for group, modules in self._group_modules().items():
            for m in modules:
                m.requires_grad_(group in self._trainable)
        for name, p in self.llm.named_parameters():
            adapter = next((a for a in ADAPTERS if f".{a}." in name), None)
            p.requires_grad_(adapter is not None and adapter in self._trainable and not is_base_parameter(name))

    def use_adapter(self, name: str) -> None:
        """Activate one LoRA adapter for the next forward passes, leaving every ``requires_grad`` as it was.

        PEFT's ``set_adapter`` walks every module and marks the active adapter trainable (the others frozen),
        which would silently undo ``set_trainable`` (e.g. PPO training only the decision/value experts) and
        costs a module walk per switch (three switches per ``act``). Instead the LoRA layers found once at
        construction get their active adapter set directly, the same attribute ``set_adapter`` writes
        (PEFT 0.1x-0.2x); if a PEFT version lacks it, fall back to ``set_adapter`` and restore the flags."""
        if name == self._active_adapter:
            return
        if name not in ADAPTERS:
            raise UserError(f"adapter: unknown LoRA adapter {name!r}; expected one of {ADAPTERS}")
        tuner = self.llm.peft.base_model
        if self._lora_layers:
            for layer in self._lora_layers:
                layer._active_adapter = [name]
            tuner.active_adapter = name
        else:
            flags = [p.requires_grad for p in self._lora_parameters]
            tuner.set_adapter(name)
            for p, flag in zip(self._lora_parameters, flags):
                p.requires_grad_(flag)
        self._active_adapter = name

    @contextlib.contextmanager
    def adapter(self, name: str):
        previous = self._active_adapter
        self.use_adapter(name)
        try:
            yield
        finally:
            self.use_adapter(previous)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Every weight that is not part of the frozen base LLM: all three adapters (whatever the current
        trainable set), vision, query decoder, projector, heads, and the added token embedding rows."""
        state = {n: p.detach() for n, p in self.named_parameters()
                 if not (n.startswith("llm.") and is_base_parameter(n))}
        state["added_token_embeddings"] = self.llm_embeddings.weight[self.added_token_ids].detach()
        return state

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = self.trainable_state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise UserError(f"checkpoint: weights do not match the model config (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]}; {len(missing)}/{len(unexpected)} in all)")
        params = dict(self.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                if name == "added_token_embeddings":
                    emb = self.llm_embeddings.weight
                    emb[self.added_token_ids] = value.to(emb.dtype)
                    out = self.llm.peft.base_model.model.get_output_embeddings()
                    if out is not None and out.weight.data_ptr() != emb.data_ptr():
                        out.weight[self.added_token_ids] = value.to(out.weight.dtype)
                    continue
                if params[name].shape != value.shape:
                    raise UserError(f"checkpoint: {name} has shape {tuple(value.shape)}, model expects "
                                    f"{tuple(params[name].shape)}")
                params[name].copy_(value)

    def gradient_checkpointing(self) -> bool:
        """Whether the LLM recomputes its layers in backward (``model.llm.gradient_checkpointing``)."""
        return activation_checkpointing_enabled(self.llm.peft.base_model.model)

    @contextlib.contextmanager
    def no_llm_gradient_checkpointing(self):
        """Checkpointed layers recompute in backward with whichever adapter is active *then*; a graph that
        spans several adapters (PPO: decision + value) must therefore be built without it."""
        causal = self.llm.peft.base_model.model
        was = self.gradient_checkpointing()
        if was:
            set_activation_checkpointing(causal, False)
        try:
            yield
        finally:
            if was:
                set_activation_checkpointing(causal, True)

    # ------------------------------------------------------------------ scene encoding
    def encode_scene(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scene tokens (B, N_obj + N_lane + 1, hidden) and the decoder outputs (incl. new memory)."""
        img = batch["img"].to(self.img_mean.device, torch.float32)
        b, n = img.shape[:2]
        img = (img - self.img_mean) / self.img_std
        feats = self.input_proj(self.backbone(img.flatten(0, 1)))  # (B*N, C, h, w)
        c, h, w = feats.shape[1:]
        stride = img.shape[-1] // w
        pos = self.position_embedding(batch["lidar2img"].to(feats.device), (h, w), stride)  # (B, N, C, h, w)
        feats = feats.view(b, n, c, h, w).permute(0, 1, 3, 4, 2).reshape(b, n * h * w, c)
        pos = pos.permute(0, 1, 3, 4, 2).reshape(b, n * h * w, c).to(feats.dtype)
        dec = self.query_decoder(feats, pos, batch.get("prev_memory"), batch.get("prev_memory_mask"))
        objects = select_top(dec["objects"], dec["object_scores"], self.num_object_tokens)
        lanes = dec["lanes"]
        if "lane_scores" in dec:
            lanes = select_top(lanes, dec["lane_scores"], self.num_lane_tokens)
        scene = self.projector(torch.cat([objects, lanes], 1))
        ego = self.ego_encoder(self._navigation_features(batch, scene.device)).unsqueeze(1)
        return torch.cat([scene, ego], 1), dec

    def _navigation_features(self, batch: dict[str, Any], device) -> torch.Tensor:
        state = batch["ego_state"].to(device, torch.float32) / _STATE_SCALE
        target = batch["target_point"].to(device, torch.float32) / _POSITION_SCALE
        route = batch["route"].to(device, torch.float32).flatten(1) / _POSITION_SCALE
        command = torch.nn.functional.one_hot(batch["command"].to(device).long(), NUM_PATH_ACTIONS).float()
        return torch.cat([state, target, route, command], -1)

    # ------------------------------------------------------------------ sequences
    def splice_scene(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, scene: torch.Tensor,
                     labels: torch.Tensor | None = None, validate: bool = True):
        """Replace the single ``<image>`` token of every row by the N scene tokens.

        Returns ``(inputs_embeds, attention_mask, labels, token_ids)`` of length L + N - 1; ``token_ids``
        holds the image id at scene positions (used to locate special tokens after the splice).
        ``validate=False`` skips the one-image-token check (a device sync) for ids already checked, such as
        the rows of :meth:`prompt_table`.
        """
        b, length = input_ids.shape
        n = scene.shape[1]
        is_image = input_ids == self.image_token_id
        counts = is_image.sum(1)
        if validate and input_ids.device.type == "cuda":
            # Checked on the device: reading the counts on the host would stall the host until the scene
            # encoder has run, leaving the GPU idle while it then launches the LLM (an IL step's top stall).
            torch._assert_async(torch.all(counts == 1), f"batch.input_ids: expected exactly one {IMAGE_TOKEN} "
                                "token per sequence")
        elif validate and not torch.all(counts == 1):
            raise UserError(f"batch.input_ids: expected exactly one {IMAGE_TOKEN} token per sequence, "
                            f"got counts {counts.tolist()}")
        img_pos = is_image.float().argmax(1, keepdim=True)  # (B, 1)
        new_pos = torch.arange(length + n - 1, device=input_ids.device).unsqueeze(0).expand(b, -1)
        in_scene = (new_pos >= img_pos) & (new_pos < img_pos + n)
        text_src = torch.where(new_pos < img_pos, new_pos, new_pos - n + 1).clamp(0, length - 1)
        text_embeds = self.llm_embeddings(input_ids)
        scene_src = (new_pos - img_pos).clamp(0, n - 1)
        gathered_text = torch.gather(text_embeds, 1, text_src.unsqueeze(-1).expand(-1, -1, text_embeds.shape[-1]))
        gathered_scene = torch.gather(scene.to(text_embeds.dtype), 1,
                                      scene_src.unsqueeze(-1).expand(-1, -1, text_embeds.shape[-1]))
        embeds = torch.where(in_scene.unsqueeze(-1), gathered_scene, gathered_text)
        mask = torch.where(in_scene, torch.ones_like(attention_mask[:, :1]), torch.gather(attention_mask, 1, text_src))
        ids = torch.where(in_scene, torch.full_like(input_ids[:, :1], self.image_token_id),
                          torch.gather(input_ids, 1, text_src))
        new_labels = None
        if labels is not None:
            new_labels = torch.where(in_scene, torch.full_like(labels[:, :1], -100), torch.gather(labels, 1, text_src))
        return embeds, mask, new_labels, ids

    def run_llm(self, adapter: str | tuple[str, ...], embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states (B, L, H) of the LLM with ``adapter`` active; a tuple of adapters splits the rows
        into that many equal blocks, block ``i`` under ``adapter[i]``, in one pass (:class:`RowAdapterSplit`)."""
        adapters = (adapter,) if isinstance(adapter, str) else tuple(adapter)
        return self.decoder_forward(adapters, embeds, attention_mask)

    def decoder_forward(self, adapters: tuple[str, ...], embeds: torch.Tensor, attention_mask: torch.Tensor
                        ) -> torch.Tensor:
        """The LLM pass behind :meth:`run_llm`. ``attention_mask`` is (B, L) padding, or an already built
        (B, 1, L, L) boolean mask (True = attend), which transformers passes to SDPA as it is. On CUDA a (B, L)
        mask is turned into that form here: transformers would read it on the host to see whether it may drop
        it, a sync per pass."""
        decoder, _ = self._decoder_lm
        if attention_mask.dim() == 2 and embeds.device.type == "cuda":
            attention_mask = causal_padding_mask(attention_mask)
        if len(adapters) > 1 and embeds.shape[0] % len(adapters):
            raise ValueError(f"run_llm: {embeds.shape[0]} rows do not split into {len(adapters)} adapter blocks")
        with self.lora_routing(adapters):
            return decoder(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state

    @contextlib.contextmanager
    def lora_routing(self, adapters: tuple[str, ...]):
        """Inside, the LoRA layers compute ``adapters``: one adapter made active, or several over equal row
        blocks (:class:`RowAdapterSplit`)."""
        if len(adapters) == 1:
            self.use_adapter(adapters[0])
            yield
            return
        with RowAdapterSplit(self._lora_layers, adapters):
            yield

    def tokenize_prompts(self, texts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids/mask for prompt texts (cached per text: prompts repeat across steps)."""
        rows = []
        for text in texts:
            if text not in self._prompt_cache:
                self._prompt_cache[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            rows.append(self._prompt_cache[text])
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        return ids.to(device), mask.to(device)

    def prompt_table(self, kind: str, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids/mask of every rollout prompt, tokenised once per device: ``'decision'`` has one
        row per path command (6), ``'action'`` one per (speed, path) pair, row ``speed * NUM_PATH_ACTIONS +
        path`` (42). Rows are then picked on the device, so a rollout step neither tokenises nor syncs."""
        device = torch.device(device)
        key = (kind, device)
        if key not in self._prompt_tables:
            if kind == "decision":
                texts = [prompts.decision_prompt(p) for p in range(NUM_PATH_ACTIONS)]
            elif kind == "action":
                texts = [prompts.action_prompt(s, p) for s in range(NUM_SPEED_ACTIONS) for p in range(NUM_PATH_ACTIONS)]
            else:
                raise ValueError(f"prompt_table: kind must be 'decision' or 'action', got {kind!r}")
            ids, mask = self.tokenize_prompts(texts, device)
            if not torch.all((ids == self.image_token_id).sum(1) == 1):
                raise UserError(f"data.prompts: every rollout prompt must hold exactly one {IMAGE_TOKEN} token")
            self._prompt_tables[key] = (ids, mask)
        return self._prompt_tables[key]

    def _table_rows(self, kind: str, rows: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.prompt_table(kind, device)
        rows = rows.to(ids.device).long()
        return ids[rows], mask[rows]

    def decision_inputs(self, batch: dict[str, Any], scene: torch.Tensor):
        ids, mask = self._table_rows("decision", batch["command"], scene.device)
        embeds, mask, _, _ = self.splice_scene(ids, mask, scene, validate=False)
        return embeds, mask

    # ------------------------------------------------------------------ heads
    def decision_logits(self, batch: dict[str, Any], scene: torch.Tensor) -> torch.Tensor:
        """Decision-expert logits of the 7 speed tokens at the answer position (B, 7): one forward pass."""
        embeds, mask = self.decision_inputs(batch, scene)
        hidden = self.run_llm("decision_expert", embeds, mask)
        return self._speed_logits(_last_state(hidden, mask))

    def _speed_logits(self, last: torch.Tensor) -> torch.Tensor:
        _, lm_head = self._decoder_lm
        # Restricting the output projection to the 7 rows equals taking those columns of the full logits.
        weight = lm_head.weight[self.speed_token_ids]
        bias = lm_head.bias[self.speed_token_ids] if lm_head.bias is not None else None
        return torch.nn.functional.linear(last, weight, bias).float()

    def decision_log_probs(self, batch: dict[str, Any], scene: torch.Tensor | None = None,
                           temperature: float = 1.0) -> torch.Tensor:
        if scene is None:
            scene, _ = self.encode_scene(batch)
        return torch.log_softmax(self.decision_logits(batch, scene) / temperature, dim=-1)

    def value(self, batch: dict[str, Any], scene: torch.Tensor | None = None) -> torch.Tensor:
        """V(s) (B,): value adapter over the decision prompt, linear head on the last prompt position."""
        if scene is None:
            scene, _ = self.encode_scene(batch)
        embeds, mask = self.decision_inputs(batch, scene)
        hidden = self.run_llm("value_expert", embeds, mask)
        return self.value_head(_last_state(hidden, mask).float()).squeeze(-1)

    def decision_and_value(self, batch: dict[str, Any], scene: torch.Tensor | None = None,
                           temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(:meth:`decision_log_probs`, :meth:`value`) from ONE LLM pass: both read the same decision prompt,
        so its 2B rows (decision copy, value copy) run together, each block under its own adapter. Same
        numbers as the two passes (up to the base matmuls running over 2B rows); half the launches, and the
        frozen base weights are read once. Falls back to two passes where the LoRA layers are not reachable."""
        if scene is None:
            scene, _ = self.encode_scene(batch)
        if not self._lora_layers:
            return self.decision_log_probs(batch, scene, temperature), self.value(batch, scene)
        embeds, mask = self.decision_inputs(batch, scene)
        b = embeds.shape[0]
        hidden = self.run_llm(("decision_expert", "value_expert"), torch.cat([embeds, embeds]), torch.cat([mask, mask]))
        last = _last_state(hidden, torch.cat([mask, mask]))
        logits = self._speed_logits(last[:b])
        value = self.value_head(last[b:].float()).squeeze(-1)
        return torch.log_softmax(logits / temperature, dim=-1), value

    def _planning_states(self, hidden: torch.Tensor, ids: torch.Tensor, scene: torch.Tensor):
        """Trajectory-head inputs (float32) for the speed and path branches, and ``present`` (B,): whether the
        row holds both waypoint tokens (rows without them get zeros). Each branch joins its waypoint-token
        state with, as configured, its meta-action token's state (zeros where the conversation has none, e.g.
        planning QA without a decision) and the normalised ego/navigation token."""
        has_wp, wp_state = _state_at_first(hidden, ids == self.waypoint_token_id)
        has_path, path_state = _state_at_first(hidden, ids == self.path_token_id)
        h_wp, h_path = [wp_state], [path_state]
        if self.plan_from_decision_token:
            h_wp.append(_state_at_first(hidden, torch.isin(ids, self.speed_token_ids))[1])
            h_path.append(_state_at_first(hidden, torch.isin(ids, self.path_action_token_ids))[1])
        if self.plan_from_ego_token:
            ego = scene[:, -1]
            if isinstance(self.ego_plan_norm, nn.LayerNorm):  # in its weights' dtype (a policy may cast to bf16)
                ego = self.ego_plan_norm(ego.to(self.ego_plan_norm.weight.dtype))
            ego = ego.float()
            h_wp.append(ego), h_path.append(ego)
        present = has_wp & has_path
        keep = present.unsqueeze(-1).float()
        return torch.cat(h_wp, -1) * keep, torch.cat(h_path, -1) * keep, present

    def plan(self, batch: dict[str, Any], decision: torch.Tensor, path_decision: torch.Tensor | None = None,
             scene: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Action expert conditioned on the chosen speed decision -> speed waypoints (B, 6, 2), path (B, P, 2)."""
        if scene is None:
            scene, _ = self.encode_scene(batch)
        path_decision = batch["command"] if path_decision is None else path_decision
        rows = decision.to(scene.device).long() * NUM_PATH_ACTIONS + path_decision.to(scene.device).long()
        ids, mask = self._table_rows("action", rows, scene.device)
        embeds, mask, _, new_ids = self.splice_scene(ids, mask, scene, validate=False)
        hidden = self.run_llm("action_expert", embeds, mask)
        h_wp, h_path, _ = self._planning_states(hidden, new_ids, scene)
        out = self.trajectory_head(h_wp, h_path)
        out["path"] = out["path"] + self._path_anchor(batch, out["path"])
        return out

    @staticmethod
    def _check_path_anchor(path_anchor: str) -> str:
        if path_anchor not in PATH_ANCHORS:
            raise UserError(f"model.path_anchor: expected one of {', '.join(PATH_ANCHORS)}, got {path_anchor!r}")
        return path_anchor

    def _path_anchor(self, batch: dict[str, Any], path: torch.Tensor) -> torch.Tensor:
        """What the path branch's output is added to: zeros, or the route's first path points (B, P, 2)."""
        if self.path_anchor == "none":
            return torch.zeros_like(path)
        return batch["route"].to(path.device, path.dtype)[:, :path.shape[1]]

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict[str, Any], return_memory: bool = False):
        """Imitation-learning losses (weighted, each a scalar ``loss_*``; the total is their sum).

        The batch's own conversation carries the decision (teacher forcing); planning losses apply where
        ``has_planning`` is set and the conversation holds the waypoint tokens. With ``return_memory``
        also returns ``{'prev_memory', 'prev_memory_mask'}`` for the next frame.
        """
        device = self.img_mean.device
        w = self.loss_weights
        # Two losses need the host to read the GPU: where the labels are (the LM loss projects only those rows:
        # the vocabulary is 152k wide) and the matching's assignment (scipy). A read waits for everything queued
        # before it, and the GPU then idles while the host launches what follows, so each read is placed where
        # little is queued: the label positions now, before this step's work; the matching costs right after
        # the query decoder, copied while the LLM runs (losses.MatchingCosts).
        input_ids, labels = batch["input_ids"].to(device), batch["labels"].to(device)
        lm_rows, lm_cols = ((labels[:, 1:] != -100) & (input_ids[:, 1:] != self.image_token_id)).nonzero(as_tuple=True)
        scene, dec = self.encode_scene(batch)
        matching = self._start_aux_matching(batch, dec)
        embeds, mask, _, ids = self.splice_scene(input_ids, batch["attention_mask"].to(device), scene)
        hidden = self.run_llm("action_expert", embeds, mask)
        losses: dict[str, torch.Tensor] = {}

        h_wp, h_path, present = self._planning_states(hidden, ids, scene)
        has_plan = present & batch["has_planning"].to(device).bool()
        wp_mask = batch["ego_fut_mask"].to(device).float() * has_plan.unsqueeze(-1)
        path_mask = batch["path_mask"].to(device).float() * has_plan.unsqueeze(-1)
        gt_wp, gt_path = batch["ego_fut_traj"].to(device).float(), batch["path_points"].to(device).float()
        anchor = self._path_anchor(batch, gt_path)
        out = self.trajectory_head(h_wp, h_path, gt_wp, wp_mask, gt_path - anchor, path_mask,
                                   sample=self.training)
        out["path"] = out["path"] + anchor
        if "prior_path" in out:
            out["prior_path"] = out["prior_path"] + anchor
        plan_l1, boundary, collision = self.planning_losses(
            out, gt_wp, wp_mask, gt_path, path_mask, batch["map_boundaries"].to(device).float(),
            batch["map_mask"].to(device).float(), batch["agent_boxes"].to(device).float(),
            batch["agent_mask"].to(device).float(), self.map_boundary_threshold, self.ego_size, self.collision_margin)
        losses["loss_planning"] = w["planning"] * plan_l1
        losses["loss_map_boundary"] = w["map_boundary"] * boundary
        losses["loss_kl"] = w["kl"] * out["kl"] * has_plan.any()
        losses["loss_collision"] = w["collision"] * collision
        # LM cross-entropy on the labelled positions only. The hidden state at text position j predicts token
        # j + 1; the splice moved every position from the image token on by (scene tokens - 1).
        img_pos = (input_ids == self.image_token_id).float().argmax(1)
        hidden_cols = lm_cols + torch.where(lm_cols >= img_pos[lm_rows], scene.shape[1] - 1, 0)
        _, lm_head = self._decoder_lm
        losses["loss_lm"] = w["lm"] * self.lm_loss_sum(hidden[lm_rows, hidden_cols], lm_head.weight, lm_head.bias,
                                                       labels[:, 1:][lm_rows, lm_cols]) / max(len(lm_rows), 1)
        for name, (args, costs) in matching.items():
            losses[f"loss_aux_{name}"] = w[f"aux_{name}"] * L.set_matching_loss(*args, costs=costs)
        if return_memory:
            return losses, {"prev_memory": dec["memory"], "prev_memory_mask": dec["memory_mask"]}
        return losses

    def _start_aux_matching(self, batch: dict[str, Any], dec: dict[str, torch.Tensor]) -> dict[str, tuple]:
        """The query decoder's set-matching losses to compute (``aux_detection``, ``aux_lane``): for each, the
        ``set_matching_loss`` arguments and its cost copy, started now (``losses.MatchingCosts``)."""
        device, w, problems = self.img_mean.device, self.loss_weights, {}
        if w["aux_detection"] > 0 and "boxes" in dec:
            # Targets: agents at the first future time (the only agent boxes the batch carries).
            agents, amask = batch["agent_boxes"].to(device)[:, :, 0, :2], batch["agent_mask"].to(device)[:, :, 0]
            problems["detection"] = (dec["boxes"][..., :2], dec["object_scores"], agents, amask)
        if w["aux_lane"] > 0 and "lane_polylines" in dec:
            lanes = _resample_polylines(batch["map_boundaries"].to(device).float(), batch["map_mask"].to(device).float(),
                                        dec["lane_polylines"].shape[2])
            lane_mask = (batch["map_mask"].to(device).sum(-1) >= 2).float()
            problems["lane"] = (dec["lane_polylines"].flatten(2), dec["lane_scores"], lanes.flatten(2), lane_mask)
        return {name: (args, L.MatchingCosts(args[0], args[2], args[3])) for name, args in problems.items()}

    # ------------------------------------------------------------------ baseline for the benchmark
    @torch.inference_mode()
    def decide_by_generation(self, batch: dict[str, Any], max_new_tokens: int = 2,
                             scene: torch.Tensor | None = None) -> torch.Tensor:
        """Token-by-token ``generate`` baseline: greedy decode after the decision prompt; the speed index of
        the first generated token, or -1 if it is not a speed token. Only for benchmarking against the
        single-pass scorer; pass ``scene`` (from :meth:`encode_scene`) to time the language part alone."""
        if scene is None:
            scene, _ = self.encode_scene(batch)
        embeds, mask = self.decision_inputs(batch, scene)
        # generate() continues from the last column, so move right padding to the left.
        lengths = mask.sum(1)
        shift = (mask.shape[1] - lengths).tolist()
        embeds = torch.stack([e.roll(s, 0) for e, s in zip(embeds, shift)])
        mask = torch.stack([m.roll(s, 0) for m, s in zip(mask, shift)])
        causal = self.llm.peft.base_model.model
        with self.adapter("decision_expert"):
            out = causal.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                                  do_sample=False, pad_token_id=self.pad_token_id)
        # With ``inputs_embeds`` only, generate returns just the new tokens -- possibly fewer than
        # ``max_new_tokens`` when every row stops early -- so the decision is column 0. Should a version
        # prepend placeholder ids for the prompt, drop them first.
        if out.shape[1] > max_new_tokens:
            out = out[:, embeds.shape[1]:]
        first = out[:, 0]
        match = first.unsqueeze(-1) == self.speed_token_ids.unsqueeze(0)
        return torch.where(match.any(-1), match.float().argmax(-1), torch.full_like(first, -1))


def causal_padding_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, L) padding mask -> (B, 1, L, L) boolean: causal and key not padding (True = attend). transformers
    passes a 4-D mask to attention as it is, without reading it on the host."""
    length = mask.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
    return causal[None, None] & mask.bool()[:, None, None, :]


def _last_state(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden state (B, H) at each row's last valid position (right padding)."""
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.sum(1) - 1]


def _state_at_first(hidden: torch.Tensor, where: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(found (B,), float32 hidden state (B, H) at the first True of ``where`` (B, L), zeros if none)."""
    found = where.any(1)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    state = hidden[rows, where.float().argmax(1)].float()
    return found, state * found.unsqueeze(-1).float()


def _resample_polylines(lines: torch.Tensor, mask: torch.Tensor, num: int) -> torch.Tensor:
    """Resample (B, K, P, 2) polylines to ``num`` points by index (valid points assumed to be a prefix)."""
    count = mask.sum(-1).clamp(min=1)  # (B, K)
    t = torch.linspace(0, 1, num, device=lines.device)
    idx = (t.view(1, 1, -1) * (count.unsqueeze(-1) - 1)).round().long()
    return torch.gather(lines, 2, idx.unsqueeze(-1).expand(-1, -1, -1, 2))
