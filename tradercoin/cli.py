"""``tradercoin``: the command line.

Each command validates its settings once, runs, and exits 0 on success, 1 when the work
failed, 2 on bad usage or configuration (one line on stderr says what and how to fix it).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from tradercoin.cli_ops import new_database_note, prepare_home, register, service_access
from tradercoin.cli_serve import check_egress_address, serve_options
from tradercoin.config import ConfigError, Settings, resolve

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line to stderr and exit; never a traceback."""
    click.echo(f"tradercoin: error: {message}", err=True)
    sys.exit(code)


def config_errors(func: F) -> F:
    """Turn a ConfigError raised by a command into exit status 2 with its one line."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc), 2)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default=None, help="Logging level [env TRADERCOIN_LOG_LEVEL; INFO].")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="text, or json: one JSON object per line [env TRADERCOIN_LOG_FORMAT; text].",
)
def main(log_level: str | None, log_format: str | None) -> None:
    """tradercoin: watch exchange orders and push every change to the people who placed them.

    Every command finds its data (database, master key file, config.toml, login) in the data
    directory: TRADERCOIN_HOME, by default the platform's user data directory
    (`tradercoin config show` prints it and where each setting comes from).
    """
    from tradercoin.logs import configure_logging

    try:
        settings = Settings.from_env(log_level=log_level, log_format=log_format)
        level, fmt = settings.log_level, settings.log_format
    except ConfigError:  # the command reports it when it reads its settings
        level, fmt = log_level or "INFO", log_format or "text"
    try:
        configure_logging(level, fmt)
    except ValueError:
        fail(f"log level {level!r} is not DEBUG, INFO, WARNING, ERROR or CRITICAL", 2)


# --- store: db, users, keys ---------------------------------------------------------------

_DB_URL = click.option(
    "--database-url",
    default=None,
    metavar="URL",
    help="Database URL [env TRADERCOIN_DATABASE_URL; default tradercoin.db in the data dir].",
)
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def _store_command(func: F) -> F:
    """Exit 2 with one line on bad configuration, 1 on a store failure; never a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from tradercoin.store import BadDatabaseURL, CredentialsError, StoreError

        try:
            return func(*args, **kwargs)
        except (ConfigError, BadDatabaseURL) as exc:
            fail(str(exc), 2)
        except (StoreError, CredentialsError) as exc:
            fail(str(exc), 1)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def _with_store(database_url: str | None, body: Callable[..., Any], *, keys: bool = False) -> Any:
    """Open the store (migrated) inside ``trio.run`` and run ``await body(store)``.

    The master key is read only when ``keys`` is true, so user commands never create a dev
    key file.
    """
    import trio

    from tradercoin.clock import system_clock
    from tradercoin.store import SecretBox, open_store

    resolved = resolve(database_url=database_url)
    settings = resolved.settings
    prepare_home(resolved)
    box = SecretBox.from_settings(settings) if keys else SecretBox.ephemeral()
    note = new_database_note(resolved)
    if note is not None:
        click.echo(f"tradercoin: {note}", err=True)

    async def run() -> Any:
        async with open_store(settings.database_url, secrets=box, clock=system_clock()) as store:
            return await body(store)

    return trio.run(run)


@main.group()
def db() -> None:
    """The database: migrations."""


@db.command("upgrade")
@_DB_URL
@_store_command
def db_upgrade(database_url: str | None) -> None:
    """Create or migrate the database schema to the newest revision (one transaction)."""
    from tradercoin.store.migrate import current_revision

    async def revision(store: Any) -> str | None:
        return await store.db.read(current_revision)  # type: ignore[no-any-return]

    rev = _with_store(database_url, revision)
    shown = resolve(database_url=database_url).shown("database_url")
    click.echo(f"database {shown} is at revision {rev} (head)")


@main.group()
def users() -> None:
    """Accounts: add and list users."""


