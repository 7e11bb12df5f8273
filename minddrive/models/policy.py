"""``MindDrivePolicy``: the rollout/evaluation face of the model (interfaces.py ``policy.act``).

One ``act`` call per batch of observations: the scene is encoded once, then one LLM pass scores the 7
speed tokens (decision expert) and V(s) (value expert) over the same prompt, and one action-expert pass
conditioned on the chosen decision gives the path and speed waypoints. ``evaluate_decisions`` recomputes the decision
distribution and value for stored inputs *with* gradients, for PPO.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils._pytree import tree_map

from minddrive.errors import UserError
from minddrive.interfaces import ActOutput

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
RUNTIME_KEYS = ("img", "cam_intrinsic", "cam2ego", "lidar2img", "ego_state", "command", "target_point", "route",
                "prev_memory", "prev_memory_mask")


def _begin_model_invocation(device: torch.device) -> None:
    """Tell CUDA-graph trees (regions compiled with ``reduce-overhead``, e.g. ``ppo.compile``) that one model
    pass begins. Without it every call of a compiled region counts as a new invocation, and in a pass without
    gradients (PPO's scoring, the scene encoder) that frees each graphed layer's output before the next layer
    reads it ("accessing tensor output of CUDAGraphs that has been overwritten", seen on the H100)."""
    if device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()


@contextlib.contextmanager
def _eval_mode(module: torch.nn.Module):
    """Dropout off (so recomputed log-probs match the rollout's), restoring the previous mode. A module
    already in eval mode (rollouts, evaluation) is left alone: ``train()``/``eval()`` walk every submodule
    (~3,100 with the PEFT adapters of the 24-layer 0.5B; the tiny model's 366 took 7.5 ms for the pair on
    a 2-core VM), host time that ``act`` at batch 1 paid twice per call."""
    if not module.training:
        yield
        return
    module.eval()
    try:
        yield
    finally:
        module.train(True)


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
    """CUDA graphs of the LLM pass, one per static shape (``MindDrive.decoder_graphs``).

    ``act``'s LLM passes have static shapes per batch size (prompts come from fixed-width token tables), and
    at small batches a 24-layer pass with LoRA on 7 projections is bound by kernel launches, not by the GPU
    (run 3: ~50 ms per 0.5B pass at batch 1). A graph replays the whole pass as one launch. Keyed by (adapters,
    input shape, dtype, autocast). The (B, L) mask is an input of the graph; the pass turns it into the 4-D
    mask inside the graph (``MindDrive.decoder_forward``: transformers would read a (B, L) mask on the host to
    decide whether it can be dropped, a sync, illegal while capturing).
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
    """CUDA graphs of ``MindDrive.encode_scene`` (``MindDrive.scene_graphs``), one per input signature.

    At batch 1 the scene encoder's ~26 ms of GPU work took ~12 ms longer on the wall: the host launching the
    ViT, PETR geometry and query-decoder kernels one by one (H200, ``benchmarks/gpu_bench.py`` run 5). A graph
    launches them all at once. Keyed by the batch's tensor keys, shapes and dtypes and the autocast state (an
    episode's first frame has no memory: its own graph). Every tensor of the batch is copied into the
    graph's static copy, so nothing the encoder reads is stale. Only for batches of tensors already on the
    model's CUDA device (a host tensor would be copied inside the graph).
    """

    def __call__(self, batch: dict[str, Any], encode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        tensors = {k: v for k, v in batch.items() if torch.is_tensor(v)}
        if not tensors or any(v.device.type != "cuda" for v in tensors.values()) or len(tensors) != len(batch):
            return encode(batch)
        key = (tuple((k, tuple(v.shape), v.dtype, v.device) for k, v in sorted(tensors.items())), *_autocast_key())
        out = self.replay(key, tensors, encode)
        return encode(batch) if out is None else out


class MindDrivePolicy(torch.nn.Module):
    """A thin ``nn.Module`` around :class:`~minddrive.models.minddrive.MindDrive`: ``parameters()``, ``train()``,
    ``to()``, ``state_dict()`` and DDP wrapping reach the model (held as ``self.model``); ``forward`` is
    ``evaluate_decisions`` so a DDP-wrapped policy synchronises the PPO gradients."""

    def __init__(self, model, device: str | torch.device | None = None, dtype: str | None = None,
                 fuse_decision_value: bool = True, cuda_graphs: bool = False, compile: str | None = None,
                 merge_adapters: bool = False, vit_float8: bool = False):
        """``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"``) casts every weight, for inference: a
        bf16 model on GPU skips autocast's per-call weight casts and float32 norms (rollout/eval use).
        ``None`` keeps the model's weights as they are (training keeps float32 masters + autocast).

        ``fuse_decision_value`` scores the decision and the value in one LLM pass over 2B rows
        (``MindDrive.decision_and_value``) in ``act`` and ``evaluate_decisions`` alike, so PPO recomputes
        exactly what the rollout saw. ``cuda_graphs`` replays ``act``'s scene encoder and LLM passes from CUDA
        graphs (:class:`SceneGraphs`, :class:`DecoderGraphs`; CUDA only, inference only, captured at the first
        call of each batch size). ``compile`` (a ``torch.compile`` backend, e.g. ``"inductor"``) compiles the
        ViT blocks and the LLM and query-decoder layers (``MindDrive.compile_regions``) before any capture.
        ``merge_adapters`` runs ``act``'s LLM passes on copies of the weights with each LoRA adapter merged in
        (``MindDrive.merge_adapters``; re-merged when the adapters change, e.g. between PPO iterations).
        ``vit_float8`` runs the ViT's matmuls in float8 without gradients (``EVA02ViT.use_float8``: an
        approximation, opt-in).
        GPU rollout configs set these under ``rollout.policy``, the leaderboard agent under ``agent.policy``."""
        super().__init__()
        self.fuse_decision_value = fuse_decision_value
        model = model if device is None else model.to(device)
        if dtype is not None:
            if dtype not in _DTYPES:
                raise UserError(f"policy.dtype: expected one of {sorted(_DTYPES)}, got {dtype!r}")
            model = model.to(_DTYPES[dtype])
        self.model = model
        if cuda_graphs and model.decoder_graphs is None:
            model.decoder_graphs, model.scene_graphs = DecoderGraphs(), SceneGraphs()
        elif not cuda_graphs:
            model.decoder_graphs = model.scene_graphs = None
        model.merge_adapters(merge_adapters)
        model.use_vit_float8(vit_float8)
        if compile:
            model.compile_regions(backend=compile)

    @property
    def device(self) -> torch.device:
        return self.model.img_mean.device

    @classmethod
    def from_checkpoint(cls, directory, device: str | torch.device = "cpu", **runtime) -> "MindDrivePolicy":
        """``runtime``: the constructor's ``dtype``, ``fuse_decision_value``, ``cuda_graphs``, ``compile``,
        ``merge_adapters``, ``vit_float8``."""
        from minddrive.models.checkpoint import build_model_from_checkpoint

        model, _, _ = build_model_from_checkpoint(directory, device)
        return cls(model.eval(), device, **runtime)

    def set_trainable(self, names) -> None:
        """The model's trainable groups (``minddrive.models.minddrive.TRAINABLE_GROUPS``)."""
        self.model.set_trainable(names)

    def forward(self, batch: dict[str, torch.Tensor], actions: torch.Tensor, temperature: float = 1.0):
        return self.evaluate_decisions(batch, actions, temperature)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.img_mean.dtype

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16 if self.dtype == torch.float32 else self.dtype)
        if self.dtype != torch.float32:
            # Float32 inputs (images, navigation features, heads' float32 joins) meet low-precision weights.
            return torch.autocast(self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def preprocess(self, obs_list: Sequence[dict[str, Any]], memory: dict[str, torch.Tensor] | None = None
                   ) -> dict[str, torch.Tensor]:
        """Env observations (sim/base.py keys; images at the network input size) -> a run-time batch.

        ``memory`` is the previous ``ActOutput.memory`` (omit it at an episode start). Observations without
        ``images`` (PPO steps whose scene tokens are cached) give a batch without ``img``: it can score decisions
        from given scene tokens but not encode a scene.
        """
        def stack(key, dtype=np.float32):
            return torch.from_numpy(np.stack([np.asarray(o[key], dtype=dtype) for o in obs_list])).to(self.device)

        batch = {"cam_intrinsic": stack("cam_intrinsic"), "cam2ego": stack("cam2ego"), "lidar2img": stack("lidar2img"),
                 "ego_state": stack("ego_state"), "target_point": stack("target_point"), "route": stack("route"),
                 "command": stack("command", np.int64)}
        with_images = sum("images" in o for o in obs_list)
        if with_images == len(obs_list):
            # Images keep their own dtype (uint8 from the simulators) to the device, where the encoder casts them:
            # a quarter of the host work and of the copy of a float batch (32 worlds x 6 x 640x640: 236 MB float).
            batch["img"] = stack("images", None).permute(0, 1, 4, 2, 3).contiguous()  # (B, N, H, W, 3) -> (B, N, 3, H, W)
        elif with_images:
            raise ValueError(f"preprocess: {with_images} of {len(obs_list)} observations have images; all or none")
        if memory is not None:
            batch.update({k: v.to(self.device) for k, v in memory.items()})
        return batch

    def act(self, batch: dict[str, torch.Tensor], sample: bool = True, temperature: float = 1.0,
            decision: torch.Tensor | None = None, generator: torch.Generator | None = None) -> ActOutput:
        """Decide, value and plan for a batch. ``log_probs`` are of the distribution sampled from
        (``temperature``-scaled); ``decision`` overrides the choice (e.g. replaying a stored action)."""
        with torch.inference_mode():
            out = self._act(batch, sample, temperature, decision, generator)
        # Clone outside inference mode: callers store these and later use them in autograd (PPO).
        return ActOutput(**{k: (v.clone() if torch.is_tensor(v) else {n: t.clone() for n, t in v.items()})
                            for k, v in vars(out).items() if v is not None})

    def _act(self, batch, sample, temperature, decision, generator) -> ActOutput:
        model = self.model
        with _eval_mode(model), self._autocast():
            scene, dec = model.encode_scene(batch)
            log_probs, value = self._decision_and_value(batch, scene, temperature)
            if decision is None:
                if sample:
                    decision = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(-1)
                else:
                    decision = log_probs.argmax(-1)
            decision = decision.to(log_probs.device).long()
            path_decision = batch["command"].to(log_probs.device).long()
            plan = model.plan(batch, decision, path_decision, scene)
        memory = {"prev_memory": dec["memory"], "prev_memory_mask": dec["memory_mask"]}
        return ActOutput(decision=decision, log_probs=log_probs, value=value, path=plan["path"].float(),
                         speed_waypoints=plan["speed_waypoints"].float(), path_decision=path_decision, memory=memory)

    def _decision_and_value(self, batch, scene, temperature) -> tuple[torch.Tensor, torch.Tensor]:
        """Float32 (log-probs (B, 7), value (B,)): one fused LLM pass, or the decision and value passes."""
        if self.fuse_decision_value:
            log_probs, value = self.model.decision_and_value(batch, scene, temperature)
        else:
            log_probs, value = self.model.decision_log_probs(batch, scene, temperature), self.model.value(batch, scene)
        return log_probs.float(), value.float()

    def scene_tokens(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The scene tokens ``evaluate_decisions`` computes for ``batch``, without gradients; None where the scene
        encoder trains (its tokens then need gradients). While it is frozen (PPO's default) they depend on the
        stored observation alone, so PPO computes them once per step (``minddrive.rl.ppo.SceneCache``)."""
        if self.model.scene_encoder_trainable():
            return None
        _begin_model_invocation(self.device)
        with torch.no_grad(), _eval_mode(self.model), self._autocast():
            scene, _ = self.model.encode_scene(batch)
        return scene.clone()  # a replayed CUDA graph's output is overwritten by the next replay

    def evaluate_decisions(self, batch: dict[str, torch.Tensor], actions: torch.Tensor, temperature: float = 1.0,
                           scene: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log-probs of all 7 actions (B, 7), value (B,), entropy (B,)) with gradients, dropout off.

        ``actions`` is accepted so callers can gather ``log_probs[range(B), actions]``; the full
        distribution is returned for the KL term. Reproduces ``act``'s log-probs for the same inputs.
        ``scene``: this batch's :meth:`scene_tokens`, computed earlier (the scene encoder is then not re-run).
        """
        model = self.model
        _begin_model_invocation(self.device)
        with _eval_mode(model), model.no_llm_gradient_checkpointing(), self._autocast():
            if scene is None:
                scene, _ = model.encode_scene(batch)
            log_probs, value = self._decision_and_value(batch, scene.to(self.device), temperature)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        assert actions.shape[0] == log_probs.shape[0], "actions must have one entry per batch row"
        return log_probs, value, entropy
