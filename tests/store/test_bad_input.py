"""Bad database URLs and unreachable servers: one line that says what and how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tradercoin.cli import main
from tradercoin.clock import FixedEpochClock
from tradercoin.store import BadDatabaseURL, SecretBox, StoreError, open_store


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "cannot be parsed"),
        ("postgresql://bob:s3cret@host:notaport/db", "cannot be parsed"),
        ("postgresql//bob:s3cret@host/db", "cannot be parsed"),
        ("mysql://root@localhost/db", "is not SQLite or PostgreSQL"),
    ],
)
async def test_bad_url(url: str, expected: str) -> None:
    with pytest.raises(BadDatabaseURL, match=expected) as info:
        async with open_store(url, secrets=SecretBox.ephemeral(), clock=FixedEpochClock(0)):
            pass
    assert "\n" not in str(info.value) and "postgresql+psycopg://" in str(info.value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/test",
        "sqlite:////nonexistent-dir/sub/db.sqlite",
    ],
)
async def test_unreachable_database(url: str) -> None:
    with pytest.raises(StoreError, match="cannot connect to database") as info:
        async with open_store(url, secrets=SecretBox.ephemeral(), clock=FixedEpochClock(0)):
            pass
    message = str(info.value)
    assert "\n" not in message and "hunter2" not in message and "TRADERCOIN_DATABASE_URL" in message


def test_cli_reports_bad_urls_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["db", "upgrade", "--database-url", "mysql://x/y"])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1
    down = runner.invoke(
        main, ["users", "list", "--database-url", "postgresql://postgres@127.0.0.1:1/x"]
    )
    assert down.exit_code == 1 and down.output.startswith("tradercoin: error: cannot connect")


async def test_in_memory_store_works_across_threads() -> None:
    async with open_store(
        "sqlite:///:memory:", secrets=SecretBox.ephemeral(), clock=FixedEpochClock(0)
    ) as store:
        user = await store.create_user("mem", "h")
        assert await store.get_user(user.id) == user
        assert store.db.limiter.total_tokens == 1
