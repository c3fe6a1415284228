"""The console's session cookie, kept away from the KMS and S3 paths.

Flask opens a session for every request it serves, KMS requests included. Signed cookie
sessions through ``app.secret_key`` would cost every ``Encrypt`` a serializer and a cookie
lookup, so the console does not set ``app.secret_key``: this interface signs with the
console's own key and opens sessions only under ``/console``; everywhere else Flask gets its
usual null session at once, exactly as before the console existed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer

if TYPE_CHECKING:
    from flask import Flask, Request

#: Sessions end when the browser closes and, since the key is derived per start, at restart.
PATH_PREFIX = "/console"


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions for ``/console`` only, under a key of their own."""

    salt = "mock-kms-console-session"

    def __init__(self, key: bytes) -> None:
        self._serializer = URLSafeTimedSerializer(
            key,
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={
                "key_derivation": self.key_derivation,
                "digest_method": self.digest_method,
            },
        )

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        return self._serializer

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(PATH_PREFIX):
            return None  # Flask falls back to a null session: no cookie work at all
        return super().open_session(app, request)
