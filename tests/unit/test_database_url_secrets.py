"""A database URL's password never shows in an error: settings validation, connecting, the pool, the CLI.

libpq quotes the whole URL when it cannot parse one ("... in URI: "postgresql://u:s3cret@[bad""), and psycopg
passes that on; every place that reports such an error must take the password out first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from pydantic import ValidationError

from tasker.config import Settings, load_settings, redact_secrets
from tasker.errors import TaskerError
from tasker.store.db import connect, create_pool

SECRET = "s3cret"
MALFORMED = [
    f"postgresql://u:{SECRET}@[bad",
    f"postgresql://u:{SECRET}@host:notaport/db",
    f"postgres://u:{SECRET}@[::1/db",
    f"host=127.0.0.1 password={SECRET} port=abc",
    f"host=127.0.0.1 password='{SECRET}",
    f"postgresql://u@127.0.0.1/db?password={SECRET}&nonsense=1",
]


# nothing listens on port 1 (tcpmux) of the loopback interface: connecting is refused at once
UNREACHABLE = [
    f"postgresql://u:{SECRET}@127.0.0.1:1/db",
    f"postgresql://u:{SECRET}@127.0.0.1:1/db?sslmode=bogus",
    f"host=127.0.0.1 port=1 user=u password={SECRET} dbname=db",
    f"postgresql://u:{SECRET}@127.0.0.1:1/db?connect_timeout=bogus",
]


def everything_said(exc: BaseException) -> str:
    """The message and the whole printed traceback, causes and contexts included."""
    return str(exc) + "".join(traceback.format_exception(exc))


@pytest.mark.parametrize("url", MALFORMED)
def test_settings_refuse_a_malformed_url_without_its_password(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(database_url=url)
    said = everything_said(caught.value)
    assert SECRET not in said
    assert "database_url" in said


def test_the_environment_variable_is_refused_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKER_DATABASE_URL", MALFORMED[0])
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert SECRET not in everything_said(caught.value)
    assert "IPv6" in str(caught.value)  # the reason is kept, only the password is taken out


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:{SECRET}@localhost:5432/db",
        "postgresql:///tasker?host=/var/run/postgresql",
        f"host=localhost password={SECRET} dbname=db",
        "postgresql://u:p%40ss%3Aword@[::1]:5432/db",
    ],
)
def test_well_formed_urls_are_accepted(url: str) -> None:
    settings = Settings(database_url=url)
    assert settings.database_url is not None and settings.database_url.get_secret_value() == url


@pytest.mark.parametrize("url", MALFORMED)
async def test_connect_to_a_malformed_url_does_not_say_the_password(url: str) -> None:
    with pytest.raises(TaskerError) as caught:
        await connect(url)
    assert SECRET not in everything_said(caught.value)


async def test_connect_to_a_closed_port_does_not_say_the_password() -> None:
    for url in UNREACHABLE:
        with pytest.raises(TaskerError) as caught:
            await connect(url)
        said = everything_said(caught.value)
        assert SECRET not in said, url
        assert "cannot connect to PostgreSQL" in said


@pytest.mark.parametrize("url", MALFORMED)
def test_a_pool_on_a_malformed_url_is_refused_without_the_password(url: str) -> None:
    with pytest.raises(TaskerError) as caught:
        create_pool(url)
    assert SECRET not in everything_said(caught.value)


def test_redact_secrets_covers_the_encoded_forms() -> None:
    url = "postgresql://u:p%40ss@host/db"
    assert (
        redact_secrets(f"failed for {url} (password p@ss)", url)
        == "failed for postgresql://u:***@host/db (password ***)"
    )
    assert redact_secrets("nothing here", None) == "nothing here"
    assert "s3" not in redact_secrets(f"password='{SECRET}' host=x", f"password='{SECRET}' host=x")


@pytest.mark.parametrize("url", [MALFORMED[0], *UNREACHABLE[:2]])
@pytest.mark.parametrize("command", [["task", "list"], ["db", "migrate"], ["config", "show"], ["health"]])
def test_cli_output_never_shows_the_password(url: str, command: list[str], tmp_path: Path) -> None:
    tasker = Path(sys.executable).with_name("tasker")
    env = {**os.environ, "TASKER_DATABASE_URL": url, "TASKER_DATA_DIR": str(tmp_path)}
    env.pop("TASKER_API_URL", None)
    done = subprocess.run(
        [str(tasker), *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert SECRET not in done.stdout + done.stderr, done.stdout + done.stderr
    if url == MALFORMED[0] and command != ["config", "show"]:
        # a malformed URL is a configuration error: one line, no traceback
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("error (CONFIGURATION): invalid configuration: database_url"), done.stderr
