"""A throwaway PostgreSQL cluster of the test's own: ``initdb`` into a temporary directory,
its own port and socket directory, trust auth, stopped and deleted afterwards.

For tests that must do something to the server itself (restart it, kill it): they never touch
the machine's cluster. Binaries come from ``$TRADERCOIN_TEST_PG_BIN``, Debian's
``/usr/lib/postgresql/<version>/bin`` (newest), or ``pg_ctl`` on the PATH. PostgreSQL refuses
to run as root, so as root the cluster runs as the ``postgres`` OS user (else ``nobody``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Cluster", "find_bindir", "throwaway_cluster"]


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is absent."""
    configured = os.environ.get("TRADERCOIN_TEST_PG_BIN")
    candidates = [Path(configured)] if configured else []
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )
        candidates += [p / "bin" for p in reversed(versions)]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """A running throwaway cluster: ``url`` (SQLAlchemy), ``restart()``, ``stop()``."""

    def __init__(self, bindir: Path, root: Path, run_as: str | None) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.port = _free_port()
        self._prefix = ["runuser", "-u", run_as, "--"] if run_as else []

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [*self._prefix, str(self.bindir / tool), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            path = self.root / "server.log"
            log = path.read_text() if path.exists() else ""
            raise RuntimeError(f"{tool} {args[:2]} failed: {result.stderr.strip()}\n{log[-2000:]}")

    def init_and_start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def _server_args(self) -> list[str]:
        """Port, socket directory and log file (the log keeps the server's output off our
        pipes, which would otherwise stay open for its lifetime)."""
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        return ["-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"), "-w"]

    def start(self) -> None:
        self._run("pg_ctl", *self._server_args(), "start")

    def restart(self) -> None:
        """Fast shutdown (connections are cut), then start again on the same port; returns
        when it accepts connections."""
        self._run("pg_ctl", *self._server_args(), "-m", "fast", "restart")

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


def _unprivileged_user() -> str | None:
    """None when not root; else an OS user PostgreSQL will run as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


@contextlib.contextmanager
def throwaway_cluster(bindir: Path) -> Iterator[Cluster]:
    """initdb + start a cluster in a fresh temporary directory; stop it and delete the
    directory on exit, whatever happened."""
    run_as = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="tradercoin-pg-"))
    try:
        (root / "sockets").mkdir()
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            for path in (root, root / "sockets"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        cluster = Cluster(bindir, root, run_as)
        cluster.init_and_start()
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
