"""The batched closed-loop driver shared by RL rollouts and closed-loop evaluation.

``PolicyDriver`` steps several simulator worlds with one policy. Every ``decision_interval`` ticks
(default 5 = 0.5 s at 10 Hz, matching the 2 Hz waypoints) the worlds that need a decision are
batched into one ``policy.preprocess`` + ``policy.act`` call; between decisions each world follows
its last plan with its own PID controller. When a world's episode ends, its leaderboard route record
is kept and the world is reset onto the next route job, so the batch stays full.

Cameras: a ``VecDriveEnv`` built with ``render=True`` is stepped without rendering and only the worlds
about to decide are rendered (``VecDriveEnv.render_cameras``), since the policy sees images only
then; ``policy_s`` in ``stats`` includes that rendering, ``render_s`` tells it apart.

Two modes differ only in flags:

* evaluation (``sample=False, stop_on_penalty=False``): argmax decisions, episodes run to the
  leaderboard's end;
* RL rollouts (``sample=True, stop_on_penalty=True``): decisions sampled from the decision expert's
  categorical, and the episode ends at the first penalty event (reward -1, upstream semantics).

Per-decision data (observation, action, 7-way log-probs, value, reward summed over the ticks the
decision was in force) is collected in an :class:`EpisodeTrace` when ``record_traces`` is on and
handed to ``on_episode_end`` together with the route record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from minddrive.constants import EGO_STATE_FIELDS
from minddrive.interfaces import DrivingPolicy

_SPEED = EGO_STATE_FIELDS.index("speed")
_YAW_RATE = EGO_STATE_FIELDS.index("yaw_rate")


@dataclass
class EpisodeTrace:
    """Decision-level data of one episode (one entry per policy decision)."""

    obs: list[dict] = field(default_factory=list)          # what ``policy.preprocess`` was given
    actions: list[int] = field(default_factory=list)
    log_probs: list[np.ndarray] = field(default_factory=list)  # (7,) rollout-time reference log-probs
    values: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)     # summed over the decision's ticks
    memory: list[Any] = field(default_factory=list)        # the policy's temporal memory before the decision
    terminated: bool = False                               # true end (no bootstrap) vs. cut off
    last_value: float = 0.0                                # V(s_T) to bootstrap a cut-off episode
    ticks: int = 0

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def episode_return(self) -> float:
        return float(sum(self.rewards))


@dataclass
class EpisodeResult:
    job: Any
    record: dict
    trace: EpisodeTrace | None
    world: int
    failure: str | None = None        # the named reason when the policy failed the route (record's meta too)


#: the leaderboard's status for a route the agent failed (it re-runs such routes on resume)
AGENT_FAILED = "Failed - Agent crashed"
#: the named reason in the route record's ``meta.failure_reason``
NON_FINITE_ACTION = "non-finite action (the policy's output held NaN or inf)"


@dataclass
class _World:
    """Book-keeping of one simulator world."""

    view: WorldView
    controller: Any = None
    reward: Any = None
    job: Any = None
    obs: dict | None = None
    plan: dict | None = None          # last decision's plan in the ego frame *at decision time*
    odometry: np.ndarray = field(default_factory=lambda: np.zeros(3))  # ego pose since the decision: x, y, yaw
    ticks_since_decision: int = 0
    memory: Any = None
    trace: EpisodeTrace | None = None
    failure: str | None = None        # why the episode ends now, the policy's fault (a non-finite action)
    ended: bool = False


class ListVecEnv:
    """A list of single-world ``DriveEnv`` objects behind ``VecDriveEnv``'s per-world API.

    ``VecDriveEnv`` (the embedded simulator's batched core) steps all its worlds in one numpy call;
    other backends (CARLA, test fakes) are single worlds, stepped one after the other here.
    """

    def __init__(self, envs: list[Any]):
        self.envs = list(envs)
        self.num_worlds = len(self.envs)
        self.dt = float(getattr(self.envs[0], "dt", 0.1))

    def prepare(self, seeds_options: list[tuple]) -> None:
        """Nothing to do: single-world envs are independent."""

    def reset_world(self, i: int, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        return self.envs[i].reset(seed=seed, options=options)

    def step_worlds(self, controls: dict[int, np.ndarray]) -> dict[int, tuple]:
        return {i: self.envs[i].step(control) for i, control in controls.items()}

    def images(self, indices: list[int]) -> None:
        """Single-world envs render in their own ``step`` (if at all): nothing to add."""
        return None

    def route_record(self, i: int) -> dict:
        return self.envs[i].route_record()

    def snapshot(self, i: int):
        return self.envs[i].snapshot()

    def close(self) -> None:
        for env in self.envs:
            env.close()


class BatchedVecEnv:
    """``VecDriveEnv`` with the per-world step results the driver uses (one ``step`` for all worlds)."""

    def __init__(self, vec: Any):
        self.vec, self.num_worlds, self.dt = vec, int(vec.num_worlds), float(vec.dt)
        # Cameras cost far more than the physics, and the policy reads them only every
        # ``decision_interval`` ticks: step without rendering, render the deciding worlds on demand.
        self.lazy_images = bool(getattr(vec, "render", False)) and hasattr(vec, "render_cameras")
        if self.lazy_images:
            vec.render = False

    def prepare(self, seeds_options: list[tuple]) -> None:
        """Nothing to do: worlds load on their first ``reset_world``; unloaded ones are never rendered."""

    def images(self, indices: list[int]) -> dict[int, dict] | None:
        """Camera observations of worlds ``indices`` (``None`` when the env has no cameras)."""
        if not self.lazy_images:
            return None
        batch = self.vec.render_cameras(indices)
        return {i: {k: v[row] for k, v in batch.items()} for row, i in enumerate(indices)}

    def reset_world(self, i: int, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        return self.vec.reset_world(i, seed, options)

    def step_worlds(self, controls: dict[int, np.ndarray]) -> dict[int, tuple]:
        # Idle worlds (no job left) brake in place; finished ones are frozen by the simulator anyway.
        batch = np.tile(np.array([0.0, 0.0, 1.0]), (self.num_worlds, 1))
        for i, control in controls.items():
            batch[i] = control
        obs, rewards, terminated, truncated, infos = self.vec.step(batch)
        return {i: ({k: v[i] for k, v in obs.items()}, float(rewards[i]), bool(terminated[i]), bool(truncated[i]),
                    infos[i]) for i in controls}

    def route_record(self, i: int) -> dict:
        return self.vec.route_record(i)

    def snapshot(self, i: int):
        return self.vec.snapshot(i)

    def close(self) -> None:
        self.vec.close()


def as_world_batch(envs: Any) -> Any:
    """Wrap a ``VecDriveEnv`` or a list of ``DriveEnv`` in the driver's per-world API."""
    if hasattr(envs, "reset_world") and hasattr(envs, "num_worlds"):
        return BatchedVecEnv(envs)
    if isinstance(envs, (list, tuple)):
        return ListVecEnv(envs)
    if hasattr(envs, "reset") and hasattr(envs, "step"):
        return ListVecEnv([envs])
    raise TypeError(f"expected a VecDriveEnv or a list of DriveEnv, got {type(envs).__name__}")


class WorldView:
    """World ``i`` of a batch, for observation hooks that read the scene (``snapshot()``)."""

    def __init__(self, batch: Any, index: int):
        self.batch, self.index = batch, index

    def snapshot(self):
        return self.batch.snapshot(self.index)


def default_controller_factory(dt: float = 0.1) -> Any:
    from minddrive.sim.controller import PIDController

    return PIDController(dt=dt)


class PolicyDriver:
    """Drive route jobs through ``envs`` with ``policy`` (see the module docstring)."""

    def __init__(self, envs: Any, policy: DrivingPolicy, decision_interval: int = 5, sample: bool = False,
                 temperature: float = 1.0, stop_on_penalty: bool = False, reward_factory: Callable[[], Any] | None = None,
                 record_traces: bool = False, controller_factory: Callable[[], Any] | None = None,
                 device: str | torch.device = "cpu", obs_hook: Callable[[Any, dict], dict] | None = None):
        if decision_interval < 1:
            raise ValueError("decision_interval must be >= 1")
        self.policy, self.device = policy, torch.device(device)
        self.decision_interval, self.sample, self.temperature = int(decision_interval), bool(sample), float(temperature)
        self.stop_on_penalty, self.record_traces = bool(stop_on_penalty), bool(record_traces)
        # A fresh reward per episode, ``reward(obs, info) -> step`` with ``.reward`` and ``.terminal`` (the caller's
        # choice, e.g. ``minddrive.rl.rewards.build_reward``): rollout knows no reward of its own.
        self._reward_factory = reward_factory
        # A policy that needs more than the sensors (privileged features) names it as ``policy.obs_hook``.
        self.obs_hook = obs_hook or getattr(policy, "obs_hook", None)
        self.envs = as_world_batch(envs)
        self.env_dt = self.envs.dt
        factory = controller_factory or (lambda: default_controller_factory(dt=self.env_dt))
        self.worlds = [_World(view=WorldView(self.envs, i), controller=factory()) for i in range(self.envs.num_worlds)]
        self.stats = dict(decisions=0, ticks=0, policy_s=0.0, render_s=0.0, sim_s=0.0, episodes=0, policy_calls=0)

    # --- public ----------------------------------------------------------------------------------
    def run(self, jobs: Iterable[Any] | Callable[[], Any],
            on_episode_end: Callable[[EpisodeResult], None] | None = None,
            on_decision: Callable[[int, dict, dict], None] | None = None,
            on_tick: Callable[[], None] | None = None) -> list[dict]:
        """Drive every job (an iterable, or a ``claim()`` callable returning ``None`` when empty).

        Returns the route records in completion order. ``on_decision(world, obs, decision_dict)``
        sees every decision; ``on_episode_end`` every finished episode; ``on_tick`` runs once per
        simulator tick (heartbeats, progress bars).
        """
        next_job = _job_source(jobs)
        records: list[dict] = []
        first = [next_job() for _ in self.worlds]
        self.envs.prepare([_job_seed_options(job) for job in first if job is not None])
        for world, job in zip(self.worlds, first):
            self._start_episode(world, job)
        tick = 0
        while any(w.job is not None for w in self.worlds):
            # All worlds decide on the same ticks so one ``policy.act`` serves the whole batch; a world
            # that just started a route decides at once (it has no plan) and joins the common phase.
            on_phase = tick % self.decision_interval == 0
            deciding = [i for i, w in enumerate(self.worlds)
                        if w.job is not None and (w.plan is None or on_phase)]
            if deciding:
                self._decide(deciding, on_decision)
            started = time.perf_counter()
            ended = self._tick()
            self.stats["sim_s"] += time.perf_counter() - started
            for index in ended:
                world = self.worlds[index]
                result = self._finish_episode(world, index)
                records.append(result.record)
                if on_episode_end is not None:
                    on_episode_end(result)
                self._start_episode(world, next_job())
            self.stats["ticks"] += 1
            tick += 1
            if on_tick is not None:
                on_tick()
        return records

    def close(self) -> None:
        self.envs.close()

    # --- episode boundaries ------------------------------------------------------------------------
    def _start_episode(self, world: _World, job: Any) -> None:
        world.job = job
        if job is None:
            return
        seed, options = _job_seed_options(job)
        world.obs, _ = self.envs.reset_world(world.view.index, seed, options)
        if self.obs_hook is not None:
            world.obs = self.obs_hook(world.view, world.obs)
        world.plan, world.memory, world.ticks_since_decision, world.failure = None, None, 0, None
        world.odometry = np.zeros(3)
        if hasattr(world.controller, "reset"):
            world.controller.reset()
        world.reward = None
        if self._reward_factory is not None:
            world.reward = self._reward_factory()
        world.trace = EpisodeTrace() if self.record_traces else None

    def _finish_episode(self, world: _World, index: int) -> EpisodeResult:
        record = self.envs.route_record(index)
        self.stats["episodes"] += 1
        if world.failure:
            # The route ends here as the agent's failure, scored as far as it got; the next route runs.
            record = dict(record, status=AGENT_FAILED, meta=dict(record.get("meta") or {}, failure_reason=world.failure))
            self.stats["failed"] = self.stats.get("failed", 0) + 1
        return EpisodeResult(job=world.job, record=record, trace=world.trace, world=index, failure=world.failure)

    # --- one decision for a batch of worlds ------------------------------------------------------------
    @torch.inference_mode()
    def _decide(self, indices: list[int], on_decision: Callable | None) -> None:
        started = time.perf_counter()
        images = self.envs.images(indices)
        if images is not None:
            for i in indices:
                self.worlds[i].obs = dict(self.worlds[i].obs, **images[i])
        self.stats["render_s"] += time.perf_counter() - started
        self.stats["policy_calls"] += 1
        obs_list = [self.worlds[i].obs for i in indices]
        # Temporal memory goes back through ``preprocess(obs_list, memory=...)`` (None: no world has any).
        batch = self.policy.preprocess(obs_list, memory=stack_memory([self.worlds[i].memory for i in indices]))
        try:
            out = self.policy.act(_to_device(batch, self.device), sample=self.sample, temperature=self.temperature)
        except (ValueError, RuntimeError):
            # Sampling from NaN logits raises inside the policy; with non-finite weights that is the same
            # failure as a NaN plan: these routes fail by name, the others go on.
            if not _non_finite_weights(self.policy):
                raise
            for i in indices:
                self.worlds[i].failure, self.worlds[i].plan = NON_FINITE_ACTION, None
            return
        new_memory = getattr(out, "memory", None)
        decision = out.decision.cpu().numpy()
        log_probs = out.log_probs.float().cpu().numpy()
        value = out.value.float().cpu().numpy()
        speed_waypoints = out.speed_waypoints.float().cpu().numpy()
        path = out.path.float().cpu().numpy()
        # A NaN anywhere in what the route or the rollout uses (plan, decision log-probs, value) fails the route.
        rows = len(indices)
        finite = (np.isfinite(speed_waypoints).reshape(rows, -1).all(1) & np.isfinite(path).reshape(rows, -1).all(1)
                  & ~np.isnan(log_probs).reshape(rows, -1).any(1) & np.isfinite(value).reshape(rows, -1).all(1))
        for row, i in enumerate(indices):
            world = self.worlds[i]
            if not finite[row]:
                world.failure, world.plan = NON_FINITE_ACTION, None
                continue
            if world.trace is not None:
                world.trace.obs.append(world.obs)
                world.trace.actions.append(int(decision[row]))
                world.trace.log_probs.append(log_probs[row])
                world.trace.values.append(float(value[row]))
                world.trace.rewards.append(0.0)
                world.trace.memory.append(world.memory)
            world.plan = dict(speed_waypoints=speed_waypoints[row], path=path[row], decision=int(decision[row]))
            world.odometry = np.zeros(3)
            if new_memory is not None:
                world.memory = {k: v[row].detach().cpu() for k, v in new_memory.items()}
            if on_decision is not None:
                on_decision(i, world.obs, dict(world.plan, log_probs=log_probs[row], value=float(value[row])))
        self.stats["decisions"] += len(indices)
        self.stats["policy_s"] += time.perf_counter() - started

    # --- one simulator tick of every world with a job ----------------------------------------------
    def _tick(self) -> list[int]:
        """Advance all active worlds by one tick; returns the worlds whose episode ended."""
        controls = {}
        failed = [index for index, world in enumerate(self.worlds) if world.job is not None and world.failure]
        for index, world in enumerate(self.worlds):
            if world.job is not None and not world.failure:
                waypoints, path = self._plan_in_current_frame(world)
                speed = float(world.obs["ego_state"][_SPEED])
                controls[index] = np.asarray(world.controller(path, waypoints, speed), dtype=np.float64)
        ended = []
        for index, (obs, _, terminated, truncated, info) in self.envs.step_worlds(controls).items():
            if self._after_step(self.worlds[index], obs, bool(terminated), bool(truncated), info):
                ended.append(index)
        return ended + failed

    def _after_step(self, world: _World, obs: dict, terminated: bool, truncated: bool, info: dict) -> bool:
        """Book-keep one world's tick (odometry, reward, trace); True when its episode ended."""
        self._advance_odometry(world, obs)
        world.obs = obs if self.obs_hook is None else self.obs_hook(world.view, obs)
        world.ticks_since_decision += 1
        ended = terminated or truncated
        if world.reward is not None:
            step = world.reward(obs, info)
            if world.trace is not None and world.trace.rewards:
                world.trace.rewards[-1] += step.reward
            if step.terminal and self.stop_on_penalty:
                ended, terminated = True, True
        if world.trace is not None:
            world.trace.ticks += 1
            if ended:
                world.trace.terminated = terminated
                world.trace.last_value = world.trace.values[-1] if world.trace.values else 0.0
        return ended

    def _advance_odometry(self, world: _World, obs: dict) -> None:
        """Dead-reckon the ego pose since the last decision from speed and yaw rate (unicycle model)."""
        speed = float(obs["ego_state"][_SPEED])
        yaw_rate = float(obs["ego_state"][_YAW_RATE])
        x, y, yaw = world.odometry
        world.odometry = np.array([x + speed * np.cos(yaw) * self.env_dt, y + speed * np.sin(yaw) * self.env_dt,
                                   yaw + yaw_rate * self.env_dt])

    def _plan_in_current_frame(self, world: _World) -> tuple[np.ndarray, np.ndarray]:
        """The last plan moved into the current ego frame; waypoints re-timed to start now.

        The plan was made ``ticks_since_decision`` ticks ago: its speed waypoints are positions at
        0.5 s, 1.0 s, ... after the decision, so the ones already in the past are dropped by
        interpolating the trajectory (with the decision-time origin prepended) at now + 0.5 s, ...
        """
        plan = world.plan
        x, y, yaw = world.odometry
        rot = np.array([[np.cos(yaw), np.sin(yaw)], [-np.sin(yaw), np.cos(yaw)]])  # world(decision) -> ego(now)

        def to_now(points: np.ndarray) -> np.ndarray:
            return (np.asarray(points, dtype=np.float64) - np.array([x, y])) @ rot.T

        waypoints = np.asarray(plan["speed_waypoints"], dtype=np.float64)
        elapsed = world.ticks_since_decision * self.env_dt
        times = 0.5 * np.arange(len(waypoints) + 1)
        padded = np.vstack([np.zeros((1, 2)), waypoints])
        query = np.clip(elapsed + 0.5 * np.arange(1, len(waypoints) + 1), 0.0, times[-1])
        retimed = np.stack([np.interp(query, times, padded[:, k]) for k in range(2)], axis=1)
        return to_now(retimed), to_now(plan["path"])


def _non_finite_weights(policy: Any) -> bool:
    """Whether the torch module behind ``policy`` (itself, ``.model`` or ``.module``) holds a NaN or inf weight."""
    for module in (policy, getattr(policy, "model", None), getattr(policy, "module", None)):
        if isinstance(module, torch.nn.Module):
            return any(not torch.isfinite(p).all() for p in module.parameters())
    return False


def stack_memory(memories: list[dict | None]) -> dict | None:
    """Per-world memories -> one batch; worlds at an episode start get zeros (mask 0 = no valid slot)."""
    present = [m for m in memories if m is not None]
    if not present:
        return None
    return {key: torch.stack([m[key] if m is not None else torch.zeros_like(present[0][key]) for m in memories])
            for key in present[0]}


def _job_source(jobs: Iterable[Any] | Callable[[], Any]) -> Callable[[], Any]:
    if callable(jobs):
        return jobs
    iterator: Iterator[Any] = iter(jobs)
    return lambda: next(iterator, None)


def _job_seed_options(job: Any) -> tuple[int | None, dict | None]:
    """``(seed, reset options)`` of a job: a ``RouteJob``, a dict with seed/options, or a bare seed."""
    if isinstance(job, (int, np.integer)):
        return int(job), None
    if isinstance(job, dict):
        seed, options = job.get("seed"), job.get("options")
    else:
        seed, options = getattr(job, "seed", None), getattr(job, "options", None)
    return seed, resolve_reset_options(options)


def resolve_reset_options(options: dict | None) -> dict | None:
    """JSON-able job options -> env ``reset`` options (a route file reference becomes a ``RouteSpec``)."""
    if not options:
        return None
    options = dict(options)
    if "route_file" in options:
        from minddrive.sim.routes import parse_routes

        route_file, route_id = options.pop("route_file"), str(options.pop("route_id"))
        options["route"] = next(r for r in parse_routes(route_file) if str(r.id) == route_id)
    return options


def _to_device(batch: Any, device: torch.device) -> Any:
    if device.type == "cpu":
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch
