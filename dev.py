#!/usr/bin/env python3
"""The project's two commands, runnable on a fresh machine that has only Python 3.11+.

    python3 dev.py demo    # install into .venv, then run the demo on the embedded PostgreSQL
    python3 dev.py test    # install into .venv, then ruff, mypy (strict) and the whole pytest suite

`test` also makes sure Debian's `chromium` is there for the web console's browser tests (tests/ui): when
/usr/bin/chromium is missing and this runs as root, it is installed with apt-get; if that fails, those tests skip
with a message naming the missing browser.

Only the standard library is used here: this script creates the virtualenv, installs the project with the
pinned versions of `constraints.txt`, and re-installs only when `pyproject.toml` or the constraints change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".tasker-install-stamp"
CHROMIUM = Path("/usr/bin/chromium")


def _install_fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_installed() -> None:
    """Create .venv and install the project (editable, with dev extras) pinned by constraints.txt."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must run on old Pythons to say so
        sys.exit(f"Tasker needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("creating virtualenv .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    print("installing tasker and its pinned dependencies into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(fingerprint)


def ensure_chromium() -> None:
    """Install Debian's chromium for the UI tests (Playwright cannot download its own browsers on these machines)."""
    if CHROMIUM.exists():
        return
    if os.name != "posix" or os.geteuid() != 0:
        print(f"{CHROMIUM} is missing and this is not root: the web console tests (tests/ui) will skip", flush=True)
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    for command in (["apt-get", "update", "-q"], install):
        print("+", " ".join(command), flush=True)
        if subprocess.run(command, env=env).returncode != 0:
            print(f"could not install chromium: the web console tests (tests/ui) will skip ({CHROMIUM} missing)")
            return


def run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    result = subprocess.run(list(args), cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def cmd_demo(extra: list[str]) -> None:
    run(str(BIN / "tasker"), "demo", *extra)


def cmd_test(extra: list[str]) -> None:
    ensure_chromium()
    run(str(BIN / "ruff"), "check", "src", "tests", "bench", "examples", "dev.py")
    run(str(BIN / "mypy"))
    workers = os.environ.get("TASKER_TEST_WORKERS", "auto")
    run(str(BIN / "python"), "-m", "pytest", "-n", workers, "--dist", "loadgroup", *extra)


COMMANDS = {"demo": cmd_demo, "test": cmd_test, "install": lambda _extra: None}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 dev.py {{{'|'.join(COMMANDS)}}} [args...]")
    ensure_installed()
    COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
