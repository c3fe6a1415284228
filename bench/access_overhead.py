"""The access-control path alone, in process: what authorisation adds to one Encrypt or
GenerateDataKey (AccessScope, the keyless check, the key decision from the cache, the
fail-closed check), under the default key policy and under bench/policies/twenty-statements.json.

``PYTHONPATH=. python -m bench.access_overhead`` prints microseconds per request; compare them
with the server CPU per request that ``python -m bench`` reports.
"""

from __future__ import annotations

import tempfile
import timeit
from pathlib import Path
from typing import Any

from kms_service.access import Identity, make_identity
from kms_service.access.request import AccessScope
from kms_service.operations.authorization import (
    authorize_key,
    authorize_request,
    require_authorized,
)
from kms_service.operations.context import RequestScope
from kms_service.operations.creation import create_key_record
from kms_service.serving.app import create_app
from kms_service.settings import Settings
from kms_service.store import KeyRecord

TWENTY = Path(__file__).parent / "policies" / "twenty-statements.json"
ACCOUNT = "111122223333"


def measure(
    services: Any, identity: Identity, key: KeyRecord, operation: str, params: dict[str, Any]
) -> float:
    """Best microseconds per request of the access-control path."""

    def one() -> None:
        access = AccessScope(
            identity=identity,
            operation=operation,
            params=params,
            source_ip="127.0.0.1",
            secure_transport=False,
        )
        scope = RequestScope(ACCOUNT, "us-east-1", identity.principal_arn, access)
        authorize_request(services, scope)
        authorize_key(services, scope, key, requested=key.key_id)
        require_authorized(scope)

    one()
    return min(timeit.repeat(one, number=20000, repeat=7)) / 20000 * 1e6


def main() -> None:
    """Print the access-control cost per request for each policy and operation."""
    app = create_app(Settings.from_sources({"data_dir": Path(tempfile.mkdtemp())}, environ={}))
    services = app.extensions["mock_kms.services"]
    base = RequestScope(ACCOUNT, "us-east-1", f"arn:aws:iam::{ACCOUNT}:root")
    identity = make_identity(f"arn:aws:iam::{ACCOUNT}:root")
    for name, policy in (("default", None), ("twenty", TWENTY.read_text())):
        key = create_key_record(services, base, policy=policy)
        requests: dict[str, dict[str, Any]] = {
            "Encrypt": {"KeyId": key.key_id, "Plaintext": b"x" * 32},
            "GenerateDataKey": {"KeyId": key.key_id, "KeySpec": "AES_256"},
        }
        for operation, params in requests.items():
            best = measure(services, identity, key, operation, params)
            print(f"{name:8s} {operation:16s} access-control path: {best:.2f} us/request")
    services.close()


if __name__ == "__main__":
    main()
