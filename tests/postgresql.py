"""A throw-away PostgreSQL server on loopback, for the tests that store in PostgreSQL.

Debian's ``postgresql`` package provides it (``make system-deps`` installs it). PostgreSQL refuses
to run as root, which the tests are where the kernels' sandbox is tested: then the server runs as
the ``postgres`` system user that the package creates.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests import processes


class PostgreSQLServer:
    """A running cluster: user ``kernelpad``, trusted on loopback, without durability (fsync
    off) because it is thrown away."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._databases = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://kernelpad@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; return its URL."""
        name = f"test_{next(self._databases)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@contextlib.contextmanager
def postgresql_server(port: int) -> Iterator[PostgreSQLServer]:
    """Start a cluster on ``port`` in a temporary folder; stop it and remove the folder at the
    end."""
    initdb = _newest("initdb")
    as_root = os.geteuid() == 0
    # As root, initdb and the server run as the postgres user (with no supplementary groups).
    user = "postgres" if as_root else None
    group = "postgres" if as_root else None
    extra_groups: list[str] | None = [] if as_root else None
    # Under /tmp itself: the postgres user cannot enter pytest's folders, which are root's.
    root = Path(tempfile.mkdtemp(prefix="kernelpad-pg-"))
    try:
        if as_root:
            shutil.chown(root, "postgres", "postgres")
        data = root / "data"
        init_command: list[str | Path] = [initdb, "-D", data, "-U", "kernelpad", "-A", "trust"]
        init_command += ["--no-sync", "--no-locale", "-E", "UTF8"]
        init = subprocess.run(
            init_command,
            capture_output=True,
            text=True,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
        if init.returncode != 0:
            pytest.fail(f"initdb failed: {init.stdout}{init.stderr}")
        server = PostgreSQLServer(port)
        log_path = root / "postgres.log"
        with open(log_path, "wb") as log:
            server_command: list[str | Path] = [initdb.with_name("postgres"), "-D", data]
            server_command += ["-p", str(server.port), "-k", root]
            server_command += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
            server_command += ["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
            proc = subprocess.Popen(
                server_command,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        try:
            _wait_ready(proc, server, log_path)
            yield server
        finally:
            # Fast shutdown: connections still open are ended, not waited for.
            processes.stop(proc, sig=signal.SIGINT)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _newest(program: str) -> Path:
    """A PostgreSQL program of the newest version Debian's packages installed."""
    found = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{program}"),
        key=lambda path: int(path.parent.parent.name),
    )
    if not found:
        pytest.fail(
            f"PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/{program}): the tests"
            " need a PostgreSQL server; `make system-deps` installs Debian's `postgresql`"
        )
    return found[-1]


def _wait_ready(proc: subprocess.Popen[bytes], server: PostgreSQLServer, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"PostgreSQL exited as it started: {log.read_text()}")
        try:
            psycopg.connect(server.url(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL did not accept connections: {log.read_text()}")
            time.sleep(0.05)
