"""``tradercoin config show``, ``login`` and ``logout``, and what every command shares about
the data directory: which service and token to use, and saying so before a new database is
made where one was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tradercoin.config import ConfigError, Resolved, resolve
from tradercoin.home import HomeError, Login, forget_login, load_login, save_login

__all__ = ["new_database_note", "prepare_home", "register", "service_access"]


def _fail(message: str, code: int = 1) -> Any:
    from tradercoin.cli import fail

    return fail(message, code)


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser().absolute()


def prepare_home(resolved: Resolved) -> None:
    """Create the data directory (0700) when the database or the dev key file is to live in
    it by default; a path set by the operator is left as it is."""
    if "default" in (resolved.sources["database_url"], resolved.sources["master_key_file"]):
        resolved.home.mkdir(parents=True, exist_ok=True, mode=0o700)


def new_database_note(resolved: Resolved) -> str | None:
    """One line saying a new SQLite database will be created, and why there (None when the
    file exists or the database is not SQLite)."""
    path = sqlite_path(resolved.settings.database_url)
    if path is None or path.exists():
        return None
    source = resolved.sources["database_url"]
    if source == "default":
        why = f"the data directory {resolved.home} ({_home_reason(resolved)})"
        hint = "set TRADERCOIN_HOME or --database-url to use another"
    else:
        why = f"database_url from the {source}"
        hint = "check the path if you expected an existing database"
    return f"no database at {path}: creating a new one (from {why}); {hint}"


def _home_reason(resolved: Resolved) -> str:
    return "TRADERCOIN_HOME" if resolved.home_source == "env" else "the default"


def service_access(url: str | None, token: str | None) -> tuple[str, str]:
    """The service URL and operator token a command uses: ``--url``/``TRADERCOIN_URL`` and
    ``--token``/``TRADERCOIN_TOKEN`` first, then the login stored by ``tradercoin login``,
    then (URL only) ``http://host:port`` from the settings. Exits 2 when there is no token."""
    resolved = resolve()
    try:
        login = load_login(resolved.home)
    except HomeError as error:
        login = None
        if token is None:
            _fail(str(error), 2)
    if token is None:
        if login is None:
            _fail("no operator token: run `tradercoin login` (or set TRADERCOIN_TOKEN)", 2)
        assert login is not None
        token = login.token
        url = url or login.url
    if url is None:
        url = login.url if login is not None else _default_url(resolved)
    return url, token


def _default_url(resolved: Resolved) -> str:
    host = resolved.settings.host
    if host in ("0.0.0.0", "::"):  # noqa: S104 (a bind-all address: reach it on loopback)
        host = "127.0.0.1"
    return f"http://{host}:{resolved.settings.port}"


@click.group("config")
def config_group() -> None:
    """Settings: what they are and where each comes from."""


@config_group.command("show")
def config_show() -> None:
    """Every setting, its value and its source (flag, env, config file, default).

    Precedence, highest first: a command's flag, TRADERCOIN_<NAME>, the key <name> in
    config.toml in the data directory, the default. Secrets are shown as set/unset only.
    """
    try:
        resolved = resolve()
    except ConfigError as error:
        _fail(str(error), 2)
    exists = "" if resolved.config_file.exists() else " (none)"
    click.echo(f"{'home':<26} {resolved.home}  [{resolved.home_source}: TRADERCOIN_HOME]")
    click.echo(f"{'config file':<26} {resolved.config_file}{exists}")
    for name, source in resolved.sources.items():
        click.echo(f"{name:<26} {resolved.shown(name):<48} {source}")
    try:
        login = load_login(resolved.home)
    except HomeError:
        login = None
    token = "set (TRADERCOIN_TOKEN)" if _env_token() else "unset"
    if login is not None and not _env_token():
        token = f"set (login of {login.username} at {login.url})"
    click.echo(f"{'token':<26} {token}")


def _env_token() -> bool:
    import os

    return bool(os.environ.get("TRADERCOIN_TOKEN"))


@click.command("login")
@click.option("--url", envvar="TRADERCOIN_URL", default=None, help="The running service.")
@click.option("--username", prompt=True, help="An operator's username (prompted).")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    envvar="TRADERCOIN_PASSWORD",
    help="Prompted when omitted [env TRADERCOIN_PASSWORD].",
)
def login_command(url: str | None, username: str, password: str) -> None:
    """Log in to a running service and keep the operator's token for the CLI.

    The token is stored in login.json in the data directory, readable by you only (0600);
    `poll-rate` then needs no --token. TRADERCOIN_TOKEN, when set, still wins.
    """
    import httpx

    try:
        resolved = resolve()
    except ConfigError as error:
        _fail(str(error), 2)
    url = (url or _default_url(resolved)).rstrip("/")
    body = {"username": username, "password": password}
    try:
        response = httpx.post(f"{url}/api/auth/login", json=body, timeout=15)
        answer = response.json()
    except httpx.HTTPError as error:
        _fail(f"cannot reach {url}: {type(error).__name__}; is `tradercoin serve` running?")
    except ValueError:
        _fail(f"{url} answered HTTP {response.status_code} without JSON; is it tradercoin?")
    if not isinstance(answer, dict):
        _fail(f"{url} answered HTTP {response.status_code} with unexpected JSON")
    if response.status_code != 200:
        message = (answer.get("error") or {}).get("message", "refused")
        _fail(f"login refused (HTTP {response.status_code}): {message}")
    user, token = answer.get("data"), answer.get("token")
    if not isinstance(token, str):
        _fail(f"{url} answered no token; is it tradercoin?")
    path = save_login(resolved.home, Login(url, username, token))
    role = user.get("role", "?") if isinstance(user, dict) else "?"
    click.echo(f"logged in to {url} as {username} ({role}); token kept in {path} (0600)")
    if role != "operator":
        click.echo("note: this user is not an operator; poll-rate will be refused", err=True)


@click.command("logout")
def logout_command() -> None:
    """Forget the token kept by `tradercoin login` (the token itself stays valid until it
    expires)."""
    try:
        resolved = resolve()
    except ConfigError as error:
        _fail(str(error), 2)
    click.echo("logged out" if forget_login(resolved.home) else "nobody was logged in here")


def register(main: click.Group) -> None:
    main.add_command(config_group)
    main.add_command(login_command)
    main.add_command(logout_command)
