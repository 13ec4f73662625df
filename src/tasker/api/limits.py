"""The request body limit, enforced while the body streams in.

Checking ``len(await request.body())`` only after reading lets a chunked body (no ``Content-Length``) fill memory
first; this ASGI middleware counts the bytes of every ``http.request`` message instead and refuses the request as
soon as the count passes ``api_max_body_bytes``, or at once when a declared ``Content-Length`` already does.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasker.api.errors import ApiError, error_response


class BodyTooLargeError(ApiError):
    """Raised from ``receive`` when the body passes the limit; the API's error handler renders it as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "PAYLOAD_TOO_LARGE", f"request body over {limit} bytes")


class BodyLimit:
    """Pure ASGI middleware (not ``BaseHTTPMiddleware``, which would buffer): 413 once a body passes ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLargeError:
            if started:  # the app answered already and cannot be answered for again
                raise
            await self._refuse(scope, receive, send)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit():
                return int(value)
        return 0

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLargeError(self.max_bytes)
        # no "Connection: close": the server then discards the rest of the body instead of resetting the
        # connection under a client that is still sending, which could lose the 413 before the client reads it
        response = error_response(error.status, error.code, error.message)
        await response(scope, receive, send)
