"""Reconciling the seed file when the server starts, in the gunicorn master before it forks.

The file is parsed in the master (so its errors are one line on stderr before anything
starts), and applied in a forked child that opens the store and the backends and exits: the
master itself never loads a PKCS#11 module nor keeps a database connection across the fork.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Callable
from typing import Any

from kms_service.domain.errors import ConfigurationError
from kms_service.seeding import SeedError, load_seed_file
from kms_service.seeding.apply import SeedReport, apply_seed
from kms_service.settings import Settings

log = logging.getLogger("mock_kms.seed")


def reconcile_seed_at_start(settings: Settings) -> SeedReport:
    """Apply ``settings.seed`` to the data directory. Raises :class:`ConfigurationError`."""
    assert settings.seed is not None
    try:
        document = load_seed_file(settings.seed)
    except SeedError as exc:
        raise ConfigurationError(f"seed file {exc}") from None

    def apply() -> dict[str, Any]:
        from kms_service.bootstrap import build_services
        from kms_service.operations.shared_settings import attach_shared_settings

        services = build_services(settings)
        try:
            attach_shared_settings(services)
            return apply_seed(services, document).as_json()
        finally:
            services.close()

    answer = run_in_child(apply)
    report = SeedReport(changes=list(answer["changes"]), warnings=list(answer["warnings"]))
    for warning in report.warnings:
        log.warning("seed %s", warning)
    for change in report.changes:
        log.info("seed %s: %s", settings.seed, change)
    if not report.changes:
        log.info("seed %s: the store already matches, nothing to do", settings.seed)
    return report


def run_in_child(function: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``function`` in a forked child and return its JSON-able result.

    Raises :class:`ConfigurationError` with the child's error (a :class:`SeedError` names the
    line and field).
    """
    if not hasattr(os, "fork"):  # pragma: no cover - not on Linux/macOS
        return function()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child (its result is what is tested)
        os.close(read_fd)
        try:
            payload: dict[str, Any] = {"ok": True, "result": function()}
        except SeedError as exc:
            payload = {"ok": False, "error": f"seed file {exc}"}
        except ConfigurationError as exc:
            payload = {"ok": False, "error": f"cannot apply the seed file: {exc}"}
        except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
            payload = {
                "ok": False,
                "error": f"applying the seed file failed: {exc.__class__.__name__}: {exc}",
                "trace": traceback.format_exc(),
            }
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(json.dumps(payload).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    try:
        payload = json.loads(data)
    except ValueError:
        raise ConfigurationError(
            f"applying the seed file failed (child exit status {status})"
        ) from None
    if not payload.get("ok"):
        if payload.get("trace"):
            log.error("seed child failed:\n%s", payload["trace"])
        raise ConfigurationError(str(payload["error"]))
    result: dict[str, Any] = payload["result"]
    return result
