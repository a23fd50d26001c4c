"""`make run` installs the runtime only: psycopg (the `postgres` extra) is not there.

A fresh clone's `make run` failed once on `import psycopg` at the top of the cluster
modules, which `tradercoin serve` imports even on SQLite. This runs the imports of `serve`
in a Python where psycopg cannot be imported.
"""

from __future__ import annotations

import subprocess
import sys

BLOCK_PSYCOPG = (
    "import sys; sys.modules['psycopg'] = None; "  # `import psycopg` raises ImportError
    "import tradercoin.cli, tradercoin.service, tradercoin.http.admin, tradercoin.testing; "
    "from tradercoin.cli import main; print('imported')"
)


def test_serve_imports_without_the_postgres_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_PSYCOPG], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "imported"
