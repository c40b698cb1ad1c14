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

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, created REAL NOT NULL,
    status TEXT NOT NULL, settings TEXT NOT NULL, env TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cells (
    run_id TEXT NOT NULL REFERENCES runs(run_id), cell_id TEXT NOT NULL,
    backend TEXT NOT NULL, device TEXT NOT NULL, variant TEXT NOT NULL,
    status TEXT NOT NULL, spec TEXT NOT NULL, result TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '', stderr_tail TEXT NOT NULL DEFAULT '',
    finished REAL NOT NULL, PRIMARY KEY (run_id, cell_id)
);
"""
MIGRATIONS: dict[int, str] = {}  # version -> SQL taking a file from version-1 to version
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

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA busy_timeout=60000")
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            raise HarnessError(f"{self.path} is not a harness results file: {exc}") from None

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

    def _init_schema(self) -> None:
        with self.transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise HarnessError(
                    f"{self.path} has schema version {version}, newer than this harness "
                    f"({SCHEMA_VERSION}); upgrade bn-harness to read it"
                )
            for statement in SCHEMA.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
            for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    def create_run(
        self, run_id: str, suite: str, settings: dict[str, Any], env: dict[str, Any]
    ) -> None:
        """Record a new run (status ``running``)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, 'running', ?, ?)",
                (run_id, suite, time.time(), json.dumps(settings), json.dumps(env)),
            )

    def set_run_status(self, run_id: str, status: str) -> None:
        """Mark a run ``running``, ``finished`` or ``interrupted``."""
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET status=? WHERE run_id=?", (status, run_id))

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
            "SELECT r.run_id, r.suite, r.created, r.status, COUNT(c.cell_id) AS cells, "
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
