"""``tradercoin``: the command line.

Each command validates its settings once, runs, and exits 0 on success, 1 when the work
failed, 2 on bad usage or configuration (one line on stderr says what and how to fix it).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tradercoin.config import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> None:
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
@click.option("--log-level", default="INFO", show_default=True, help="Logging level.")
def main(log_level: str) -> None:
    """tradercoin: watch exchange orders and push every change to the people who placed them."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


# --- store: db, users, keys ---------------------------------------------------------------

# --- exchange: sim ------------------------------------------------------------------------

# --- service: serve, poll-rate --------------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    main()
