"""CI's dependency audit: pip-audit over the installed environment, never a silent pass.

pip-audit asks PyPI's JSON API for each installed version (``/pypi/NAME/VERSION/json``) and,
when it cannot, SKIPS the package and still reports "No known vulnerabilities found". This
script reads pip-audit's JSON report instead and:

1. fails (exit 1) on any known vulnerability;
2. audits each skipped package through the project endpoint (``/pypi/NAME/json``), whose
   ``vulnerabilities`` describe the newest release: valid for us when that is the version we
   have installed;
3. fails (exit 1) if a package is not on PyPI at all (nothing can vouch for it);
4. does NOT fail, but prints "NOT AUDITED" with the list, for what the service could not
   answer: PyPI unreachable (a connection error or timeout, told apart by a probe), or an
   older release for which PyPI (or the proxy in front of it) serves no per-version data --
   an outage of the vulnerability service is not a finding about our pins. Set
   TRADERCOIN_AUDIT_REQUIRED=1 to fail in those cases too.

Run with the venv's interpreter: ``.venv/bin/python .ci/audit.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import httpx

PYPI = "https://pypi.org/pypi"
TIMEOUT = 20.0
OURS = "tradercoin"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_audit() -> dict:
    """pip-audit's JSON report of the environment (exit status 1 only means "vulns found")."""
    exe = Path(sys.executable).with_name("pip-audit")
    command = [str(exe), "--local", "--skip-editable", "--progress-spinner", "off", "-f", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    if done.returncode not in (0, 1) or not done.stdout.strip():
        sys.exit(f"audit: pip-audit failed (status {done.returncode}): {done.stderr[-2000:]}")
    report: dict = json.loads(done.stdout)
    return report


def pypi_reachable(client: httpx.Client) -> str | None:
    """``None`` when PyPI answers at all, else the network error (DNS, refused, timeout)."""
    try:
        client.get(f"{PYPI}/pip/json")
    except httpx.TransportError as error:
        return f"{type(error).__name__}: {error}"
    return None


def audit_latest(client: httpx.Client, name: str, version: str) -> list[str] | str:
    """The vulnerability ids of ``name`` if ``version`` is its newest release; otherwise why
    it cannot be audited ("unknown": not on PyPI; "older": no per-version data)."""
    response = client.get(f"{PYPI}/{name}/json")
    if response.status_code == 404:
        return "unknown"
    response.raise_for_status()
    data = response.json()
    if data["info"]["version"] != version:
        return "older"
    return [v["id"] for v in data.get("vulnerabilities") or []]


def main() -> int:
    report = pip_audit()
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    deps = [d for d in report["dependencies"] if canonical(d["name"]) != OURS]
    found = {d["name"]: [v["id"] for v in d["vulns"]] for d in deps if d.get("vulns")}
    skipped = sorted(d["name"] for d in deps if d.get("skip_reason"))
    why: dict[str, list[str]] = {"unknown": [], "older": []}
    required = os.environ.get("TRADERCOIN_AUDIT_REQUIRED") == "1"
    with httpx.Client(timeout=TIMEOUT, follow_redirects=True) as client:
        outage = pypi_reachable(client) if skipped else None
        if outage is not None:
            print(f"audit: NOT AUDITED: PyPI is unreachable ({outage})", file=sys.stderr)
            return 1 if required else 0
        for name in skipped:
            version = installed.get(canonical(name), "?")
            result = audit_latest(client, name, version)
            if isinstance(result, str):
                why[result].append(f"{name} {version}")
            elif result:
                found[name] = result
    unaudited = len(why["unknown"]) + len(why["older"])
    print(
        f"audit: {len(deps) - unaudited} of {len(deps)} packages audited "
        f"({len(skipped)} through /pypi/NAME/json: PyPI served no per-version data)"
    )
    for name, ids in sorted(found.items()):
        print(f"audit: VULNERABLE {name} {installed.get(canonical(name))}: {', '.join(ids)}")
    if why["older"]:
        print(
            "audit: NOT AUDITED (older than the newest release; no per-version data "
            f"reachable): {', '.join(why['older'])}"
        )
    if why["unknown"]:
        print(f"audit: not on PyPI, cannot be audited: {', '.join(why['unknown'])}")
    return 1 if found or why["unknown"] or (required and why["older"]) else 0


if __name__ == "__main__":
    sys.exit(main())
