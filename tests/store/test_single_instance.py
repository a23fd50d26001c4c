"""``hold_sqlite_file``: one ``tradercoin serve`` per SQLite file (the process test with two
real instances is tests/cluster/test_instances.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tradercoin.config import ConfigError
from tradercoin.store.files import hold_sqlite_file


def test_a_second_holder_is_refused_with_one_line_naming_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/one.db"
    with hold_sqlite_file(url) as lock:
        assert lock == tmp_path / "one.db.lock"
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        with pytest.raises(ConfigError) as refused, hold_sqlite_file(url):
            pass
        with pytest.raises(ConfigError), hold_sqlite_file(url):  # the refusal released nothing
            pass
    message = str(refused.value)
    assert f"database {tmp_path / 'one.db'} is in use" in message and "\n" not in message


def test_the_lock_goes_with_its_holder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/one.db"
    with hold_sqlite_file(url):
        pass
    with hold_sqlite_file(url) as again:
        assert again is not None


def test_the_same_file_by_another_path_is_the_same_lock(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    other = f"sqlite:///{tmp_path}/sub/../one.db"
    with (
        hold_sqlite_file(f"sqlite:///{tmp_path}/one.db"),
        pytest.raises(ConfigError),
        hold_sqlite_file(other),
    ):
        pass


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "postgresql+psycopg://u@h/db", "sqlite:////no/dir/x.db"],
)
def test_nothing_is_locked_but_a_sqlite_file(url: str) -> None:
    with hold_sqlite_file(url) as lock, hold_sqlite_file(url) as again:
        assert lock is None and again is None