@users.command("add")
@click.argument("username")
@click.option("--operator", is_flag=True, help="Give the user the operator role.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="TRADERCOIN_PASSWORD",
    help="The password (prompted when omitted) [env TRADERCOIN_PASSWORD].",
)
@_DB_URL
@_store_command
def users_add(username: str, operator: bool, password: str, database_url: str | None) -> None:
    """Create USERNAME with a password (argon2id hashed)."""
    from tradercoin.http.accounts import normalise_username
    from tradercoin.http.security import password_hasher
    from tradercoin.store import Role

    username = normalise_username(username)
    if not _USERNAME.match(username):
        fail(f"username {username!r} must be 1-64 letters, digits or . _ @ -", 2)
    if len(password) < 8:
        fail("the password must have at least 8 characters", 2)
    role = Role.OPERATOR if operator else Role.USER
    password_hash = password_hasher().hash(password)

    async def add(store: Any) -> Any:
        return await store.create_user(username, password_hash, role)

    user = _with_store(database_url, add)
    click.echo(f"user {user.username} created: id {user.id}, role {user.role.value}")


@users.command("invite")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 1000))
@click.option("--valid", default="168h", show_default=True, help="How long a code stays valid.")
@_DB_URL
@_store_command
def users_invite(count: int, valid: str, database_url: str | None) -> None:
    """Print COUNT single-use invitation codes (for `serve --registration invite`).

    Only their hashes are stored; a code is shown once, here.
    """
    from tradercoin.config import parse_duration
    from tradercoin.http.invites import new_invite

    lifetime_ms = int(parse_duration(valid, name="--valid") * 1000)

    async def issue(store: Any) -> list[tuple[str, int]]:
        return [await new_invite(store, lifetime_ms) for _ in range(count)]

    for code, _expires in _with_store(database_url, issue):
        click.echo(code)
    click.echo(f"{count} invitation code(s), each valid once for {valid}", err=True)


@users.command("list")
@_DB_URL
@_store_command
def users_list(database_url: str | None) -> None:
    """List every user with their role and whether exchange keys are stored."""

    async def rows(store: Any) -> list[tuple[Any, Any]]:
        return [(u, await store.credential_info(u.id)) for u in await store.list_users()]

    found = _with_store(database_url, rows)
    click.echo(f"{'id':>6}  {'username':<24} {'role':<9} keys")
    for user, info in found:
        keys = "-" if info is None else f"...{info.key_last4} (key {info.key_id}"
        keys += "" if info is None else (", testnet)" if info.testnet else ")")
        click.echo(f"{user.id:>6}  {user.username:<24} {user.role.value:<9} {keys}")


@main.group()
def keys() -> None:
    """Exchange API keys, encrypted under TRADERCOIN_MASTER_KEY (kid:base64key[,...])."""


@keys.command("set")
@click.argument("username")
@click.option(
    "--api-key", prompt=True, envvar="TRADERCOIN_API_KEY", help="[env TRADERCOIN_API_KEY]"
)
@click.option(
    "--api-secret",
    prompt=True,
    hide_input=True,
    envvar="TRADERCOIN_API_SECRET",
    help="Prompted when omitted [env TRADERCOIN_API_SECRET].",
)
@click.option("--testnet", is_flag=True, help="The keys belong to the exchange's testnet.")
@_DB_URL
@_store_command
def keys_set(
    username: str, api_key: str, api_secret: str, testnet: bool, database_url: str | None
) -> None:
    """Store (or replace) USERNAME's exchange keys, encrypted under the current master key."""
    from tradercoin.exchange.protocol import Credentials

    if not api_key.strip() or not api_secret.strip():
        fail("the API key and secret must not be empty", 2)
    creds = Credentials(api_key=api_key.strip(), api_secret=api_secret.strip())

    async def store_keys(store: Any) -> Any:
        user = await store.get_user_by_name(username)
        if user is not None:
            await store.set_credentials(user.id, creds, testnet=testnet)
            return await store.credential_info(user.id)
        return None

    info = _with_store(database_url, store_keys, keys=True)
    if info is None:
        fail(f"no user named {username!r}; create it with `tradercoin users add {username}`")
    click.echo(f"keys of {username} stored: ...{info.key_last4} under master key {info.key_id}")


