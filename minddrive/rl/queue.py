"""A resumable route queue in SQLite: claims carry a lease, a heartbeat and the claimer's pid.

Upstream renamed route files to ``processing_gpuN_*`` to claim them; a crashed worker then left its
routes stuck forever. Here a claim is a row update inside an ``IMMEDIATE`` transaction (one writer
at a time, safe across processes on one host), and a claim is given back to the queue when

* its worker's process is gone (same host: ``os.kill(pid, 0)`` fails), or
* its lease expired without a heartbeat (other hosts, or a hung simulator).

Finished episodes are never lost or duplicated because the episode file is written atomically
under a name derived from the route key *before* the row is marked done, and a claim whose episode
file already exists is marked done instead of being driven again (see ``claim``).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

PENDING, CLAIMED, DONE, FAILED = "pending", "claimed", "done", "failed"


@dataclass
class RouteJob:
    """One route to drive: a unique key, the env seed and the env ``reset`` options (JSON-able)."""

    key: str
    seed: int
    options: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RouteQueue:
    """SQLite-backed queue of :class:`RouteJob` rows (``pending -> claimed -> done``)."""

    def __init__(self, path: str | os.PathLike, lease_s: float = 300.0, max_attempts: int = 3):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lease_s, self.max_attempts = float(lease_s), int(max_attempts)
        self.host = socket.gethostname()
        with self._connect() as db:
            db.execute("""CREATE TABLE IF NOT EXISTS routes (
                key TEXT PRIMARY KEY, seed INTEGER, options TEXT, state TEXT, owner TEXT,
                host TEXT, pid INTEGER, lease_until REAL, attempts INTEGER DEFAULT 0, position INTEGER,
                episode_return REAL, steps INTEGER)""")

    def _connect(self) -> "_Transaction":
        db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return _Transaction(db)

    # --- filling -------------------------------------------------------------------------------
    def add(self, jobs: Iterable[RouteJob]) -> int:
        """Insert jobs not already present (re-running a collection keeps finished rows)."""
        added = 0
        with self._connect() as db:
            start = db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM routes").fetchone()[0]
            for i, job in enumerate(jobs):
                cur = db.execute("INSERT OR IGNORE INTO routes (key, seed, options, state, attempts, position) "
                                 "VALUES (?, ?, ?, ?, 0, ?)", (job.key, int(job.seed), json.dumps(job.options),
                                                               PENDING, start + i))
                added += cur.rowcount
        return added

    # --- claiming ------------------------------------------------------------------------------
    def reclaim_stale(self) -> int:
        """Give back claims whose process died (same host) or whose lease expired."""
        with self._connect() as db:
            return self._reclaim_stale(db)

    def _reclaim_stale(self, db: sqlite3.Connection) -> int:
        now, freed = time.time(), 0
        for key, host, pid, lease_until in db.execute(
                "SELECT key, host, pid, lease_until FROM routes WHERE state = ?", (CLAIMED,)).fetchall():
            dead = host == self.host and pid is not None and not _pid_alive(int(pid))
            if dead or (lease_until is not None and lease_until < now):
                # A route that keeps killing its worker (a simulator crash it triggers) is parked as failed.
                state = FAILED if self._attempts(db, key) >= self.max_attempts else PENDING
                db.execute("UPDATE routes SET state = ?, owner = NULL, pid = NULL, lease_until = NULL "
                           "WHERE key = ?", (state, key))
                freed += 1
        return freed

    def _attempts(self, db, key: str) -> int:
        return int(db.execute("SELECT attempts FROM routes WHERE key = ?", (key,)).fetchone()[0])

    def claim(self, owner: str, is_finished: Callable[[str], bool] | None = None,
              pid: int | None = None) -> RouteJob | None:
        """Claim the next pending route for ``owner``; ``None`` when nothing is left to claim.

        ``is_finished(key)`` says whether the route's episode file already exists (a worker died
        after writing it but before marking it done); such rows are marked done, not redone.
        """
        pid = os.getpid() if pid is None else pid
        with self._connect() as db:
            self._reclaim_stale(db)
            while True:
                row = db.execute("SELECT key, seed, options, attempts FROM routes WHERE state = ? "
                                 "ORDER BY position LIMIT 1", (PENDING,)).fetchone()
                if row is None:
                    return None
                key, seed, options, attempts = row
                if is_finished is not None and is_finished(key):
                    db.execute("UPDATE routes SET state = ? WHERE key = ?", (DONE, key))
                    continue
                db.execute("UPDATE routes SET state = ?, owner = ?, host = ?, pid = ?, lease_until = ?, "
                           "attempts = attempts + 1 WHERE key = ?",
                           (CLAIMED, owner, self.host, pid, time.time() + self.lease_s, key))
                return RouteJob(key, int(seed), json.loads(options), int(attempts) + 1)

    def heartbeat(self, owner: str) -> None:
        """Extend the leases of everything ``owner`` holds (call at least every ``lease_s``)."""
        with self._connect() as db:
            db.execute("UPDATE routes SET lease_until = ? WHERE owner = ? AND state = ?",
                       (time.time() + self.lease_s, owner, CLAIMED))

    def complete(self, key: str, episode_return: float | None = None, steps: int | None = None) -> None:
        """Mark ``key`` done (after its episode file was written) with its summary for progress bars."""
        with self._connect() as db:
            db.execute("UPDATE routes SET state = ?, owner = NULL, pid = NULL, lease_until = NULL, "
                       "episode_return = ?, steps = ? WHERE key = ?", (DONE, episode_return, steps, key))

    def release(self, key: str) -> None:
        """Put a claimed route back (a worker shutting down cleanly mid-episode)."""
        with self._connect() as db:
            db.execute("UPDATE routes SET state = ?, owner = NULL, pid = NULL, lease_until = NULL, "
                       "attempts = MAX(attempts - 1, 0) WHERE key = ? AND state = ?", (PENDING, key, CLAIMED))

    def release_owner(self, owner: str) -> int:
        """Give back every claim of ``owner`` (the supervisor saw that worker die)."""
        with self._connect() as db:
            cur = db.execute("UPDATE routes SET state = ?, owner = NULL, pid = NULL, lease_until = NULL "
                             "WHERE owner = ? AND state = ?", (PENDING, owner, CLAIMED))
            return cur.rowcount

    # --- inspection ----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._connect() as db:
            rows = db.execute("SELECT state, COUNT(*) FROM routes GROUP BY state").fetchall()
        counts = {PENDING: 0, CLAIMED: 0, DONE: 0, FAILED: 0}
        counts.update({state: int(n) for state, n in rows})
        return counts

    def done_summary(self) -> tuple[int, float, int]:
        """(episodes done, mean return over those with a summary, decision steps)."""
        with self._connect() as db:
            n, mean_return, steps = db.execute("SELECT COUNT(*), AVG(episode_return), COALESCE(SUM(steps), 0) "
                                               "FROM routes WHERE state = ?", (DONE,)).fetchone()
        return int(n), float(mean_return) if mean_return is not None else float("nan"), int(steps)

    def empty_done(self) -> int:
        """Episodes done that produced no decision step (e.g. the policy's first action was non-finite)."""
        with self._connect() as db:
            (n,) = db.execute("SELECT COUNT(*) FROM routes WHERE state = ? AND COALESCE(steps, 0) = 0",
                              (DONE,)).fetchone()
        return int(n)

    def unfinished(self) -> int:
        counts = self.counts()
        return counts[PENDING] + counts[CLAIMED]


class _Transaction:
    """``with`` wrapper: ``BEGIN IMMEDIATE`` on enter (takes the write lock), commit/rollback, close."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.db.close()
