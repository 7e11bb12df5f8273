"""Where rollout workers run: local subprocesses by default, Ray actors on a cluster.

A worker is one process holding one policy copy and ``envs_per_worker`` simulator worlds; its
:class:`~minddrive.rollout.driver.PolicyDriver` batches the decisions of all its worlds into one
``policy.act`` call. Workers claim routes from the shared :class:`~minddrive.rl.queue.RouteQueue`
themselves, so the same worker code runs under either pool:

* :class:`LocalWorkerPool` starts ``python -m minddrive.rl.workers SPEC`` subprocesses (a crash or a
  ``SIGKILL`` takes only that process down; the supervisor requeues its claims and restarts it);
* :class:`RayWorkerPool` runs the same ``run_worker`` inside Ray actors (``ray`` installed and a
  cluster address ``auto`` / ``ray://host:10001`` given). Workers on other hosts need the output
  directory on a shared filesystem; their claims are recovered by lease expiry.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from minddrive.errors import UserError


@dataclass
class WorkerSpec:
    """Everything a worker needs; JSON so it crosses process and machine boundaries."""

    config: str            # path of the dumped full config
    ckpt: str | None
    out_dir: str
    worker_id: int
    run_meta: dict         # fingerprints stamped into every episode file
    device: str = "cpu"
    threads: int = 1

    @property
    def owner(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}:w{self.worker_id}"


# --- the worker body ---------------------------------------------------------------------------------
def run_worker(spec: WorkerSpec) -> dict:
    """Claim and drive routes until the queue has none left; returns this worker's counts."""
    import torch

    from minddrive.config import Config
    from minddrive.rl.buffer import episode_path, write_episode
    from minddrive.rl.queue import RouteQueue
    from minddrive.rl.rewards import reward_factory
    from minddrive.rollout.driver import PolicyDriver
    from minddrive.rollout.policy import import_object, load_policy, policy_module
    from minddrive.rollout.worlds import build_worlds
    from minddrive.utils.seed import seed_everything

    torch.set_num_threads(spec.threads)
    cfg = Config.fromfile(spec.config)
    rollout = cfg.rollout
    owner = spec.owner
    queue = RouteQueue(Path(spec.out_dir) / "queue.sqlite", lease_s=rollout.get("lease_s", 300.0),
                       max_attempts=rollout.get("max_attempts", 3))
    policy = load_policy(cfg, spec.ckpt, device=spec.device, runtime=rollout.get("policy"))
    policy_module(policy).eval()
    # Seed the sampling RNGs only now: building the model re-seeds torch from the model config's seed, which
    # would otherwise make every run's sampled decisions identical whatever ``cfg.seed`` says.
    seed_everything(int(cfg.get("seed", 0)) * 1000 + spec.worker_id)
    driver = PolicyDriver(build_worlds(cfg, rollout.get("envs_per_worker", 1)), policy,
                          controller_factory=import_object(rollout["controller"]) if rollout.get("controller") else None,
                          decision_interval=rollout.get("decision_interval", 5), sample=True,
                          temperature=rollout.get("temperature", 1.0), stop_on_penalty=rollout.get("stop_on_penalty", True),
                          reward_factory=reward_factory(cfg.reward), record_traces=True, device=spec.device)
    is_finished = lambda key: episode_path(spec.out_dir, key).exists()  # noqa: E731
    claim = lambda: queue.claim(owner, is_finished=is_finished)  # noqa: E731
    last_beat = [time.monotonic()]
    beat_every = max(1.0, float(rollout.get("lease_s", 300.0)) / 4)

    def heartbeat() -> None:
        if time.monotonic() - last_beat[0] > beat_every:
            queue.heartbeat(owner)
            last_beat[0] = time.monotonic()

    def save(result) -> None:
        job, trace = result.job, result.trace
        # A route the policy failed (non-finite action) keeps its finite decisions; its record names the reason.
        meta = dict(spec.run_meta, route_key=job.key, seed=job.seed, options=job.options, attempt=job.attempts,
                    worker=owner, record=result.record, failure=result.failure)
        write_episode(spec.out_dir, meta, trace)   # the file first: "done" must never precede it
        queue.complete(job.key, episode_return=trace.episode_return, steps=len(trace))

    driver.run(claim, on_episode_end=save, on_tick=heartbeat)
    driver.close()
    return dict(driver.stats, owner=owner)


