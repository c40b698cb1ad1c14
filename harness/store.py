"""The results store: one SQLite file, WAL mode, one transaction per finished cell.

A cell's row is written the moment it finishes, so a crash or Ctrl-C loses only the cells in
flight. The schema is versioned: a newer file is refused, an older one migrated.

A write that finds the file locked by another process is retried with backoff for up to
``$HARNESS_STORE_WAIT_S`` seconds (default 300). A write that still cannot be made (the disk is
full, the file stayed locked) raises :class:`StoreWriteError` after keeping what it could not
write in a JSON file beside the store (:mod:`harness.spill`), which ``--resume`` merges back.

A running run records its owner (host, pid, the process's start time) and a heartbeat
(:mod:`harness.owner`), so ``--resume`` can tell a run that is still going (refused) from one
whose process died (resumed).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import owner, spill
from harness.errors import HarnessError
from harness.schema import check_cell_row, check_run_id, check_run_row

SCHEMA_VERSION = 3
SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, created REAL NOT NULL,
    status TEXT NOT NULL, settings TEXT NOT NULL, env TEXT NOT NULL
);
CREATE TABLE cells (
    run_id TEXT NOT NULL REFERENCES runs(run_id), cell_id TEXT NOT NULL,
    backend TEXT NOT NULL, device TEXT NOT NULL, variant TEXT NOT NULL,
    status TEXT NOT NULL, spec TEXT NOT NULL, result TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '', stderr_tail TEXT NOT NULL DEFAULT '',
    finished REAL NOT NULL, PRIMARY KEY (run_id, cell_id)
);
"""
"""The first schema, frozen: a new file is created with it and then migrated like an old one."""
MIGRATIONS: dict[int, str] = {
    # 2: when a run stopped (finished or interrupted; NULL while running), back-filled from its
    # last cell; and an index for "which cells of this run are not ok" (resume, reports).
    2: """
ALTER TABLE runs ADD COLUMN stopped REAL;
UPDATE runs SET stopped = (SELECT MAX(c.finished) FROM cells c WHERE c.run_id = runs.run_id)
    WHERE status != 'running';
CREATE INDEX IF NOT EXISTS cells_by_status ON cells (run_id, status);
""",
    # 3: the owner of a running run (host, pid, the process's start time) and its heartbeat;
    # NULL for runs stored before (a 'running' one of those is taken as dead).
    3: """
ALTER TABLE runs ADD COLUMN owner_host TEXT;
ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
ALTER TABLE runs ADD COLUMN owner_start TEXT;
ALTER TABLE runs ADD COLUMN heartbeat REAL;
""",
}
"""version -> SQL taking a file from ``version - 1`` to ``version``."""
CELL_COLUMNS = (
    "cell_id",
    "backend",
    "device",
    "variant",
    "status",
    "spec",
    "result",
    "reason",
    "stderr_tail",
    "finished",
)
EXIT_STORE = 75
"""Exit status when the store cannot be written (``EX_TEMPFAIL``: finish with ``--resume``)."""
WAIT_ENV = "HARNESS_STORE_WAIT_S"
DEFAULT_WAIT_S = 300.0
ATTEMPT_MS = 1000
"""SQLite's own busy wait per attempt; the backoff loop around it makes up the total wait."""


class StoreWriteError(Exception):
    """A write the store could not make; what it held is in :attr:`spill` (when that worked).

    The CLI prints it as one line and exits with :data:`EXIT_STORE`."""

    exit_code = EXIT_STORE

    def __init__(self, message: str, spill: Path | None = None) -> None:
        super().__init__(message)
        self.spill = spill


