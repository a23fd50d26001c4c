"""`tradercoin db|users|keys` through click's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tradercoin.cli import main
from tradercoin.store import generate_key

SECRET = "cli-secret-value-xyz"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "TRADERCOIN_DATABASE_URL": db_url,
        "TRADERCOIN_MASTER_KEY": generate_key("k1"),
        "TRADERCOIN_MASTER_KEY_FILE": str(tmp_path / "dev.key"),
    }


def run(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=input)


def test_db_upgrade_migrates_and_reports(env: dict[str, str]) -> None:
    result = run(env, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert re.search(r"is at revision \w+ \(head\)", result.output), result.output
    assert run(env, "db", "upgrade").exit_code == 0


def test_users_add_and_list(env: dict[str, str]) -> None:
    added = run(env, "users", "add", "olga", "--operator", input="password1\npassword1\n")
    assert added.exit_code == 0, added.output
    assert "user olga created: id 1, role operator" in added.output
    assert "password1" not in added.output
    run(env, "users", "add", "pete", "--password", "password2")
    listed = run(env, "users", "list")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[1].split() == ["1", "olga", "operator", "-"]
    assert lines[2].split() == ["2", "pete", "user", "-"]


def test_users_add_refuses_duplicates_and_bad_input(env: dict[str, str]) -> None:
    assert run(env, "users", "add", "olga", "--password", "password1").exit_code == 0
    again = run(env, "users", "add", "olga", "--password", "password1")
    assert again.exit_code == 1
    assert again.output.strip() == (
        "tradercoin: error: user 'olga' already exists; pick another name"
    )
    assert run(env, "users", "add", "bad name", "--password", "password1").exit_code == 2
    assert run(env, "users", "add", "ok", "--password", "short").exit_code == 2


def test_keys_set_and_rotate(env: dict[str, str]) -> None:
    run(env, "users", "add", "alice", "--password", "password1")
    stored = run(env, "keys", "set", "alice", "--testnet", input=f"AKIA-abcd\n{SECRET}\n")
    assert stored.exit_code == 0, stored.output
    assert "keys of alice stored: ...abcd under master key k1" in stored.output
    assert SECRET not in stored.output
    assert "...abcd (key k1, testnet)" in run(env, "users", "list").output
    env = {**env, "TRADERCOIN_MASTER_KEY": f"{generate_key('k2')},{env['TRADERCOIN_MASTER_KEY']}"}
    rotated = run(env, "keys", "rotate")
    assert rotated.exit_code == 0, rotated.output
    assert "re-encrypted 1 credential row(s) under master key k2" in rotated.output
    assert "(key k2, testnet)" in run(env, "users", "list").output


def test_keys_set_for_unknown_user_fails(env: dict[str, str]) -> None:
    result = run(env, "keys", "set", "ghost", "--api-key", "k", "--api-secret", SECRET)
    assert result.exit_code == 1
    assert "no user named 'ghost'; create it with `tradercoin users add ghost`" in result.output


def test_rotate_with_the_wrong_key_exits_1(env: dict[str, str]) -> None:
    run(env, "users", "add", "alice", "--password", "password1")
    run(env, "keys", "set", "alice", "--api-key", "AKIA-abcd", "--api-secret", SECRET)
    wrong = {**env, "TRADERCOIN_MASTER_KEY": f"{generate_key('k2')},{generate_key('k1')}"}
    result = run(wrong, "keys", "rotate")
    assert result.exit_code == 1
    assert "1 row(s) could not be decrypted" in result.output


def test_bad_master_key_is_one_line_exit_2(env: dict[str, str]) -> None:
    result = run({**env, "TRADERCOIN_MASTER_KEY": "k1:nope"}, "keys", "rotate")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "TRADERCOIN_MASTER_KEY: key #1 is malformed" in (
        result.output
    )


def test_keys_generate_prints_a_usable_key() -> None:
    result = CliRunner().invoke(main, ["keys", "generate", "--kid", "prod1"])
    assert result.exit_code == 0 and result.output.startswith("prod1:")


@pytest.mark.parametrize(
    "command",
    [
        ["db"],
        ["users"],
        ["keys"],
        ["db", "upgrade"],
        ["users", "add"],
        ["keys", "set"],
        ["keys", "rotate"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