# --- pools ---------------------------------------------------------------------------------------------
class LocalWorkerPool:
    """Supervised local subprocesses: a dead worker's claims go back to the queue and it is restarted."""

    def __init__(self, specs: list[WorkerSpec], queue: Any, max_restarts: int = 10):
        self.specs, self.queue, self.max_restarts = specs, queue, max_restarts
        self.procs: dict[int, subprocess.Popen] = {}
        self.restarts = 0

    def _start(self, spec: WorkerSpec) -> None:
        env = dict(os.environ, OMP_NUM_THREADS=str(spec.threads), MKL_NUM_THREADS=str(spec.threads))
        self.procs[spec.worker_id] = subprocess.Popen(
            [sys.executable, "-m", "minddrive.rl.workers", json.dumps(asdict(spec))], env=env)

    def start(self) -> None:
        for spec in self.specs:
            self._start(spec)

    def poll(self) -> bool:
        """Supervise once; True while any worker runs."""
        for spec in self.specs:
            proc = self.procs.get(spec.worker_id)
            if proc is None or proc.poll() is None:
                continue
            del self.procs[spec.worker_id]
            if proc.returncode != 0:
                self.queue.reclaim_stale()  # its pid is dead now: its claims return to pending
                if self.queue.unfinished() and self.restarts < self.max_restarts:
                    self.restarts += 1
                    print(f"collect: worker {spec.worker_id} exited with {proc.returncode}; restarting "
                          f"({self.restarts}/{self.max_restarts})", file=sys.stderr)
                    self._start(spec)
        if not self.procs and self.queue.counts()["pending"] and self.restarts < self.max_restarts:
            # Every worker finished cleanly but a stale claim came back meanwhile: one more pass.
            self.restarts += 1
            self._start(self.specs[0])
        return bool(self.procs)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            proc.wait(timeout=30)


class InProcessPool:
    """``num_workers=0``: one worker body run in the calling process (tests, debugging, profiling)."""

    def __init__(self, spec: WorkerSpec):
        self.spec, self.restarts = spec, 0

    def start(self) -> None:
        run_worker(self.spec)

    def poll(self) -> bool:
        return False

    def stop(self) -> None:
        pass


class RayWorkerPool:
    """The same workers as Ray actors (``ray.init(address=...)``); requeues an actor's claims if it dies."""

    def __init__(self, specs: list[WorkerSpec], queue: Any, address: str, gpus_per_worker: float = 0.0,
                 max_restarts: int = 10):
        try:
            import ray
        except ImportError:
            raise UserError("--ray-address given but ray is not installed; pip install 'minddrive[ray]'") from None
        self.ray, self.specs, self.queue, self.max_restarts = ray, specs, queue, max_restarts
        ray.init(address=address, ignore_reinit_error=True)
        self.actor_cls = ray.remote(num_cpus=specs[0].threads, num_gpus=gpus_per_worker)(_RayWorker)
        self.pending: dict[Any, WorkerSpec] = {}
        self.restarts = 0

    def start(self) -> None:
        for spec in self.specs:
            self._start(spec)

    def _start(self, spec: WorkerSpec) -> None:
        actor = self.actor_cls.remote()
        self.pending[actor.run.remote(asdict(spec))] = (spec, actor)

    def poll(self) -> bool:
        done, _ = self.ray.wait(list(self.pending), timeout=0.5)
        for ref in done:
            spec, actor = self.pending.pop(ref)
            try:
                self.ray.get(ref)
            except Exception as exc:  # RayActorError, worker crash: leases return the claims
                self.queue.reclaim_stale()
                if self.restarts < self.max_restarts:
                    self.restarts += 1
                    print(f"collect: ray worker {spec.worker_id} failed ({type(exc).__name__}); restarting",
                          file=sys.stderr)
                    self._start(spec)
        return bool(self.pending)

    def stop(self) -> None:
        for _, actor in self.pending.values():
            self.ray.kill(actor)


class _RayWorker:
    def run(self, spec: dict) -> dict:
        return run_worker(WorkerSpec(**spec))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    run_worker(WorkerSpec(**json.loads(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
