"""`.ci/lockcheck.py` (run first by `.ci/run`) passes on the repository and fails, naming the
package, when pyproject.toml and the locks disagree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _copy(tmp_path: Path) -> Path:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "lockcheck.py", tmp_path / ".ci")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    script = root / ".ci" / "lockcheck.py"
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True)


def test_the_repository_agrees() -> None:
    result = _check(ROOT)
    assert result.returncode == 0, result.stdout


def test_a_new_dependency_without_make_lock_fails(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"click>=8.1",', '"click>=8.1", "rich>=13",')
    )
    result = _check(root)
    assert result.returncode == 1 and "rich is required (rich>=13) but not pinned" in result.stdout


def test_a_range_the_pin_leaves_fails(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"trio>=0.27"', '"trio>=99"'))
    result = _check(root)
    assert result.returncode == 1 and "run.txt: trio==" in result.stdout


def test_a_removed_dependency_and_a_missing_hash_fail(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"prometheus-client>=0.20",', ""))
    run = root / "requirements" / "run.txt"
    lines = run.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("sniffio=="))
    lines[at] = lines[at].rstrip(" \\")
    lines = [
        line for i, line in enumerate(lines) if not (i > at and "--hash" in line and i < at + 4)
    ]
    run.write_text("\n".join(lines) + "\n")
    result = _check(root)
    assert result.returncode == 1
    assert "prometheus-client is pinned for pyproject.toml, no longer in it" in result.stdout
    assert "run.txt: sniffio has no sha256 hash" in result.stdout
