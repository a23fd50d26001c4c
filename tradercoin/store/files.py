"""The SQLite files on disk: readable by their owner only, like the master key file.

SQLite creates ``-wal`` and ``-shm`` with the database file's permission bits, so the database
is created 0600 before SQLite first opens it, and an existing one (and its WAL and SHM) is
set to 0600 at every start.

A SQLite database serves one ``tradercoin serve`` (several instances need PostgreSQL, see
docs/cluster.md): :func:`hold_sqlite_file` keeps an exclusive ``flock`` on ``<db>.lock`` for
the life of the process, so a second one on the same file refuses to start.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from tradercoin.config import ConfigError

__all__ = [
    "hold_sqlite_file",
    "key_file_beside_database",
    "protect_sqlite_files",
    "sqlite_path",
]

log = logging.getLogger(__name__)
OWNER_ONLY = 0o600


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (``None``: in memory, or not SQLite)."""
    try:
        parsed = make_url(url)
    except Exception:  # a bad URL is reported, in one line, by Database
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def protect_sqlite_files(url: str) -> None:
    """Create the database file 0600 if absent; set it and its WAL and SHM to 0600.

    Sync-coloured (a few system calls at start). A directory that does not exist is left for
    the database to report.
    """
    path = sqlite_path(url)
    if path is None or not path.parent.is_dir():
        return
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, OWNER_ONLY))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if file.exists() and file.stat().st_mode & 0o777 != OWNER_ONLY:
            os.chmod(file, OWNER_ONLY)


def key_file_beside_database(url: str, key_file: Path) -> bool:
    """Whether the dev master key file sits in the database file's directory (a copy of
    that directory would then carry both the ciphertexts and their key)."""
    path = sqlite_path(url)
    if path is None:
        return False
    return path.resolve().parent == key_file.resolve().parent


@contextmanager
def hold_sqlite_file(url: str) -> Iterator[Path | None]:
    """Hold an exclusive lock on the SQLite database of ``url`` for the ``with`` block
    (yields the lock file; None, and no lock, for other databases).

    The lock is ``flock`` on ``<db>.lock`` (0600), held by the open descriptor: the kernel
    drops it when the process ends in any way, SIGKILL included, so nothing stale remains.

    Raises:
        ConfigError: another process holds the lock (one line naming the database file).
    """
    path = sqlite_path(url)
    if path is None or not path.parent.is_dir():
        yield None  # in memory, not SQLite, or a directory the database will report
        return
    lock = Path(f"{path.resolve()}.lock")
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, OWNER_ONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"database {path} is in use by another tradercoin serve (SQLite serves one "
                "instance; stop the other, or use PostgreSQL to run several)"
            ) from None
        yield lock
    finally:
        os.close(fd)