class Store:
    """Access to one results file; safe for several processes writing at once."""

    def __init__(self, path: str | Path, must_exist: bool = False) -> None:
        self.path = Path(path)
        if must_exist and not self.path.is_file():
            raise HarnessError(f"no results file {self.path} (give --store or $HARNESS_STORE)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = _connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise HarnessError(f"cannot open results file {self.path}: {exc}") from None
        self._beat: owner.Heartbeat | None = None
        try:
            self.conn.execute(f"PRAGMA busy_timeout={int(_wait_s() * 1000)}")
            self.conn.execute("PRAGMA journal_mode=WAL")
            self._init_schema()
            self.conn.execute(f"PRAGMA busy_timeout={ATTEMPT_MS}")
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise HarnessError(f"{self.path} is not a usable harness results file: {exc}") from None
        except HarnessError:
            self.conn.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on error (a failed COMMIT included)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the original error says more
            raise

    def write(self, what: str, work: Callable[[sqlite3.Connection], object]) -> None:
        """Run ``work`` in a transaction of its own, retrying a locked file with backoff.

        A write that cannot be made within ``$HARNESS_STORE_WAIT_S`` (locked), or that fails
        for another reason (disk full, read-only, I/O error), raises :class:`StoreWriteError`.
        """
        deadline = time.monotonic() + _wait_s()
        delay = 0.05
        while True:
            try:
                with self.transaction() as conn:
                    work(conn)
                return
            except sqlite3.OperationalError as exc:
                if _locked(exc) and time.monotonic() < deadline:
                    time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                    delay = min(delay * 2, 5.0)
                    continue
                raise StoreWriteError(self._cannot(what, exc)) from None
            except sqlite3.DatabaseError as exc:
                raise StoreWriteError(self._cannot(what, exc)) from None

    def _cannot(self, what: str, exc: sqlite3.Error) -> str:
        why = "locked by another process for too long" if _locked(exc) else str(exc)
        return f"cannot write {what} to the results file {self.path} ({why})"

    def _version(self, conn: sqlite3.Connection) -> int:
        """The file's schema version: 0 for an empty file (no tables at all)."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return 0
        if "meta" not in tables:
            raise HarnessError(f"{self.path} is an SQLite file but not a harness results file")
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            raise HarnessError(f"{self.path} has no schema version; not a harness results file")
        try:
            return int(row[0])
        except (TypeError, ValueError):
            raise HarnessError(
                f"{self.path} has schema version {row[0]!r}, not an integer; "
                "not a harness results file"
            ) from None

    def _init_schema(self) -> None:
        """Create (version 1) and migrate, in one transaction; refuse a newer file."""
        with self.transaction() as conn:
            version = self._version(conn)
            if version > SCHEMA_VERSION:
                raise HarnessError(
                    f"{self.path} has schema version {version}, newer than this harness "
                    f"({SCHEMA_VERSION}); upgrade bn-harness to read it"
                )
            if version == 0:
                _script(conn, SCHEMA_V1)
                version = 1
            for target in range(version + 1, SCHEMA_VERSION + 1):
                _script(conn, MIGRATIONS[target])
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def create_run(
        self, run_id: str, suite: str, settings: dict[str, Any], env: dict[str, Any]
    ) -> None:
        """Record a new run (status ``running``, owned by this process, heartbeat started)."""
        check_run_id(run_id)
        now = time.time()
        row = (
            run_id,
            suite,
            now,
            "running",
            json.dumps(settings),
            json.dumps(env),
            *owner.this_process(),
            now,
        )
        self.write(
            f"run {run_id}",
            lambda conn: conn.execute(
                "INSERT INTO runs (run_id, suite, created, status, settings, env, owner_host, "
                f"owner_pid, owner_start, heartbeat) VALUES ({','.join('?' * len(row))})",
                row,
            ),
        )
        self._start_heartbeat(run_id)

    def claim_run(self, run_id: str) -> None:
        """Mark a stored run ``running`` and owned by this process, to resume it.

        A run whose owner still lives (this host: its pid, started when recorded; another host:
        a heartbeat newer than :data:`STALE_S`) is refused with a :class:`HarnessError`.
        """

        def claim(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is not None and row["status"] == "running":
                owner.refuse_live(dict(row), self.path)
            conn.execute(
                "UPDATE runs SET status='running', stopped=NULL, owner_host=?, owner_pid=?, "
                "owner_start=?, heartbeat=? WHERE run_id=?",
                (*owner.this_process(), time.time(), run_id),
            )

        self.write(f"run {run_id}", claim)
        self._start_heartbeat(run_id)

    def set_run_status(self, run_id: str, status: str) -> None:
        """Mark a run ``finished`` or ``interrupted`` (ends its heartbeat).

        When the store cannot be written, the status is kept in the run's spill file and
        :class:`StoreWriteError` raised; ``--resume`` applies it."""
        self._stop_heartbeat()
        try:
            self.write(
                f"the status of run {run_id}",
                lambda conn: conn.execute(
                    "UPDATE runs SET status=?, stopped=? WHERE run_id=?",
                    (status, time.time(), run_id),
                ),
            )
        except StoreWriteError as exc:
            exc.spill = self._spill(run_id, status=status)
            raise

    def _start_heartbeat(self, run_id: str) -> None:
        self._stop_heartbeat()
        self._beat = owner.Heartbeat(run_id, functools.partial(_beat, self.path, run_id))
        self._beat.start()

    def _stop_heartbeat(self) -> None:
        if self._beat is not None:
            self._beat.stop()
            self._beat = None

    def run(self, run_id: str) -> dict[str, Any]:
        """The run's row with JSON fields decoded; a missing run lists the known ones."""
        row = self.conn.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            known = [r[0] for r in self.conn.execute("SELECT run_id FROM runs ORDER BY created")]
            raise HarnessError(
                f"no run '{run_id}' in {self.path}; runs: {', '.join(known) or 'none'}"
            )
        out = dict(row)
        where = f"{self.path}: run {run_id}"
        out["settings"], out["env"] = _decode(out["settings"], where), _decode(out["env"], where)
        check_run_row(out, where)
        return out

    def runs(self) -> list[dict[str, Any]]:
        """All runs, oldest first, with their cell counts by status."""
        rows = self.conn.execute(
            "SELECT r.run_id, r.suite, r.created, r.stopped, r.status, COUNT(c.cell_id) AS cells, "
            "SUM(c.status='ok') AS ok FROM runs r LEFT JOIN cells c USING (run_id) "
            "GROUP BY r.run_id ORDER BY r.created"
        )
        return [dict(r) for r in rows]

    def latest_run_id(self) -> str:
        """The most recently created run's id."""
        row = self.conn.execute("SELECT run_id FROM runs ORDER BY created DESC LIMIT 1").fetchone()
        if row is None:
            raise HarnessError(f"no runs in {self.path}")
        return str(row[0])

    def put_cell(self, run_id: str, cell: dict[str, Any]) -> None:
        """Insert or replace one finished cell in its own transaction.

        A cell that cannot be written is kept in the run's spill file, then
        :class:`StoreWriteError` is raised (its ``spill`` says where, or None if even that
        failed)."""
        values = [run_id] + [cell.get(k, "") for k in CELL_COLUMNS]
        values[6] = json.dumps(cell["spec"])
        values[7] = json.dumps(cell.get("result", {}))
        values[10] = cell.get("finished") or time.time()
        sql = f"INSERT OR REPLACE INTO cells VALUES ({','.join('?' * 11)})"
        try:
            self.write(f"cell {cell['cell_id']}", lambda conn: conn.execute(sql, values))
        except StoreWriteError as exc:
            exc.spill = self._spill(run_id, cell=cell)
            raise

    def cells(self, run_id: str) -> list[dict[str, Any]]:
        """Every stored cell of a run, in the order they finished, JSON decoded and checked."""
        rows = self.conn.execute("SELECT * FROM cells WHERE run_id=? ORDER BY finished", (run_id,))
        out = []
        for row in rows:
            cell = dict(row)
            where = f"{self.path}: cell {cell['cell_id']!r} of run {run_id}"
            for key in ("spec", "result"):
                cell[key] = _decode(cell[key], where)
            check_cell_row(cell, where)
            out.append(cell)
        return out

    def _spill(
        self, run_id: str, cell: dict[str, Any] | None = None, status: str = ""
    ) -> Path | None:
        """Keep ``cell`` (or the run's final ``status``) in the run's spill file."""
        return spill.add(spill.spill_path(self.path, run_id), run_id, cell, status)

    def recover(self, run_id: str) -> int:
        """Store the cells of the run's spill file (left by a write that failed) and delete it;
        the number of cells recovered."""
        path = spill.spill_path(self.path, run_id)
        if not path.exists():
            return 0
        data = spill.read(path)
        for cell in data["cells"]:
            self.put_cell(run_id, cell)
        path.unlink()
        return len(data["cells"])

    def close(self) -> None:
        """Stop the heartbeat and close the connection."""
        self._stop_heartbeat()
        self.conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=ATTEMPT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={ATTEMPT_MS}")
    return conn


def _wait_s() -> float:
    """``$HARNESS_STORE_WAIT_S``: how long a write waits for a locked file (default 300)."""
    try:
        return max(0.0, float(os.environ.get(WAIT_ENV) or DEFAULT_WAIT_S))
    except ValueError:
        return DEFAULT_WAIT_S


def _locked(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (5, 6) or "locked" in str(exc)


def _decode(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise HarnessError(f"{where}: damaged row ({exc})") from None


def _beat(path: Path, run_id: str) -> None:
    """Renew the heartbeat of ``run_id`` (owned by this process) on a connection of its own."""
    conn = _connect(path)
    try:
        conn.execute(
            "UPDATE runs SET heartbeat=? WHERE run_id=? AND owner_pid=?",
            (time.time(), run_id, os.getpid()),
        )
    finally:
        conn.close()


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run ``;``-separated statements inside the caller's transaction (not executescript,
    which would commit it)."""
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)