@keys.command("rotate")
@_DB_URL
@_store_command
def keys_rotate(database_url: str | None) -> None:
    """Re-encrypt every stored key under the first (current) master key.

    Put the new key first in TRADERCOIN_MASTER_KEY and keep the old one after it; the service
    keeps working throughout. Exit 1 if some rows could not be decrypted.
    """

    async def rotate(store: Any) -> tuple[int, int, str]:
        count = await store.rotate_credentials()
        infos = [await store.credential_info(u) for u in await store.users_with_credentials()]
        stale = sum(1 for i in infos if i is not None and i.key_id != store.secrets.current_kid)
        return count, stale, store.secrets.current_kid

    count, stale, kid = _with_store(database_url, rotate, keys=True)
    click.echo(f"re-encrypted {count} credential row(s) under master key {kid}")
    if stale:
        fail(f"{stale} row(s) could not be decrypted (see the log); set those users' keys again")


@keys.command("generate")
@click.option("--kid", default="k1", show_default=True, help="The key id to put before the key.")
def keys_generate(kid: str) -> None:
    """Print a new master key entry for TRADERCOIN_MASTER_KEY."""
    from tradercoin.store import generate_key

    click.echo(generate_key(kid))


# --- exchange: sim ------------------------------------------------------------------------


@main.command("sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=9100,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="REST port (0: any free port).",
)
@click.option(
    "--ws-port",
    default=None,
    type=click.IntRange(0, 65535),
    help="User-stream port [default: REST port + 1].",
)
@click.option(
    "--accounts",
    default=0,
    show_default=True,
    type=click.IntRange(0, 100_000),
    help="Accounts to create; one JSON line each on stdout before serving.",
)
@click.option("--seed", default=0, show_default=True, help="Seed of prices and ids.")
@click.option(
    "--fill-latency",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds before a MARKET order fills.",
)
@click.option(
    "--weight-limit",
    default=2400,
    show_default=True,
    type=click.IntRange(1),
    help="Request weight per minute per IP before 429.",
)
@click.option(
    "--stream-lifetime",
    default=86400.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds a user-stream connection lives before the server closes it.",
)
@click.option(
    "--starting-balance",
    default="100000",
    show_default=True,
    help="USDT in the wallet of each new account.",
)
@click.option(
    "--ws-attempts",
    default=300,
    show_default=True,
    type=click.IntRange(1),
    help="User-stream handshakes per IP per --ws-attempt-window before 429 (then 418).",
)
@click.option(
    "--ws-attempt-window",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds of the sliding window --ws-attempts counts in.",
)
@click.option(
    "--ws-max-streams",
    default=1024,
    show_default=True,
    type=click.IntRange(1),
    help="listenKeys one user-stream connection may carry.",
)
@click.option(
    "--ws-max-messages",
    default=10,
    show_default=True,
    type=click.IntRange(1),
    help="Incoming messages per second on one connection before it is closed.",
)
def sim_command(
    host: str,
    port: int,
    ws_port: int | None,
    accounts: int,
    seed: int,
    fill_latency: float,
    weight_limit: int,
    stream_lifetime: float,
    starting_balance: str,
    ws_attempts: int,
    ws_attempt_window: float,
    ws_max_streams: int,
    ws_max_messages: int,
) -> None:
    """Run the Binance USDⓈ-M futures simulator (REST + user stream) until interrupted."""
    from tradercoin.exchange.sim.cli import SimOptions, parse_balance, run_sim
    from tradercoin.exchange.sim.connrules import ConnectionLimits

    balance = parse_balance(starting_balance)
    if balance is None:
        fail(f"--starting-balance must be a number of USDT, 0 or more, not {starting_balance!r}")
    rules = ConnectionLimits(ws_attempts, ws_attempt_window, ws_max_streams, ws_max_messages)
    try:
        run_sim(
            SimOptions(
                host,
                port,
                ws_port,
                accounts,
                seed,
                fill_latency,
                weight_limit,
                stream_lifetime,
                rules,
                starting_balance=balance,
            )
        )  # fmt: skip
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        pass


# --- service: serve, poll-rate --------------------------------------------------------------


