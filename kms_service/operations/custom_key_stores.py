"""The custom key store operations, for AWS CloudHSM-type key stores whose "cluster" is a
configured PKCS#11 token: CreateCustomKeyStore, DescribeCustomKeyStores,
ConnectCustomKeyStore, DisconnectCustomKeyStore, UpdateCustomKeyStore, DeleteCustomKeyStore,
and the parts of CreateKey, GenerateRandom and DescribeKey that concern key stores.

Rules, error codes and sources: docs/custom-key-stores.md.
"""

from __future__ import annotations

import secrets
from typing import Any

from backends.base import BackendError
from kms_service.domain.errors import (
    CloudHsmClusterInUseException,
    CloudHsmClusterNotFoundException,
    CustomKeyStoreHasCMKsException,
    CustomKeyStoreInvalidStateException,
    CustomKeyStoreNameInUseException,
    CustomKeyStoreNotFoundException,
    KeyUnavailableException,
    LimitExceededException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_service.key_stores.clusters import (
    DEFAULT_CLUSTER_ID,
    DEFAULT_KEY_STORE_ID,
    KEY_STORE_PREFIX,
)
from kms_service.key_stores.connection import check_connection
from kms_service.key_stores.registry import (
    CONNECTED,
    CONNECTING,
    DISCONNECTED,
    FAILED,
    KeyStoreBackends,
    store_id_of_backend,
)
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.pagination import decode_marker, encode_marker, page_limit
from kms_service.store import KeyRecord, KeyStoreRecord
from local_secrets.key_store_passwords import PasswordUnwrapError, wrap_password

Request = dict[str, Any]
Response = dict[str, Any]

#: AWS's quota of custom key stores per account and Region.
KEY_STORES_PER_REGION = 10
_CLOUDHSM = "AWS_CLOUDHSM"
_XKS_MEMBERS = (
    "XksProxyUriEndpoint",
    "XksProxyUriPath",
    "XksProxyVpcEndpointServiceName",
    "XksProxyVpcEndpointServiceOwner",
    "XksProxyAuthenticationCredential",
    "XksProxyConnectivity",
)
_XKS_REFUSAL = (
    "External key stores (EXTERNAL_KEY_STORE) are not supported by mock-kms; it offers "
    "AWS_CLOUDHSM key stores backed by PKCS#11 tokens."
)


def _registry(services: Services) -> KeyStoreBackends:
    registry = services.key_stores
    if not isinstance(registry, KeyStoreBackends):
        raise UnsupportedOperationException("Custom key stores are not enabled in this process.")
    return registry


def _find(services: Services, scope: RequestScope, store_id: str) -> KeyStoreRecord:
    """The key store ``store_id`` of the caller's account and region (or the default one).
    Raises :class:`CustomKeyStoreNotFoundException`."""
    record = services.store.get_key_store(store_id)
    if record is None or not _visible(record, scope):
        raise CustomKeyStoreNotFoundException(f"Custom key store {store_id} does not exist.")
    if record.store_id == DEFAULT_KEY_STORE_ID and services.settings.backend != "pkcs11":
        raise CustomKeyStoreNotFoundException(f"Custom key store {store_id} does not exist.")
    return record


def _visible(record: KeyStoreRecord, scope: RequestScope) -> bool:
    return (record.account_id, record.region) in (("", ""), (scope.account_id, scope.region))


def _reload(services: Services, scope: RequestScope, store_id: str) -> KeyStoreRecord:
    """Re-read inside a write transaction, so a check and its change see one state."""
    return _find(services, scope, store_id)


def _require_not_default(record: KeyStoreRecord, action: str) -> None:
    if record.store_id == DEFAULT_KEY_STORE_ID:
        raise UnsupportedOperationException(
            f"{DEFAULT_KEY_STORE_ID} is the default key store of this mock-kms, configured by "
            f"PKCS11_MODULE, PKCS11_TOKEN_LABEL and PKCS11_PIN; it cannot be {action}."
        )


def _require_cluster(services: Services, cluster_id: str) -> None:
    if cluster_id not in _registry(services).clusters:
        raise CloudHsmClusterNotFoundException(
            f"KMS cannot find the CloudHSM cluster with the specified cluster ID {cluster_id}."
            " Retry the request with a different cluster ID."
        )


def _require_cluster_free(
    services: Services, scope: RequestScope, cluster_id: str, store_id: str | None
) -> None:
    for other in services.store.key_stores(scope.account_id, scope.region):
        if other.cluster_id == cluster_id and other.store_id != store_id:
            raise CloudHsmClusterInUseException(
                f"The CloudHSM cluster {cluster_id} is already associated with the custom "
                f"key store {other.store_id}."
            )


def _require_name_free(
    services: Services, scope: RequestScope, name: str, store_id: str | None
) -> None:
    for other in services.store.key_stores(scope.account_id, scope.region):
        if other.name == name and other.store_id != store_id:
            raise CustomKeyStoreNameInUseException(
                f"A custom key store with name {name} already exists."
            )


def _refuse_xks(request: Request) -> None:
    if request.get("CustomKeyStoreType") == "EXTERNAL_KEY_STORE" or any(
        request.get(member) is not None for member in _XKS_MEMBERS
    ):
        raise UnsupportedOperationException(_XKS_REFUSAL)


def create_custom_key_store(services: Services, scope: RequestScope, request: Request) -> Response:
    """CreateCustomKeyStore (AWS_CLOUDHSM): the new store starts DISCONNECTED, as on AWS."""
    _refuse_xks(request)
    for member in ("CloudHsmClusterId", "TrustAnchorCertificate", "KeyStorePassword"):
        if not request.get(member):
            raise ValidationException(
                f"{member} is required when creating a custom key store of type {_CLOUDHSM}."
            )
    name = str(request["CustomKeyStoreName"])
    cluster_id = str(request["CloudHsmClusterId"])
    _require_cluster(services, cluster_id)
    store_id = KEY_STORE_PREFIX + secrets.token_hex(9)[:17]
    nonce, wrapped = wrap_password(_root_key(services), store_id, str(request["KeyStorePassword"]))
    record = KeyStoreRecord(
        store_id=store_id,
        account_id=scope.account_id,
        region=scope.region,
        name=name,
        store_type=_CLOUDHSM,
        cluster_id=cluster_id,
        trust_anchor=str(request["TrustAnchorCertificate"]),
        password_nonce=nonce,
        password_wrapped=wrapped,
        connection_state=DISCONNECTED,
        connection_error=None,
        connection_epoch=0,
        creation_date=services.clock.now(),
    )
    with services.store.write():
        _require_name_free(services, scope, name, None)
        _require_cluster_free(services, scope, cluster_id, None)
        own = [
            other
            for other in services.store.key_stores(scope.account_id, scope.region)
            if other.account_id
        ]
        if len(own) >= KEY_STORES_PER_REGION:
            raise LimitExceededException(
                f"An account can have at most {KEY_STORES_PER_REGION} custom key stores"
                " in each Region."
            )
        services.store.insert_key_store(record)
    return {"CustomKeyStoreId": store_id}


def _root_key(services: Services) -> bytes:
    return _registry(services).root_key


def describe_custom_key_stores(
    services: Services, scope: RequestScope, request: Request
) -> Response:
    """DescribeCustomKeyStores: all of the account's stores (and the default one) by id, or
    the one named by ``CustomKeyStoreId`` or ``CustomKeyStoreName``; paginated."""
    store_id = request.get("CustomKeyStoreId")
    name = request.get("CustomKeyStoreName")
    if store_id is not None and name is not None:
        raise ValidationException(
            "You can specify either the CustomKeyStoreId or the CustomKeyStoreName parameter,"
            " but not both."
        )
    records = [
        record
        for record in services.store.key_stores(scope.account_id, scope.region)
        if record.store_id != DEFAULT_KEY_STORE_ID or services.settings.backend == "pkcs11"
    ]
    if store_id is not None:
        records = [record for record in records if record.store_id == store_id]
        if not records:
            raise CustomKeyStoreNotFoundException(f"Custom key store {store_id} does not exist.")
    if name is not None:
        records = [record for record in records if record.name == name]
        if not records:
            raise CustomKeyStoreNotFoundException(
                f"Custom key store with name {name} does not exist."
            )
    limit = page_limit(request, default=100, maximum=1000)
    after = decode_marker(request.get("Marker"))
    if after is not None:
        records = [record for record in records if record.store_id > after]
    shown = records[:limit]
    result: Response = {"CustomKeyStores": [_entry(record) for record in shown]}
    if len(records) > limit and shown:
        result["NextMarker"] = encode_marker(shown[-1].store_id)
        result["Truncated"] = True
    else:
        result["Truncated"] = False
    return result


def _entry(record: KeyStoreRecord) -> dict[str, Any]:
    """A ``CustomKeyStoresListEntry``: never the password."""
    entry: dict[str, Any] = {
        "CustomKeyStoreId": record.store_id,
        "CustomKeyStoreName": record.name,
        "CloudHsmClusterId": record.cluster_id,
        "ConnectionState": record.connection_state,
        "CreationDate": record.creation_date,
        "CustomKeyStoreType": record.store_type,
    }
    if record.trust_anchor:
        entry["TrustAnchorCertificate"] = record.trust_anchor
    if record.connection_state == FAILED and record.connection_error:
        entry["ConnectionErrorCode"] = record.connection_error
    return entry


def connect_custom_key_store(services: Services, scope: RequestScope, request: Request) -> None:
    """ConnectCustomKeyStore: DISCONNECTED → CONNECTING → CONNECTED, or FAILED with a
    ``ConnectionErrorCode``. The token is checked by this request (in a child process);
    every other worker and host sees CONNECTING meanwhile, then the outcome."""
    store_id = str(request["CustomKeyStoreId"])
    with services.store.write():
        record = _reload(services, scope, store_id)
        if record.connection_state in (FAILED, "DISCONNECTING"):
            raise CustomKeyStoreInvalidStateException(
                f"Custom key store {store_id} is in the {record.connection_state} state. To"
                " reconnect a custom key store in a FAILED state, disconnect it"
                " (DisconnectCustomKeyStore), then connect it (ConnectCustomKeyStore)."
            )
        if record.connection_state in (CONNECTED, CONNECTING):
            return None
        epoch = record.connection_epoch + 1
        services.store.update_key_store(
            store_id, connection_state=CONNECTING, connection_error=None, connection_epoch=epoch
        )
    error = _check(services, record)
    with services.store.write():
        current = services.store.get_key_store(store_id)
        if (
            current is not None
            and current.connection_state == CONNECTING
            and current.connection_epoch == epoch
        ):
            services.store.update_key_store(
                store_id,
                connection_state=FAILED if error else CONNECTED,
                connection_error=error,
            )
    return None


def _check(services: Services, record: KeyStoreRecord) -> str | None:
    """None if the store's token accepts its password, else the ConnectionErrorCode."""
    registry = _registry(services)
    settings = services.settings
    if record.store_id == DEFAULT_KEY_STORE_ID:
        from kms_service.key_stores.clusters import ClusterToken

        if not settings.pkcs11_module or not settings.pkcs11_token_label:
            return "CLUSTER_NOT_FOUND"
        try:
            from backends.pkcs11_session import Pkcs11ConfigError, resolve_pin

            pin = resolve_pin(
                settings.pkcs11_pin, settings.pkcs11_pin_file, settings.pkcs11_token_label
            )
        except Pkcs11ConfigError:
            return "INVALID_CREDENTIALS"
        cluster = ClusterToken(
            DEFAULT_CLUSTER_ID, settings.pkcs11_module, settings.pkcs11_token_label
        )
        return check_connection(record.store_id, cluster, pin, registry.lock_dir)
    try:
        pin = registry.password(record)
    except PasswordUnwrapError:
        return "INTERNAL_ERROR"
    return check_connection(
        record.store_id, registry.clusters.get(record.cluster_id), pin, registry.lock_dir
    )


def disconnect_custom_key_store(services: Services, scope: RequestScope, request: Request) -> None:
    """DisconnectCustomKeyStore: any state but DISCONNECTED → DISCONNECTED. Its keys turn
    Unavailable at once; each worker closes its session on the token at its next use."""
    store_id = str(request["CustomKeyStoreId"])
    with services.store.write():
        record = _reload(services, scope, store_id)
        if record.connection_state in (DISCONNECTED, "DISCONNECTING"):
            raise CustomKeyStoreInvalidStateException(
                f"Custom key store {store_id} is already {record.connection_state}."
            )
        services.store.update_key_store(
            store_id, connection_state=DISCONNECTED, connection_error=None
        )
    _registry(services).drop(store_id)
    return None


def update_custom_key_store(services: Services, scope: RequestScope, request: Request) -> None:
    """UpdateCustomKeyStore: a new name (also while CONNECTED), password or cluster id (only
    while DISCONNECTED)."""
    _refuse_xks(request)
    store_id = str(request["CustomKeyStoreId"])
    new_name = request.get("NewCustomKeyStoreName")
    password = request.get("KeyStorePassword")
    cluster_id = request.get("CloudHsmClusterId")
    with services.store.write():
        record = _reload(services, scope, store_id)
        _require_not_default(record, "updated")
        allowed = (DISCONNECTED,) if password or cluster_id else (DISCONNECTED, CONNECTED)
        if record.connection_state not in allowed:
            raise CustomKeyStoreInvalidStateException(
                f"Custom key store {store_id} is {record.connection_state}. UpdateCustomKeyStore"
                " can change only NewCustomKeyStoreName of a CONNECTED custom key store; for"
                " all other properties its ConnectionState must be DISCONNECTED."
            )
        changes: dict[str, Any] = {}
        if new_name is not None:
            _require_name_free(services, scope, str(new_name), store_id)
            changes["name"] = str(new_name)
        if cluster_id is not None:
            _require_cluster(services, str(cluster_id))
            _require_cluster_free(services, scope, str(cluster_id), store_id)
            changes["cluster_id"] = str(cluster_id)
        if password is not None:
            nonce, wrapped = wrap_password(_root_key(services), store_id, str(password))
            changes["password_nonce"] = nonce
            changes["password_wrapped"] = wrapped
        if changes:
            services.store.update_key_store(store_id, **changes)
    return None


def delete_custom_key_store(services: Services, scope: RequestScope, request: Request) -> None:
    """DeleteCustomKeyStore: only DISCONNECTED stores with no keys (in any state)."""
    store_id = str(request["CustomKeyStoreId"])
    with services.store.write():
        record = _reload(services, scope, store_id)
        _require_not_default(record, "deleted")
        if record.connection_state != DISCONNECTED:
            raise CustomKeyStoreInvalidStateException(
                f"Custom key store {store_id} is {record.connection_state}. DeleteCustomKeyStore"
                " is valid only when the custom key store ConnectionState is DISCONNECTED."
            )
        if services.store.count_keys_on_backend(store_id):
            raise CustomKeyStoreHasCMKsException(
                f"Custom key store {store_id} contains KMS keys. Delete them"
                " (ScheduleKeyDeletion) and wait for their deletion before deleting the"
                " custom key store."
            )
        services.store.delete_key_store(store_id)
    return None


# --- Keys in key stores ------------------------------------------------------------------------


def key_store_for_new_key(
    services: Services, scope: RequestScope, request: Request, key_spec: str
) -> tuple[str, str] | None:
    """Where CreateKey puts a new key: None for an ordinary key (the default backend), else
    ``(backend name, origin)`` of a key in a custom key store, after AWS's checks:
    symmetric single-Region keys only, ``Origin=AWS_CLOUDHSM``, a CONNECTED store.
    """
    origin = request.get("Origin", "AWS_KMS")
    store_id = request.get("CustomKeyStoreId")
    if origin == "EXTERNAL_KEY_STORE" or request.get("XksKeyId"):
        raise UnsupportedOperationException(_XKS_REFUSAL)
    if store_id is None and origin != _CLOUDHSM:
        return None
    if store_id is None:
        raise UnsupportedOperationException(
            "Origin AWS_CLOUDHSM needs a CustomKeyStoreId: the ID of the AWS CloudHSM key"
            " store to create the KMS key in."
        )
    if origin != _CLOUDHSM:
        raise ValidationException(
            f"Origin must be {_CLOUDHSM} to create a KMS key in the AWS CloudHSM key store"
            f" {store_id}."
        )
    if key_spec != "SYMMETRIC_DEFAULT" or request.get("MultiRegion"):
        raise UnsupportedOperationException(
            "CustomKeyStoreId is valid only for symmetric encryption KMS keys in a single"
            " Region. You cannot create any other type of KMS key in a custom key store."
        )
    record = _find(services, scope, str(store_id))
    if record.connection_state != CONNECTED:
        raise CustomKeyStoreInvalidStateException(
            f"Custom key store {store_id} is not connected (ConnectionState is"
            f" {record.connection_state}). CreateKey is valid only when the custom key store"
            " ConnectionState is CONNECTED."
        )
    backend = "pkcs11" if record.store_id == DEFAULT_KEY_STORE_ID else record.store_id
    return backend, _CLOUDHSM


def random_from_store(services: Services, scope: RequestScope, store_id: str, size: int) -> bytes:
    """GenerateRandom with ``CustomKeyStoreId``: random bytes from the store's token."""
    record = _find(services, scope, store_id)
    if record.connection_state != CONNECTED:
        raise CustomKeyStoreInvalidStateException(
            f"Custom key store {store_id} is not connected (ConnectionState is"
            f" {record.connection_state}). GenerateRandom is valid only when the CloudHSM key"
            " store ConnectionState is CONNECTED."
        )
    backend_name = "pkcs11" if record.store_id == DEFAULT_KEY_STORE_ID else record.store_id
    try:
        return services.backend(backend_name).generate_random(size)
    except BackendError:
        raise KeyUnavailableException("The key store is unavailable.") from None


def cluster_of(services: Services, key: KeyRecord) -> str | None:
    """The ``CloudHsmClusterId`` DescribeKey shows for ``key`` (None outside key stores)."""
    store_id = store_id_of_backend(key.backend)
    if store_id is None:
        return None
    if store_id == DEFAULT_KEY_STORE_ID:
        return DEFAULT_CLUSTER_ID
    record = services.store.get_key_store(store_id)
    return None if record is None else record.cluster_id
