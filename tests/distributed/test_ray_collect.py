"""``minddrive collect --ray-address``: two Ray actors drive embedded-simulator routes from the shared SQLite
queue; one actor's process is SIGKILLed mid-route and the queue loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the 'ray' extra is not installed (make test installs it)")

from minddrive.rl.buffer import list_episodes, read_episode  # noqa: E402
from minddrive.utils.io import read_json  # noqa: E402

pytestmark = pytest.mark.distributed
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIG = REPO / "adzoo/minddrive/configs/minddrive_state_rl_ppo_train.py"
ROUTES = 6


@pytest.fixture
def ray_cluster():
    """A 2-CPU Ray cluster on this host; its address. Token authentication off: loopback-only test cluster."""
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    # Ray's socket paths must stay short (107 bytes): a fresh folder under the system temp dir, not tmp_path.
    with tempfile.TemporaryDirectory(prefix="ray") as temp_dir:
        head = subprocess.Popen([sys.executable, str(HERE / "ray_head.py"), temp_dir], env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            address = head.stdout.readline().strip()
            assert address, "the Ray head did not start"
            yield address, env
        finally:
            head.stdin.close()   # ray.shutdown() in the head stops the raylet, the GCS and every actor
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                head.kill()
                head.wait()


def test_ray_actors_collect_and_a_killed_actor_loses_and_duplicates_nothing(ray_cluster, tmp_path):
    address, env = ray_cluster
    out = tmp_path / "rollouts"
    cli = subprocess.Popen(
        [sys.executable, "-m", "minddrive.cli", "collect", str(CONFIG), "--workers", "2", "--ray-address", address,
         "--out", str(out), "--cfg-options", f"rl_routes.count={ROUTES}", "rollout.envs_per_worker=1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, owners_seen = None, set()
    deadline = time.monotonic() + 120
    try:
        while killed is None and cli.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            if not (out / "queue.sqlite").exists():
                continue
            try:
                with sqlite3.connect(out / "queue.sqlite", timeout=30) as db:
                    rows = db.execute("SELECT key, pid, owner FROM routes WHERE state = 'claimed'").fetchall()
            except sqlite3.OperationalError:   # the file exists, its table not yet
                continue
            owners_seen |= {owner for _, _, owner in rows}
            if len(owners_seen) < 2:   # both actors at work before one is killed
                continue
            for key, pid, _ in rows:
                if pid and not (out / "episodes" / f"{key}.pt").exists():
                    os.kill(pid, signal.SIGKILL)   # the actor's process, mid-route
                    killed = key
                    break
        stdout, stderr = cli.communicate(timeout=180)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, stderr[-3000:]
    assert killed is not None, "no claimed route was seen to kill"
    assert "ray worker" in stderr and "restarting" in stderr   # RayWorkerPool saw the actor die

    summary = read_json(out / "collect_summary.json")
    assert summary["episodes"] == ROUTES and summary["unfinished"] == 0 and summary["failed"] == 0
    assert summary["restarts"] >= 1
    episodes = [read_episode(p) for p in list_episodes(out)]
    keys = [e["meta"]["route_key"] for e in episodes]
    assert sorted(keys) == sorted(f"seed{1_000_000 + k}" for k in range(ROUTES))   # none lost, none twice
    with sqlite3.connect(out / "queue.sqlite") as db:
        attempts = dict(db.execute("SELECT key, attempts FROM routes").fetchall())
        states = {s for (s,) in db.execute("SELECT state FROM routes")}
    assert states == {"done"} and attempts[killed] == 2
    redone = next(e for e in episodes if e["meta"]["route_key"] == killed)
    assert redone["meta"]["attempt"] == 2 and redone["dones"][-1]
    # two actors claimed routes, in processes other than the CLI's (owner: host:pid:worker)
    assert {o.split(":")[2] for o in owners_seen} == {"w0", "w1"}
    assert cli.pid not in {int(o.split(":")[1]) for o in owners_seen | {e["meta"]["worker"] for e in episodes}}
