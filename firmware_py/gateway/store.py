"""The box's one SQLite database (WAL mode) under the state directory.

Each component that keeps state (tickets, trusted time, flash journal, coding backups,
outbox, paired tablets) declares its tables as a list of ``CREATE TABLE IF NOT EXISTS``
statements and calls :meth:`Store.ensure_schema` with them once. Writes that must survive a
power cut use :meth:`Store.transaction` (``synchronous=FULL`` in WAL mode: a committed
transaction is on disk when ``commit`` returns).

A ``Store`` object may be used from several threads: each thread gets its own connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from firmware_py.errors import StorageError
from firmware_py.i18n import N_

DB_NAME = "vci.sqlite3"


class Store:
    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(
                N_("cannot create state directory {state_dir}: {err}"),
                values={"state_dir": self.state_dir, "err": err},
                hint=N_("Check its permissions or set [storage] state_dir / VCI_STORAGE_STATE_DIR"),
            ) from err
        self.path = self.state_dir / DB_NAME
        self._local = threading.local()
        self._schemas_done: set[str] = set()
        self._lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as err:
                raise StorageError(
                    N_("cannot open database {path}: {err}"), values={"path": self.path, "err": err}
                ) from err
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error); sqlite3 errors become
        :class:`StorageError`."""
        conn = self.connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise StorageError(
                N_("database {path} is not writable: {err}"), values={"path": self.path, "err": err}
            ) from err
        try:
            yield conn
        except BaseException as err:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the failed statement may have rolled back already (a full disk)
            if isinstance(err, sqlite3.Error):
                raise StorageError(
                    N_("cannot write to {path}: {err}"),
                    values={"path": self.path, "err": err},
                    hint=N_("Free space on the box's state disk"),
                ) from err
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                raise StorageError(
                    N_("cannot commit to {path}: {err}"), values={"path": self.path, "err": err}
                ) from err

    def ensure_schema(self, name: str, statements: Iterable[str]) -> None:
        """Create a component's tables once per process (idempotent)."""
        with self._lock:
            if name in self._schemas_done:
                return
            with self.transaction() as conn:
                for statement in statements:
                    conn.execute(statement)
            self._schemas_done.add(name)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
