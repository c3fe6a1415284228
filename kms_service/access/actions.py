"""Which IAM action authorises each KMS operation, and on what.

Every KMS operation is authorised with its own action name, ``kms:<Operation>``, except
ReEncrypt, which needs ``kms:ReEncryptFrom`` on the source key and ``kms:ReEncryptTo`` on
the destination key. Operations that are not on a key (CreateKey, ListKeys, ListAliases,
GenerateRandom, the custom key store operations, ListRetirableGrants) are authorised by the
caller's IAM policy alone. The table covers every operation of the KMS API, implemented or
not, so an operation added later is covered the day it lands.
See docs/access-control.md ("Actions").
"""

from __future__ import annotations

#: Operations authorised on a KMS key: the key policy, IAM and grants decide.
KEY_OPERATIONS: frozenset[str] = frozenset(
    {
        "CancelKeyDeletion",
        "CreateAlias",
        "CreateGrant",
        "Decapsulate",
        "Decrypt",
        "DeleteAlias",
        "DeleteImportedKeyMaterial",
        "DeriveSharedSecret",
        "DescribeKey",
        "DisableKey",
        "DisableKeyRotation",
        "EnableKey",
        "EnableKeyRotation",
        "Encapsulate",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateMac",
        "GetKeyLastUsage",
        "GetKeyPolicy",
        "GetKeyRotationStatus",
        "GetParametersForImport",
        "GetPublicKey",
        "ImportKeyMaterial",
        "ListGrants",
        "ListKeyPolicies",
        "ListKeyRotations",
        "ListResourceTags",
        "PutKeyPolicy",
        "ReEncrypt",
        "ReplicateKey",
        "RetireGrant",
        "RevokeGrant",
        "RotateKeyOnDemand",
        "ScheduleKeyDeletion",
        "Sign",
        "TagResource",
        "UntagResource",
        "UpdateAlias",
        "UpdateKeyDescription",
        "UpdatePrimaryRegion",
        "Verify",
        "VerifyMac",
    }
)

#: Operations authorised by the caller's IAM policy alone (resource ``*``).
IAM_ONLY_OPERATIONS: frozenset[str] = frozenset(
    {
        "ConnectCustomKeyStore",
        "CreateCustomKeyStore",
        "CreateKey",
        "DeleteCustomKeyStore",
        "DescribeCustomKeyStores",
        "DisconnectCustomKeyStore",
        "GenerateRandom",
        "ListAliases",
        "ListKeys",
        "ListRetirableGrants",
        "UpdateCustomKeyStore",
    }
)

ALL_OPERATIONS: frozenset[str] = KEY_OPERATIONS | IAM_ONLY_OPERATIONS

#: ReEncrypt's two actions, one per key.
REENCRYPT_FROM = "kms:ReEncryptFrom"
REENCRYPT_TO = "kms:ReEncryptTo"

#: The operations a grant may allow (CreateGrant ``Operations``), by action name.
GRANT_OPERATIONS: frozenset[str] = frozenset(
    {
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "ReEncryptFrom",
        "ReEncryptTo",
        "Sign",
        "Verify",
        "GetPublicKey",
        "CreateGrant",
        "RetireGrant",
        "DescribeKey",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateMac",
        "VerifyMac",
        "DeriveSharedSecret",
        "Encapsulate",
        "Decapsulate",
    }
)

#: Grant operations that are cryptographic operations with an encryption context, the
#: only ones grant constraints may be used with (CreateGrant, "Constraints").
CONTEXT_OPERATIONS: frozenset[str] = frozenset(
    {
        "Decrypt",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "ReEncryptFrom",
        "ReEncryptTo",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "CreateGrant",
        "RetireGrant",
        "DescribeKey",
    }
)


def action_for(operation: str) -> str:
    """The action name that authorises ``operation`` (``kms:Encrypt`` for Encrypt).

    ReEncrypt has two (:data:`REENCRYPT_FROM`, :data:`REENCRYPT_TO`); this returns the
    source side, which is the one its key resolution asks for first.
    """
    if operation == "ReEncrypt":
        return REENCRYPT_FROM
    return f"kms:{operation}"
