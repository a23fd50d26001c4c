"""`make run` installs the runtime only: psycopg (the `postgres` extra) is not there.

A fresh clone's `make run` failed once on `import psycopg` at the top of the cluster
modules, which `tradercoin serve` imports even on SQLite. This runs the imports of `serve`
in a Python where psycopg cannot be imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WITHOUT_PSYCOPG = "import sys; sys.modules['psycopg'] = None; "  # `import psycopg` fails


def _python_without_psycopg(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG + code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_serve_imports_without_the_postgres_extra() -> None:
    done = _python_without_psycopg(
        "import tradercoin.cli, tradercoin.service, tradercoin.http.admin, tradercoin.testing; "
        "from tradercoin.cli import main; print('imported')"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "imported"


def test_a_postgresql_url_without_psycopg_is_one_sentence(tmp_path: Path) -> None:
    """Without the extra, a PostgreSQL URL says what to install (no traceback)."""
    done = _python_without_psycopg(
        "from tradercoin.cli import main; sys.argv = ['tradercoin', 'db', 'upgrade']; main()",
        TRADERCOIN_HOME=str(tmp_path),
        TRADERCOIN_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none",
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "install tradercoin's postgres extra" in done.stderr
