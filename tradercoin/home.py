"""The data directory: where the database, the dev master key, the config file and the CLI's
login live, so every ``tradercoin`` command finds the same ones from any directory.

``TRADERCOIN_HOME`` names it; by default it is the platform's user data directory
(``$XDG_DATA_HOME/tradercoin`` or ``~/.local/share/tradercoin`` on Linux,
``~/Library/Application Support/tradercoin`` on macOS, ``%LOCALAPPDATA%\\tradercoin`` on
Windows). Nothing here is created until something is written into it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_NAME",
    "DATABASE_NAME",
    "KEY_NAME",
    "LOGIN_NAME",
    "Login",
    "default_home",
    "forget_login",
    "load_login",
    "read_config_file",
    "resolve_home",
    "save_login",
]

CONFIG_NAME = "config.toml"
DATABASE_NAME = "tradercoin.db"
KEY_NAME = "tradercoin.key"
LOGIN_NAME = "login.json"


class HomeError(ValueError):
    """The config file or the stored login cannot be read; the message says how to fix it."""


def default_home(env: Mapping[str, str], platform: str = sys.platform) -> Path:
    """The platform's user data directory for tradercoin (not created)."""
    if platform.startswith("win"):
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "tradercoin"
    if platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "tradercoin"
    xdg = env.get("XDG_DATA_HOME")
    base_dir = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base_dir / "tradercoin"


def resolve_home(env: Mapping[str, str], flag: str | None = None) -> tuple[Path, str]:
    """``(directory, source)``: the flag, else ``TRADERCOIN_HOME``, else the default."""
    if flag:
        return Path(flag).expanduser().absolute(), "flag"
    if env.get("TRADERCOIN_HOME"):
        return Path(env["TRADERCOIN_HOME"]).expanduser().absolute(), "env"
    return default_home(env), "default"


def read_config_file(path: Path) -> dict[str, str]:
    """The settings in a TOML config file as text by name (``{}`` when there is none).

    Keys are the settings' names as ``tradercoin config show`` lists them (``port = 8081``,
    ``poll_interval = "2s"``, ``allowed_origins = ["https://a.example"]``).

    Raises:
        HomeError: the file is not valid TOML or holds a table or an unknown kind of value.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise HomeError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise HomeError(f"{path} is not valid TOML: {error}") from None
    return {str(key): _as_text(path, str(key), value) for key, value in data.items()}


def _as_text(path: Path, key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)
    raise HomeError(f"{path}: {key} must be a string, a number or a list of strings")


@dataclass(frozen=True, slots=True)
class Login:
    """An operator's session for the CLI: the service's URL and the bearer token."""

    url: str
    username: str
    token: str

    def __repr__(self) -> str:
        return f"Login(url={self.url!r}, username={self.username!r}, token=<hidden>)"


def save_login(home: Path, login: Login) -> Path:
    """Write the login to ``home/login.json``, readable by its owner only (0600), replacing
    any earlier one; creates ``home`` (0700) if needed. Returns the file's path."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / LOGIN_NAME
    temporary = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump({"url": login.url, "username": login.username, "token": login.token}, file)
    os.replace(temporary, path)
    return path


def load_login(home: Path) -> Login | None:
    """The stored login, or None when nobody logged in here."""
    path = home / LOGIN_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Login(str(data["url"]), str(data["username"]), str(data["token"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise HomeError(f"{path} is unreadable; log in again with `tradercoin login`") from None


def forget_login(home: Path) -> bool:
    """Delete the stored login; True if there was one."""
    try:
        (home / LOGIN_NAME).unlink()
    except FileNotFoundError:
        return False
    return True
