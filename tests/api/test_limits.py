"""Hostile input over real HTTP: template alias bombs and deep nesting get a 400 and leave the server responsive;
bodies over ``api_max_body_bytes`` get a 413 while they stream in, chunked or not, and nothing is stored."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.test_routes import counts, error_of
from tests.unit.test_yaml_safety import billion_laughs

LIMIT = 1_048_576  # the default api_max_body_bytes, which the api_url server runs with
LINEAR = {"namespace": "linear_workflow", "name": "mathematical_sequence", "version": "1.0.0"}


@pytest.mark.parametrize("as_yaml_body", [False, True], ids=["json", "application/yaml"])
@pytest.mark.parametrize(
    ("text", "words"),
    [(billion_laughs(), "alias"), ("[" * 1000, "nesting deeper than 100"), ("a: &a [*a]\n", "recursive alias")],
    ids=["alias-bomb", "deep-nesting", "recursive-alias"],
)
def test_hostile_templates_get_400_and_the_server_keeps_answering(
    http: httpx.Client, text: str, words: str, as_yaml_body: bool
) -> None:
    if as_yaml_body:
        response = http.post("/v1/templates/validate", content=text, headers={"content-type": "application/yaml"})
    else:
        response = http.post("/v1/templates/validate", json={"yaml": text})
    error = error_of(response, 400)
    assert error["code"] == "BAD_REQUEST"
    assert words in error["message"] and error["message"].startswith("request body: ")
    assert http.get("/health").json()["status"] == "healthy"


def test_an_ordinary_invalid_template_is_still_a_normal_answer(http: httpx.Client) -> None:
    response = http.post("/v1/templates/validate", json={"yaml": "name: t\nsteps: []\n"})
    assert response.status_code == 200
    assert response.json()["valid"] is False


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"namespace": "linear_workflow", "name": "mathematical_sequence", "context": {"blob": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}}'


def test_a_chunked_body_over_the_limit_is_413_and_nothing_is_stored(http: httpx.Client, db_url: str) -> None:
    before = counts(db_url)
    response = http.post("/v1/tasks", content=_chunks(LIMIT + 256 * 1024), headers={"content-type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert error_of(response, 413)["code"] == "PAYLOAD_TOO_LARGE"
    assert counts(db_url) == before
    assert http.get("/health").status_code == 200


def test_a_chunked_body_under_the_limit_still_works(http: httpx.Client, db_url: str) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"namespace": "linear_workflow", "name": "mathematical_sequence", '
        yield b'"context": {"even_number": 6}}'

    response = http.post("/v1/tasks", content=body(), headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text


def _status(sock: socket.socket) -> int:
    received = b""
    while b"\r\n" not in received:
        data = sock.recv(4096)
        if not data:
            break
        received += data
    return int(received.split(b"\r\n", 1)[0].split()[1])  # HTTP/1.1 413 <phrase>


def test_413_comes_while_the_body_is_still_streaming(api_url: str, db_url: str) -> None:
    """The client stops after passing the limit without ending the body: the answer must not wait for the end."""
    before = counts(db_url)
    address = urlsplit(api_url)
    with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
        sock.sendall(
            b"POST /v1/tasks HTTP/1.1\r\nHost: tests\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for chunk in _chunks(LIMIT + 128 * 1024):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        # no terminating zero-length chunk: the body never ends
        assert _status(sock) == 413
    assert counts(db_url) == before


def test_a_declared_length_over_the_limit_is_413_before_the_body_is_sent(api_url: str) -> None:
    address = urlsplit(api_url)
    with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
        sock.sendall(
            b"POST /v1/tasks HTTP/1.1\r\nHost: tests\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {LIMIT + 1}\r\n\r\n".encode()
        )
        assert _status(sock) == 413
