"""A throwaway PostgreSQL cluster for the database vendors' tests: initdb into a temporary folder,
pg_ctl start on a free loopback port (trusted login as 'research'), stop and delete afterwards."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_port

BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


@dataclasses.dataclass
class Cluster:
    bindir: Path
    root: Path
    port: int
    run_as: list[str]

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://research@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        return subprocess.run(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
             "-l", str(self.root / "log"), *args],
            check=False, capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        proc = self.ctl("-w", "start")
        assert proc.returncode == 0, proc.stderr

    def stop(self) -> None:
        self.ctl("-m", "immediate", "-w", "stop")


@contextmanager
def cluster() -> Iterator[Cluster]:
    if not BINARIES:
        pytest.skip("PostgreSQL is not installed (CI installs Debian's postgresql)")
    root = Path(tempfile.mkdtemp(prefix="pg_", dir="/tmp"))
    os.chmod(root, 0o777)
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    server = Cluster(BINARIES[-1].parent, root, free_port(), run_as)
    subprocess.run([*run_as, str(server.bindir / "initdb"), "-D", str(server.data), "-A", "trust",
                    "-U", "research"], check=True, capture_output=True)  # fmt: skip
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
