"""One function per KMS operation. Knows keys, knows nothing of HTTP.

Each operation takes ``(services, scope, request)``, where ``request`` is the validated
request with AWS's member names and blobs as bytes, and returns the response members (blobs
as bytes, timestamps as epoch seconds) or None for operations without output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kms_service.operations import (
    aliases,
    crypto,
    custom_key_stores,
    data_key_pairs,
    grants,
    importing,
    key_agreement,
    keys,
    mac,
    multi_region,
    policy,
    rotation,
    signing,
    tags,
)
from kms_service.operations.context import RequestScope, Services

Operation = Callable[[Services, RequestScope, dict[str, Any]], dict[str, Any] | None]

OPERATIONS: dict[str, Operation] = {
    "CreateKey": keys.create_key,
    "DescribeKey": keys.describe_key,
    "ListKeys": keys.list_keys,
    "UpdateKeyDescription": keys.update_key_description,
    "EnableKey": keys.enable_key,
    "DisableKey": keys.disable_key,
    "ScheduleKeyDeletion": multi_region.schedule_key_deletion,
    "CancelKeyDeletion": multi_region.cancel_key_deletion,
    "ReplicateKey": multi_region.replicate_key,
    "UpdatePrimaryRegion": multi_region.update_primary_region,
    "Encrypt": crypto.encrypt,
    "Decrypt": crypto.decrypt,
    "ReEncrypt": crypto.re_encrypt,
    "GenerateDataKey": crypto.generate_data_key,
    "GenerateDataKeyWithoutPlaintext": crypto.generate_data_key_without_plaintext,
    "GenerateRandom": crypto.generate_random,
    "EnableKeyRotation": rotation.enable_key_rotation,
    "DisableKeyRotation": rotation.disable_key_rotation,
    "GetKeyRotationStatus": rotation.get_key_rotation_status,
    "RotateKeyOnDemand": rotation.rotate_key_on_demand,
    "ListKeyRotations": rotation.list_key_rotations,
    "CreateAlias": aliases.create_alias,
    "UpdateAlias": aliases.update_alias,
    "DeleteAlias": aliases.delete_alias,
    "ListAliases": aliases.list_aliases,
    "TagResource": tags.tag_resource,
    "UntagResource": tags.untag_resource,
    "ListResourceTags": tags.list_resource_tags,
    "GetKeyPolicy": policy.get_key_policy,
    "PutKeyPolicy": policy.put_key_policy,
    "ListKeyPolicies": policy.list_key_policies,
    "Sign": signing.sign,
    "Verify": signing.verify,
    "GetPublicKey": signing.get_public_key,
    "GenerateMac": mac.generate_mac,
    "VerifyMac": mac.verify_mac,
    "DeriveSharedSecret": key_agreement.derive_shared_secret,
    "GenerateDataKeyPair": data_key_pairs.generate_data_key_pair,
    "GenerateDataKeyPairWithoutPlaintext": data_key_pairs.generate_data_key_pair_without_plaintext,
    "GetParametersForImport": importing.get_parameters_for_import,
    "ImportKeyMaterial": importing.import_key_material,
    "DeleteImportedKeyMaterial": importing.delete_imported_key_material,
    "CreateGrant": grants.create_grant,
    "ListGrants": grants.list_grants,
    "ListRetirableGrants": grants.list_retirable_grants,
    "RetireGrant": grants.retire_grant,
    "RevokeGrant": grants.revoke_grant,
    # --- custom key stores (docs/custom-key-stores.md)
    "CreateCustomKeyStore": custom_key_stores.create_custom_key_store,
    "DescribeCustomKeyStores": custom_key_stores.describe_custom_key_stores,
    "ConnectCustomKeyStore": custom_key_stores.connect_custom_key_store,
    "DisconnectCustomKeyStore": custom_key_stores.disconnect_custom_key_store,
    "UpdateCustomKeyStore": custom_key_stores.update_custom_key_store,
    "DeleteCustomKeyStore": custom_key_stores.delete_custom_key_store,
}

#: Operations of the AWS KMS API that mock-kms knows but does not implement (yet): answered
#: with UnsupportedOperationException rather than UnknownOperationException, so newer SDKs
#: get a clear, modeled error.
KNOWN_UNIMPLEMENTED = frozenset(
    {
        "GetKeyLastUsage",
        "Encapsulate",
        "Decapsulate",
    }
)

__all__ = ["KNOWN_UNIMPLEMENTED", "OPERATIONS", "Operation", "RequestScope", "Services"]
