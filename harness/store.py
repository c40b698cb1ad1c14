"""The results store: one SQLite file, WAL mode, one transaction per finished cell.

A cell's row is written the moment it finishes, so a crash or Ctrl-C loses only the cells in
flight. The schema is versioned: a newer file is refused, an older one migrated.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

SCHEMA_VERSION = 2
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


class Store:
    """Access to one results file; safe for several processes writing at once."""

    def __init__(self, path: str | Path, must_exist: bool = False) -> None:
        self.path = Path(path)
        if must_exist and not self.path.is_file():
            raise HarnessError(f"no results file {self.path} (give --store or $HARNESS_STORE)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise HarnessError(f"cannot open results file {self.path}: {exc}") from None
        self.conn.row_factory = sqlite3.Row
        try:
            self.conn.execute("PRAGMA busy_timeout=60000")
            self.conn.execute("PRAGMA journal_mode=WAL")
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise HarnessError(f"{self.path} is not a usable harness results file: {exc}") from None
        except HarnessError:
            self.conn.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

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
        return int(row[0])

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
        """Record a new run (status ``running``)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO runs (run_id, suite, created, status, settings, env) "
                "VALUES (?, ?, ?, 'running', ?, ?)",
                (run_id, suite, time.time(), json.dumps(settings), json.dumps(env)),
            )

    def set_run_status(self, run_id: str, status: str) -> None:
        """Mark a run ``running`` (clears ``stopped``), ``finished`` or ``interrupted``."""
        stopped = None if status == "running" else time.time()
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status=?, stopped=? WHERE run_id=?", (status, stopped, run_id)
            )

    def run(self, run_id: str) -> dict[str, Any]:
        """The run's row with JSON fields decoded; a missing run lists the known ones."""
        row = self.conn.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            known = [r[0] for r in self.conn.execute("SELECT run_id FROM runs ORDER BY created")]
            raise HarnessError(
                f"no run '{run_id}' in {self.path}; runs: {', '.join(known) or 'none'}"
            )
        out = dict(row)
        out["settings"], out["env"] = json.loads(out["settings"]), json.loads(out["env"])
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
        """Insert or replace one finished cell in its own transaction."""
        values = [run_id] + [cell.get(k, "") for k in CELL_COLUMNS]
        values[6] = json.dumps(cell["spec"])
        values[7] = json.dumps(cell.get("result", {}))
        values[10] = cell.get("finished") or time.time()
        with self.transaction() as conn:
            conn.execute(f"INSERT OR REPLACE INTO cells VALUES ({','.join('?' * 11)})", values)

    def cells(self, run_id: str) -> list[dict[str, Any]]:
        """Every stored cell of a run, in the order they finished, JSON decoded."""
        rows = self.conn.execute("SELECT * FROM cells WHERE run_id=? ORDER BY finished", (run_id,))
        out = []
        for row in rows:
            cell = dict(row)
            cell["spec"], cell["result"] = json.loads(cell["spec"]), json.loads(cell["result"])
            out.append(cell)
        return out

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run ``;``-separated statements inside the caller's transaction (not executescript,
    which would commit it)."""
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)
