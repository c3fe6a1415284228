"""One function per KMS operation. Knows keys, knows nothing of HTTP.

Each operation takes ``(services, scope, request)``, where ``request`` is the validated
request with AWS's member names and blobs as bytes, and returns the response members (blobs
as bytes, timestamps as epoch seconds) or None for operations without output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kms_service.operations import aliases, crypto, grants, keys, policy, rotation, tags
from kms_service.operations.context import RequestScope, Services

Operation = Callable[[Services, RequestScope, dict[str, Any]], dict[str, Any] | None]

OPERATIONS: dict[str, Operation] = {
    "CreateKey": keys.create_key,
    "DescribeKey": keys.describe_key,
    "ListKeys": keys.list_keys,
    "UpdateKeyDescription": keys.update_key_description,
    "EnableKey": keys.enable_key,
    "DisableKey": keys.disable_key,
    "ScheduleKeyDeletion": keys.schedule_key_deletion,
    "CancelKeyDeletion": keys.cancel_key_deletion,
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
    "CreateGrant": grants.create_grant,
    "ListGrants": grants.list_grants,
    "ListRetirableGrants": grants.list_retirable_grants,
    "RetireGrant": grants.retire_grant,
    "RevokeGrant": grants.revoke_grant,
}

#: Operations of the AWS KMS API that mock-kms knows but does not implement (yet): answered
#: with UnsupportedOperationException rather than UnknownOperationException, so newer SDKs
#: get a clear, modeled error.
KNOWN_UNIMPLEMENTED = frozenset(
    {
        "ConnectCustomKeyStore",
        "CreateCustomKeyStore",
        "DeleteCustomKeyStore",
        "DeleteImportedKeyMaterial",
        "DeriveSharedSecret",
        "DescribeCustomKeyStores",
        "DisconnectCustomKeyStore",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateMac",
        "GetKeyLastUsage",
        "GetParametersForImport",
        "GetPublicKey",
        "ImportKeyMaterial",
        "ReplicateKey",
        "Sign",
        "UpdateCustomKeyStore",
        "UpdatePrimaryRegion",
        "Verify",
        "VerifyMac",
        "Encapsulate",
        "Decapsulate",
    }
)

__all__ = ["KNOWN_UNIMPLEMENTED", "OPERATIONS", "Operation", "RequestScope", "Services"]
