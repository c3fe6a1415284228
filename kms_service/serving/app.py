"""The Flask application factory. Nothing reads configuration at import time.

``create_app`` runs in each gunicorn worker after fork (the app is not preloaded), so every
process opens its own SQLite connections and, on the PKCS#11 backend, its own library handle.
The parts it mounts are built by :mod:`kms_service.bootstrap`.
"""

from __future__ import annotations

from flask import Flask

from kms_service.bootstrap import build_authenticator, build_services
from kms_service.serving.operability import install
from kms_service.settings import Settings
from kms_service.wire.blueprint import KmsRequestPath, blueprint


def create_app(settings: Settings) -> Flask:
    """A ready WSGI app for ``settings``. Raises :class:`ConfigurationError`."""
    app = Flask("mock_kms")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["mock_kms.services"] = build_services(settings)
    app.extensions["mock_kms.authenticator"] = build_authenticator(settings)
    app.register_blueprint(blueprint)
    # POST / (every KMS API request) answered without Flask's per-request machinery;
    # everything else, and the S3 endpoint's loopback calls, wrap around this.
    app.wsgi_app = KmsRequestPath(app.wsgi_app, app)  # type: ignore[method-assign]
    if settings.s3_enabled:
        # S3 sits beside the KMS: requests without X-Amz-Target go to it (see s3_service.routing).
        from s3_service.service import mount_s3

        mount_s3(app, settings)
    install(app, settings)  # metrics, audit, faults, dev endpoints: wraps app.wsgi_app last
    # The web console at /console/ (docs/console.md): routed ahead of everything above.
    from kms_service.console import install_console

    install_console(app, settings)
    return app
