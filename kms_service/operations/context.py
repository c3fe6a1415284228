"""What every operation receives: the process-wide services and the caller's scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from backends.base import BackendUnavailableError, KeyBackend
from kms_service.access.request import AccessScope
from kms_service.domain.clock import Clock
from kms_service.domain.errors import KeyUnavailableException
from kms_service.settings import Settings
from kms_service.store import KeyRecord, MetadataStore


class KeyStoreAccess(Protocol):
    """The custom key stores as operations see them (kms_service.key_stores.registry;
    docs/custom-key-stores.md)."""

    def backend(self, store_id: str) -> KeyBackend:
        """This process's backend on a connected store's token."""
        ...

    def effective(self, key: KeyRecord) -> KeyRecord:
        """``key``, Unavailable while its key store is not connected."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RequestScope:
    """Who is calling, and where: keys live per account and region, as on AWS.

    ``access`` carries what authorisation needs (docs/access-control.md); requests from the
    wire always have one. None means a trusted internal caller (seeding, admin endpoints),
    for which nothing is authorised.
    """

    account_id: str
    region: str
    principal_arn: str
    access: AccessScope | None = None

    def key_arn(self, key_id: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:key/{key_id}"

    def alias_arn(self, alias_name: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:{alias_name}"


@dataclass
class Services:
    """Process-wide collaborators, created once per worker after fork."""

    settings: Settings
    store: MetadataStore
    backends: dict[str, KeyBackend]
    clock: Clock
    #: Custom key stores (docs/custom-key-stores.md); None in processes built without them.
    key_stores: KeyStoreAccess | None = None

    @property
    def default_backend(self) -> str:
        """The backend new keys are created on (``--backend``)."""
        return self.settings.backend

    def backend(self, name: str) -> KeyBackend:
        """The backend called ``name``.

        Raises :class:`KeyUnavailableException` when this process was not started with it
        (a key created on the PKCS#11 backend, served by a software-only process).
        """
        backend = self.backends.get(name)
        if backend is None and self.key_stores is not None and name.startswith("cks-"):
            return self.key_stores.backend(name)
        if backend is None:
            raise KeyUnavailableException(
                f"The key's {name} key store is not configured in this mock-kms process."
            )
        return backend

    def random_bytes(self, size: int) -> bytes:
        """Random bytes from the default backend (the HSM's RNG on the PKCS#11 backend)."""
        try:
            return self.backend(self.default_backend).generate_random(size)
        except BackendUnavailableError:
            raise KeyUnavailableException("The key store is unavailable.") from None

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
        if self.key_stores is not None:
            self.key_stores.close()
        self.store.close()
