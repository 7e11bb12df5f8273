import os
import sqlite3
import subprocess
import sys
import time

from minddrive.rl.queue import RouteJob, RouteQueue


def jobs(n):
    return [RouteJob(key=f"r{i}", seed=i, options={"scenario": "X"}) for i in range(n)]


def test_claims_are_unique_and_adding_twice_keeps_rows(tmp_path):
    queue = RouteQueue(tmp_path / "q.sqlite")
    assert queue.add(jobs(3)) == 3 and queue.add(jobs(3)) == 0
    claimed = [queue.claim("a"), queue.claim("b"), queue.claim("a")]
    assert [j.key for j in claimed] == ["r0", "r1", "r2"] and claimed[0].options == {"scenario": "X"}
    assert queue.claim("c") is None
    queue.complete("r1", episode_return=1.0, steps=4)
    assert queue.counts() == {"pending": 0, "claimed": 2, "done": 1, "failed": 0}
    assert queue.done_summary() == (1, 1.0, 4)


def test_dead_process_claims_return_and_finished_files_are_not_redone(tmp_path):
    queue = RouteQueue(tmp_path / "q.sqlite")
    queue.add(jobs(2))
    assert queue.claim("w", pid=os.getpid()).key == "r0"
    assert queue.claim("w", pid=os.getpid()).key == "r1"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # now the claimer "dies": its pid no longer exists
    with sqlite3.connect(tmp_path / "q.sqlite") as db:
        db.execute("UPDATE routes SET pid = ?", (child.pid,))
    # r0's episode file exists (it died after writing, before marking done): marked done; r1 is redone
    again = queue.claim("alive", is_finished=lambda key: key == "r0")
    assert again.key == "r1" and again.attempts == 2
    assert queue.counts()["done"] == 1


def test_expired_lease_is_reclaimed_and_repeat_offenders_fail(tmp_path):
    queue = RouteQueue(tmp_path / "q.sqlite", lease_s=0.05, max_attempts=2)
    queue.add(jobs(1))
    assert queue.claim("slow", pid=os.getpid()).attempts == 1
    time.sleep(0.1)
    assert queue.claim("other", pid=os.getpid()).attempts == 2  # lease ran out -> claimable again
    time.sleep(0.1)
    assert queue.claim("third", pid=os.getpid()) is None        # attempts exhausted -> failed
    assert queue.counts()["failed"] == 1
