"""One home for data: every command finds the same database, master key, config file and
login from any working directory; settings come from flag > env > config file > default."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.procs import free_port, wait_healthy
from tradercoin.config import ConfigError, resolve
from tradercoin.home import default_home

PASSWORD = "operator pass 1"


def tradercoin(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tradercoin.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'port = 8100\nhost = "127.0.0.2"\npoll_interval = "3s"\nallowed_origins = ["https://a.example"]\n'
    )
    env = {"TRADERCOIN_HOME": str(tmp_path), "TRADERCOIN_PORT": "8200"}
    got = resolve(env, port=8300)
    assert (got.settings.port, got.sources["port"]) == (8300, "flag")
    got = resolve(env)
    assert (got.settings.port, got.sources["port"]) == (8200, "env")
    assert (got.settings.host, got.sources["host"]) == ("127.0.0.2", "config file")
    assert (got.settings.poll.interval, got.sources["poll_interval"]) == (3.0, "config file")
    assert got.settings.allowed_origins == ("https://a.example",)
    assert got.sources["exchange"] == "default" and got.settings.exchange == "sim"
    assert got.settings.database_url == f"sqlite:///{tmp_path}/tradercoin.db"
    assert got.settings.master_key_file == tmp_path / "tradercoin.key"
    assert got.shown("master_key") == "unset"
    secret = resolve({**env, "TRADERCOIN_MASTER_KEY": "k1:whatever"})
    assert secret.shown("master_key") == "set"


def test_config_file_mistakes_are_one_line(tmp_path: Path) -> None:
    env = {"TRADERCOIN_HOME": str(tmp_path)}
    (tmp_path / "config.toml").write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        resolve(env)
    (tmp_path / "config.toml").write_text('port = "eighty"\n')
    with pytest.raises(ConfigError, match=r"config\.toml: port: 'eighty' is not an integer"):
        resolve(env)
    (tmp_path / "config.toml").write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve(env)


def test_default_home_is_the_platforms_user_data_dir(tmp_path: Path) -> None:
    home = Path.home()
    assert default_home({}, "linux") == home / ".local/share/tradercoin"
    assert default_home({"XDG_DATA_HOME": str(tmp_path)}, "linux") == tmp_path / "tradercoin"
    assert default_home({}, "darwin") == home / "Library/Application Support/tradercoin"
    assert default_home({"LOCALAPPDATA": "C:/x"}, "win32") == Path("C:/x/tradercoin")


@pytest.fixture
def home_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADERCOIN_")}
    env["TRADERCOIN_HOME"] = str(tmp_path / "home")
    env["TRADERCOIN_PORT"] = str(free_port())
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    return env


@pytest.fixture
def served(tmp_path: Path, home_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """An operator made from directory a (creating the database, and saying so), then
    ``tradercoin serve`` from directory b; yields (url, serve's stdout so far)."""
    made = tradercoin(tmp_path / "a", home_env, "users", "add", "root", "--operator",
                      "--password", PASSWORD)  # fmt: skip
    assert made.returncode == 0, made.stderr
    database = tmp_path / "home" / "tradercoin.db"
    assert f"no database at {database}: creating a new one" in made.stderr
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        command = [sys.executable, "-m", "tradercoin.cli", "serve"]
        process = subprocess.Popen(command, cwd=tmp_path / "b", env=home_env, stdout=log,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        url = f"http://127.0.0.1:{home_env['TRADERCOIN_PORT']}"
        try:
            wait_healthy(url, process, log_path)
            yield url, log_path.read_text()
        finally:
            process.terminate()
            process.wait(timeout=15)
    assert not list((tmp_path / "a").iterdir()) and not list((tmp_path / "b").iterdir())


@pytest.mark.slow
def test_every_command_finds_the_same_data(
    tmp_path: Path, home_env: dict[str, str], served: tuple[str, str]
) -> None:
    url, started = served
    home = tmp_path / "home"
    assert f"data directory {home} (env)" in started
    assert "creating a new one" not in started  # users add made it already
    listed = tradercoin(tmp_path / "c", home_env, "users", "list")
    assert listed.returncode == 0 and "root" in listed.stdout and listed.stderr == ""

    logged = tradercoin(tmp_path / "c", home_env, "login", "--username", "root",
                        "--password", PASSWORD)  # fmt: skip
    assert logged.returncode == 0, logged.stderr
    kept = home / "login.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert PASSWORD not in kept.read_text() and PASSWORD not in logged.stdout

    alice = httpx.post(
        f"{url}/api/auth/register",
        json={"username": "alice", "password": "amber kettle 1974 sails"},
    )
    alice_id = alice.json()["data"]["id"]
    changed = tradercoin(tmp_path / "c", home_env, "poll-rate", "set", "--user", str(alice_id),
                         "--interval", "2s")  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    root = httpx.post(f"{url}/api/auth/login", json={"username": "root", "password": PASSWORD})
    policy = httpx.get(
        f"{url}/api/admin/users/{alice_id}/poll-policy",
        headers={"Authorization": f"Bearer {root.json()['token']}"},
    ).json()["data"]
    assert policy["interval"] == 2.0

    as_alice = {**home_env, "TRADERCOIN_TOKEN": alice.json()["token"]}  # the env token wins
    refused = tradercoin(tmp_path / "c", as_alice, "poll-rate", "get", "--user", str(alice_id))
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr

    shown = tradercoin(tmp_path / "c", {**home_env, "TRADERCOIN_MASTER_KEY": "k1:x"},
                       "config", "show")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()}
    assert lines["port"].split()[1:] == [home_env["TRADERCOIN_PORT"], "env"]
    assert lines["master_key"].split()[1:] == ["set", "env"] and "k1:x" not in shown.stdout
    assert lines["database_url"].split()[1:] == [f"sqlite:///{home}/tradercoin.db", "default"]
    assert "set (login of root" in lines["token"]

    assert tradercoin(tmp_path / "c", home_env, "logout").returncode == 0
    assert not kept.exists()
    gone = tradercoin(tmp_path / "c", home_env, "poll-rate", "get", "--user", str(alice_id))
    assert gone.returncode == 2 and "tradercoin login" in gone.stderr
