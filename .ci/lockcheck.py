"""Fail when pyproject.toml and the locks in requirements/ disagree (offline, a second).

Checks, for each lock:
- every requirement pyproject.toml names for it is pinned there, at a version its range allows;
- every package the lock says comes from pyproject.toml is still required by it (a dependency
  removed from pyproject.toml without `make lock` fails);
- every pin has at least one sha256 hash (--require-hashes would refuse it anyway);
- uv.txt pins uv, bootstrap.txt pins pip, setuptools and wheel and satisfies pyproject's
  [build-system] requires; dev.txt pins each runtime package at run.txt's version.

Run it with the venv's python (`make lock-check`): it needs `packaging`, which the bootstrap
set installs. Exit 0 when they agree, 1 with one line per disagreement.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
FROM_PYPROJECT = "tradercoin (pyproject.toml)"
DEV_EXTRAS = ("postgres", "test", "dev")


class Lock:
    """One pip-compile output: pins, which of them pyproject.toml asked for, their hashes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pins: dict[str, str] = {}
        self.direct: set[str] = set()
        self.hashed: set[str] = set()
        current = ""
        for line in path.read_text().splitlines():
            match = PIN.match(line)
            if match:
                current = canonicalize_name(match.group(1))
                self.pins[current] = match.group(2)
            elif current and "--hash=sha256:" in line:
                self.hashed.add(current)
            elif current and FROM_PYPROJECT in line:
                self.direct.add(current)


def check(lock: Lock, wanted: list[str]) -> list[str]:
    """Disagreements between ``wanted`` (requirement strings) and ``lock``."""
    problems = []
    names = set()
    for text in wanted:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        names.add(name)
        version = lock.pins.get(name)
        if version is None:
            problems.append(f"{lock.path.name}: {req.name} is required ({text}) but not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{lock.path.name}: {req.name}=={version} is outside {text!r}")
    for name in sorted(lock.direct - names):
        problems.append(f"{lock.path.name}: {name} is pinned for pyproject.toml, no longer in it")
    for name in sorted(set(lock.pins) - lock.hashed):
        problems.append(f"{lock.path.name}: {name} has no sha256 hash")
    return problems


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = list(project["project"]["dependencies"])
    extras = project["project"].get("optional-dependencies", {})
    dev_wanted = runtime + [r for extra in DEV_EXTRAS for r in extras.get(extra, [])]
    names = ("uv.txt", "bootstrap.txt", "run.txt", "dev.txt")
    missing = [name for name in names if not (REQS / name).exists()]
    if missing:
        print(f"lockcheck: missing {', '.join(missing)} in requirements/; run `make lock`")
        return 1
    uv, bootstrap, run, dev = (Lock(REQS / name) for name in names)
    problems = check(run, runtime) + check(dev, dev_wanted)
    problems += check(uv, ["uv"]) + check(bootstrap, ["pip", "setuptools", "wheel"])
    for text in project["build-system"]["requires"]:
        req = Requirement(text)
        version = bootstrap.pins.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            problems.append(f"bootstrap.txt: build requirement {text!r} is not satisfied")
    for name, version in run.pins.items():
        if dev.pins.get(name) != version:
            problems.append(f"dev.txt: {name}=={dev.pins.get(name)} is not run.txt's {version}")
    for problem in problems:
        print(f"lockcheck: {problem}")
    if problems:
        print("lockcheck: pyproject.toml and requirements/*.txt disagree; run `make lock`")
        return 1
    counts = f"{len(run.pins)} runtime, {len(dev.pins)} dev pins"
    print(f"lockcheck: pyproject.toml and the locks agree ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
