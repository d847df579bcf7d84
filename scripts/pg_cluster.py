"""A throw-away PostgreSQL server for the tests and the replica benchmark: ``initdb`` into a
temporary folder, started on a free local port, removed at the end. Uses the server binaries of
Debian's ``postgresql`` package (or any ``initdb``/``pg_ctl`` on PATH). As root, the server runs as
the ``postgres`` user (PostgreSQL refuses to run as root).

    python scripts/pg_cluster.py        # start one, print its URL, stop it on Ctrl-C
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One PostgreSQL server in its own folder. ``fast`` turns off fsync (tests: durability against
    a power cut is not what they check). Commits stay synchronous, so a crashed or killed server
    process loses nothing it acknowledged (``synchronous_commit=off`` would: the tests caught it)."""

    def __init__(self, fast: bool = True):
        found = bin_dir()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.bin = found
        self.fast = fast
        self.root = Path(tempfile.mkdtemp(prefix="escalation-matrix-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, cwd=self.root)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> "Cluster":
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                      "--locale=C", "--no-sync")
        options = [f"-c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=300"]
        if self.fast:
            options.append("-c fsync=off -c full_page_writes=off")
        for _ in range(5):  # a port taken between choosing and binding: choose again
            self.port = self.port or _free_port()
            result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                               "-o", f"-p {self.port} " + " ".join(options), "start", check=False)
            if result.returncode == 0:
                return self
            self.port = 0
        raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{self.log.read_text(errors='replace')}")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server as a crash would (immediate), wait, start it again on the same port."""
        self.stop("immediate")
        time.sleep(down_for)
        self.start()

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def create_database(self, name: str, template: str | None = None) -> str:
        self.sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()


if __name__ == "__main__":
    with Cluster(fast=False) as cluster:
        print(cluster.url(), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