@main.command()
@serve_options
@config_errors
def serve(**flags: Any) -> None:
    """Run the service: the orders page, REST, /ws, and the order monitor.

    Stops gracefully on Ctrl-C or SIGTERM (within 10 s). On SQLite it runs alone (a second
    instance on the same file refuses to start); on PostgreSQL several instances share the
    users behind a load balancer (docs/cluster.md).
    """
    import trio

    from tradercoin.service import serve_until_signalled
    from tradercoin.store import StoreError
    from tradercoin.store.files import hold_sqlite_file

    resolved = resolve(**flags)
    settings = resolved.settings
    prepare_home(resolved)
    check_egress_address(settings.egress_address)
    click.echo(f"tradercoin: data directory {resolved.home} ({resolved.home_source})")
    click.echo(f"tradercoin: database {resolved.shown('database_url')}")
    note = new_database_note(resolved)
    if note is not None:
        click.echo(f"tradercoin: {note}")
    try:
        with hold_sqlite_file(settings.database_url):
            trio.run(serve_until_signalled, settings)
    except (StoreError, OSError, BaseExceptionGroup) as exc:
        error = _sole_error(exc)
        if isinstance(error, StoreError):
            fail(str(error))
        if isinstance(error, OSError):
            where = f"{settings.host}:{settings.port}"
            fail(f"cannot listen on {where}: {error.strerror or error}; is it taken? try --port")
        raise


def _sole_error(exc: BaseException) -> BaseException:
    """The one exception inside nested single-member exception groups (else ``exc``)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


_URL = click.option(
    "--url",
    envvar="TRADERCOIN_URL",
    default=None,
    help="The running service [env TRADERCOIN_URL; the login's, else http://HOST:PORT].",
)
_TOKEN = click.option(
    "--token",
    envvar="TRADERCOIN_TOKEN",
    default=None,
    help="An operator's token [env TRADERCOIN_TOKEN; default: the one `tradercoin login` kept].",
)
_USER = click.option(
    "--user", "user_id", type=click.IntRange(min=1), required=True, help="User id."
)


def _call_service(
    method: str, url: str | None, path: str, token: str | None, body: Any = None
) -> Any:
    """One request to a running service; exits 1 with the service's error message."""
    import httpx

    url, token = service_access(url, token)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        response = httpx.request(method, url.rstrip("/") + path, headers=headers, json=body)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc}; is `tradercoin serve` running there?")
    try:
        answer = response.json()
    except ValueError:
        fail(f"{url} answered HTTP {response.status_code} without JSON; is it tradercoin?")
    if response.status_code >= 400:
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        fail(f"HTTP {response.status_code}: {error.get('message', 'request failed')}")
    return answer["data"]


def _show_policy(user_id: int, policy: dict[str, Any]) -> None:
    fields = " ".join(f"{k}={v}" for k, v in policy.items())
    click.echo(f"user {user_id}: {fields}")


@main.group("poll-rate")
def poll_rate() -> None:
    """Read or change a user's poll policy on a running service (operators only)."""


@poll_rate.command("get")
@_USER
@_URL
@_TOKEN
@config_errors
def poll_rate_get(user_id: int, url: str | None, token: str | None) -> None:
    """Show a user's poll policy."""
    _show_policy(
        user_id, _call_service("GET", url, f"/api/admin/users/{user_id}/poll-policy", token)
    )


@poll_rate.command("set")
@_USER
@click.option("--interval", default=None, help="Poll interval, e.g. 2s.")
@click.option("--fast-interval", default=None, help="Interval for large orders, e.g. 1s.")
@click.option("--fast-notional", default=None, help="Notional from which an order is large.")
@click.option("--reconcile-interval", default=None, help="Interval while the stream is live.")
@_URL
@_TOKEN
@config_errors
def poll_rate_set(
    user_id: int,
    interval: str | None,
    fast_interval: str | None,
    fast_notional: str | None,
    reconcile_interval: str | None,
    url: str | None,
    token: str | None,
) -> None:
    """Change a user's poll policy (omitted values are kept); applies at the next poll."""
    from tradercoin.config import parse_duration

    body: dict[str, Any] = {}
    for name, value in (
        ("interval", interval),
        ("fast_interval", fast_interval),
        ("reconcile_interval", reconcile_interval),
    ):
        if value is not None:
            body[name] = parse_duration(value, name=f"--{name.replace('_', '-')}")
    if fast_notional is not None:
        body["fast_notional"] = fast_notional
    if not body:
        fail(
            "nothing to set; give --interval, --fast-interval, --fast-notional or "
            "--reconcile-interval",
            2,
        )
    path = f"/api/admin/users/{user_id}/poll-policy"
    _show_policy(user_id, _call_service("PUT", url, path, token, body))


register(main)  # config show, login, logout (cli_ops.py)

if __name__ == "__main__":  # pragma: no cover
    main()
