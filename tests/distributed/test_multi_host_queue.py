"""Rollout workers on several hosts share two things: the route queue (``queue.sqlite``) and the output folder
(episode files) under the one ``--out`` path. A claim records the claimer's host; only claims of this host are
checked by pid, claims of other hosts are recovered by lease expiry alone (a host that disappears stops
heart-beating). Two hosts are played here by two queue handles with different host names on one file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

from minddrive.rl.buffer import episode_path
from minddrive.rl.queue import RouteJob, RouteQueue


def on_host(path, host: str, lease_s: float) -> RouteQueue:
    queue = RouteQueue(path, lease_s=lease_s)
    queue.host = host   # what socket.gethostname() returns on that machine
    return queue


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_vanished_hosts_claims_return_after_their_lease_and_finished_files_count(tmp_path):
    out = tmp_path / "rollouts"   # the shared output folder
    head = on_host(out / "queue.sqlite", "head", lease_s=0.5)
    head.add([RouteJob(key=f"r{i}", seed=i) for i in range(3)])
    remote = on_host(out / "queue.sqlite", "node-b", lease_s=0.5)
    first, second = remote.claim("node-b:w0"), remote.claim("node-b:w0")
    assert (first.key, second.key) == ("r0", "r1")
    # node-b's worker pid means nothing on this host: here no such process exists
    with sqlite3.connect(out / "queue.sqlite") as db:
        db.execute("UPDATE routes SET pid = ? WHERE state = 'claimed'", (dead_pid(),))
    finished = lambda key: episode_path(out, key).exists()  # noqa: E731

    # while node-b heart-beats, the head leaves its claims alone although that pid is dead here
    for _ in range(3):
        time.sleep(0.2)
        remote.heartbeat("node-b:w0")
        assert head.reclaim_stale() == 0
    assert head.counts() == {"pending": 1, "claimed": 2, "done": 0, "failed": 0}

    # node-b wrote r0's episode into the shared folder, then vanished before marking it done
    episode_path(out, "r0").parent.mkdir(parents=True, exist_ok=True)
    episode_path(out, "r0").write_bytes(b"episode")
    time.sleep(0.6)   # no heartbeat: the leases run out
    claims = [head.claim("head:w0", is_finished=finished) for _ in range(3)]
    assert [c.key if c else None for c in claims] == ["r1", "r2", None]   # r0 is not driven again
    assert claims[0].attempts == 2 and head.counts()["done"] == 1

    # a same-host claim of a dead process comes back at once, without waiting for its lease
    local = on_host(out / "queue.sqlite", "head", lease_s=3600)
    local.add([RouteJob(key="r3", seed=3)])
    assert local.claim("head:w1", pid=dead_pid()).key == "r3"
    assert local.reclaim_stale() == 1 and os.path.exists(out / "queue.sqlite")
