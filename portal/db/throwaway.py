"""A throwaway PostgreSQL cluster from Debian's ``postgresql`` package, for the portal's tests,
its benchmark and demos: ``initdb`` and ``pg_ctl`` in a temporary directory, listening on a Unix
socket there only (no TCP port), without fsync, deleted when it stops. Not for data anyone keeps.

initdb refuses to run as root: then the cluster runs as ``nobody`` through ``runuser``, in a
directory made for it; clients connect as the cluster's superuser ``postgres`` over the socket
(trust authentication: nothing but this machine's processes can reach a socket in a private
directory).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from firmware_py.errors import ConfigError


def pg_bin() -> Path:
    """The newest installed PostgreSQL's ``bin`` directory."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        raise ConfigError(
            "PostgreSQL is not installed",
            hint="Install Debian's postgresql package (scripts/test does)",
        )
    return versions[-1].parent


def _run(command: list[str], timeout: float) -> None:
    done = subprocess.run(command, timeout=timeout, capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(
            f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}",
            hint="See the PostgreSQL server's message above",
        )


@dataclass
class PgCluster:
    """A running cluster: its socket directory and the PostgreSQL programs' directory."""

    socket_dir: Path
    bin: Path
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_database(self, prefix: str = "portal_test") -> str:
        """A new empty database; its SQLAlchemy URL (psycopg 3 over the socket)."""
        name = f"{prefix}_{next(self._names)}"
        _run(
            [str(self.bin / "psql"), "-h", str(self.socket_dir), "-U", "postgres", "-d", "postgres",
             "-q", "-c", f"CREATE DATABASE {name}"],
            timeout=30,
        )  # fmt: skip
        return f"postgresql+psycopg://postgres@/{name}?host={self.socket_dir}"


@contextmanager
def running_cluster(max_connections: int = 100) -> Iterator[PgCluster]:
    """Start a cluster; stopped (immediate shutdown) and deleted at the end."""
    bin_dir = pg_bin()
    root = Path(tempfile.mkdtemp(prefix="vci-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        run_as = ["runuser", "-u", "nobody", "--"]
    data = root / "data"
    try:
        _run(
            [*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            timeout=120,
        )  # fmt: skip
        options = (
            f"-k {root} -c listen_addresses='' -c fsync=off -c full_page_writes=off "
            f"-c max_connections={max_connections}"
        )
        _run(
            [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-t", "60",
             "-l", str(root / "log"), "start"],
            timeout=90,
        )  # fmt: skip
        yield PgCluster(root, bin_dir)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                timeout=60, capture_output=True,
            )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
