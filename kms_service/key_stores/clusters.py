"""Which PKCS#11 token a ``CloudHsmClusterId`` names (docs/custom-key-stores.md).

``MOCK_KMS_PKCS11_CLUSTERS`` holds JSON, inline or in a file it names::

    {"cluster-234567abcdefg": {"token_label": "team-a",
                               "module": "/usr/lib/softhsm/libsofthsm2.so"},
     "cluster-765432gfedcba": "team-b"}

A bare string is a token label in ``PKCS11_MODULE`` (or the installed SoftHSM). The default
key store (the ``PKCS11_*`` token of ``--backend pkcs11``) has the fixed cluster id
:data:`DEFAULT_CLUSTER_ID`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kms_service.domain.errors import ConfigurationError
from kms_service.settings import Settings

#: The botocore model's pattern for ``CloudHsmClusterId``.
CLUSTER_ID_PATTERN = re.compile(r"^cluster-[2-7a-zA-Z]{11,16}$")
#: The key store that keys on ``--backend pkcs11`` live in.
DEFAULT_KEY_STORE_ID = "cks-mock-kms-pkcs11"
DEFAULT_KEY_STORE_NAME = "mock-kms-pkcs11"
DEFAULT_CLUSTER_ID = "cluster-mockkmsdefault"
#: Key store ids of stores made with CreateCustomKeyStore: ``cks-`` and 17 hex digits.
KEY_STORE_PREFIX = "cks-"


@dataclass(frozen=True)
class ClusterToken:
    """The PKCS#11 token a cluster id stands for."""

    cluster_id: str
    module: str
    token_label: str


def load_clusters(settings: Settings) -> dict[str, ClusterToken]:
    """The configured clusters by id (empty when none are). Raises :class:`ConfigurationError`
    with one actionable line for bad JSON, a bad cluster id or a missing label."""
    text = (settings.pkcs11_clusters or "").strip()
    if not text:
        return {}
    source = "MOCK_KMS_PKCS11_CLUSTERS"
    if not text.startswith(("{", "[")):
        path = Path(text)
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read MOCK_KMS_PKCS11_CLUSTERS file {path}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{source} must be a JSON object of cluster id → token")
    return {
        cluster_id: _cluster(source, cluster_id, entry, settings)
        for cluster_id, entry in raw.items()
    }


def _cluster(source: str, cluster_id: str, entry: Any, settings: Settings) -> ClusterToken:
    if not CLUSTER_ID_PATTERN.match(cluster_id):
        raise ConfigurationError(
            f"{source}: {cluster_id!r} is not a CloudHsmClusterId"
            " (cluster- and 11 to 16 of A-Z a-z 2-7)"
        )
    if isinstance(entry, str):
        entry = {"token_label": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("token_label"), str):
        raise ConfigurationError(f"{source}: {cluster_id} needs a token_label")
    module = entry.get("module") or settings.pkcs11_module or _installed_softhsm()
    if not isinstance(module, str) or not module:
        raise ConfigurationError(
            f"{source}: {cluster_id} needs a module (or set PKCS11_MODULE, or install SoftHSM)"
        )
    return ClusterToken(cluster_id, module, entry["token_label"])


def _installed_softhsm() -> str | None:
    from backends.softhsm import SoftHsmNotInstalledError, find_softhsm_module

    try:
        return find_softhsm_module()
    except SoftHsmNotInstalledError:
        return None
