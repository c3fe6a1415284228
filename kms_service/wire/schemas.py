"""One marshmallow schema per KMS operation, with the botocore model's types and constraints.

botocore checks only required members and minimums on the client; everything else (maximums,
patterns, enums) is the server's job, and other SDKs check nothing, so all of it is here.
Unknown members are ignored, for newer SDKs.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema

from kms_service.wire.fields import (
    AwsBlob,
    AwsBoolean,
    AwsInteger,
    AwsList,
    AwsString,
    AwsStringMap,
    AwsStruct,
    AwsTimestamp,
)

KEY_SPECS = [
    "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
    "ECC_SECG_P256K1", "SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512",
    "SM2", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ECC_NIST_EDWARDS25519",
    "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024",
]  # fmt: skip
CUSTOMER_MASTER_KEY_SPECS = KEY_SPECS[:13]
KEY_USAGES = [
    "SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT",
    "ENCAPSULATE_DECAPSULATE",
]  # fmt: skip
ORIGINS = ["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"]
ENCRYPTION_ALGORITHMS = ["SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"]
DATA_KEY_SPECS = ["AES_256", "AES_128"]
SIGNING_ALGORITHMS = [
    "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
    "ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512", "SM2DSA", "ML_DSA_SHAKE_256",
    "ED25519_SHA_512", "ED25519_PH_SHA_512",
]  # fmt: skip
MESSAGE_TYPES = ["RAW", "DIGEST", "EXTERNAL_MU"]
MAC_ALGORITHMS = ["HMAC_SHA_224", "HMAC_SHA_256", "HMAC_SHA_384", "HMAC_SHA_512"]
DATA_KEY_PAIR_SPECS = [
    "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
    "ECC_SECG_P256K1", "SM2", "ECC_NIST_EDWARDS25519", "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024",
]  # fmt: skip
ALIAS_PATTERN = r"^[a-zA-Z0-9:/_-]+$"
MARKER_PATTERN = r"[\u0020-\u00FF]*"
POLICY_PATTERN = r"[\u0009\u000A\u000D\u0020-\u00FF]+"


def key_id(required: bool = True) -> AwsString:
    return AwsString(min_length=1, max_length=2048, required=required)


def grant_tokens() -> AwsList:
    return AwsList(AwsString(min_length=1, max_length=8192), min_length=0, max_length=10)


def limit() -> AwsInteger:
    return AwsInteger(minimum=1, maximum=1000)


def marker() -> AwsString:
    return AwsString(min_length=1, max_length=1024, pattern=MARKER_PATTERN)


def algorithm() -> AwsString:
    return AwsString(enum=ENCRYPTION_ALGORITHMS)


class RequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE


class KeyIdOnly(RequestSchema):
    KeyId = key_id()


class TagSchema(RequestSchema):
    TagKey = AwsString(min_length=1, max_length=128, required=True)
    TagValue = AwsString(min_length=0, max_length=256, required=True)


class RecipientSchema(RequestSchema):
    KeyEncryptionAlgorithm = AwsString(enum=["RSAES_OAEP_SHA_256"])
    AttestationDocument = AwsBlob(min_length=1, max_length=262144)


class CreateKey(RequestSchema):
    Policy = AwsString(min_length=1, max_length=131072, pattern=POLICY_PATTERN)
    Description = AwsString(min_length=0, max_length=8192)
    KeyUsage = AwsString(enum=KEY_USAGES)
    CustomerMasterKeySpec = AwsString(enum=CUSTOMER_MASTER_KEY_SPECS)
    KeySpec = AwsString(enum=KEY_SPECS)
    Origin = AwsString(enum=ORIGINS)
    CustomKeyStoreId = AwsString(min_length=1, max_length=64)
    BypassPolicyLockoutSafetyCheck = AwsBoolean()
    Tags = AwsList(TagSchema)
    MultiRegion = AwsBoolean()
    XksKeyId = AwsString(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9-_.]+$")


class DescribeKey(RequestSchema):
    KeyId = key_id()
    GrantTokens = grant_tokens()


class ListKeys(RequestSchema):
    Limit = limit()
    Marker = marker()


class UpdateKeyDescription(RequestSchema):
    KeyId = key_id()
    Description = AwsString(min_length=0, max_length=8192, required=True)


class Encrypt(RequestSchema):
    KeyId = key_id()
    Plaintext = AwsBlob(min_length=1, max_length=4096, required=True)
    EncryptionContext = AwsStringMap()
    GrantTokens = grant_tokens()
    EncryptionAlgorithm = algorithm()
    DryRun = AwsBoolean()


class Decrypt(RequestSchema):
    CiphertextBlob = AwsBlob(min_length=1, max_length=6144)
    EncryptionContext = AwsStringMap()
    GrantTokens = grant_tokens()
    KeyId = key_id(required=False)
    EncryptionAlgorithm = algorithm()
    Recipient = AwsStruct(RecipientSchema)
    DryRun = AwsBoolean()
    DryRunModifiers = AwsList(AwsString(enum=["IGNORE_CIPHERTEXT"]))


class ReEncrypt(RequestSchema):
    CiphertextBlob = AwsBlob(min_length=1, max_length=6144)
    SourceEncryptionContext = AwsStringMap()
    SourceKeyId = key_id(required=False)
    DestinationKeyId = key_id()
    DestinationEncryptionContext = AwsStringMap()
    SourceEncryptionAlgorithm = algorithm()
    DestinationEncryptionAlgorithm = algorithm()
    GrantTokens = grant_tokens()
    DryRun = AwsBoolean()
    DryRunModifiers = AwsList(AwsString(enum=["IGNORE_CIPHERTEXT"]))


class GenerateDataKeyWithoutPlaintext(RequestSchema):
    KeyId = key_id()
    EncryptionContext = AwsStringMap()
    NumberOfBytes = AwsInteger(minimum=1, maximum=1024)
    KeySpec = AwsString(enum=DATA_KEY_SPECS)
    GrantTokens = grant_tokens()
    DryRun = AwsBoolean()


class GenerateRandom(RequestSchema):
    NumberOfBytes = AwsInteger(minimum=1, maximum=1024)
    CustomKeyStoreId = AwsString(min_length=1, max_length=64)
    Recipient = AwsStruct(RecipientSchema)


class EnableKeyRotation(RequestSchema):
    KeyId = key_id()
    RotationPeriodInDays = AwsInteger(minimum=90, maximum=2560)


class ListKeyRotations(RequestSchema):
    KeyId = key_id()
    IncludeKeyMaterial = AwsString(enum=["ALL_KEY_MATERIAL", "ROTATIONS_ONLY"])
    Limit = limit()
    Marker = marker()


REGION_PATTERN = r"^([a-z]+-){2,3}\d+$"


class ReplicateKey(RequestSchema):
    KeyId = key_id()
    ReplicaRegion = AwsString(min_length=1, max_length=32, pattern=REGION_PATTERN, required=True)
    Policy = AwsString(min_length=1, max_length=131072, pattern=POLICY_PATTERN)
    BypassPolicyLockoutSafetyCheck = AwsBoolean()
    Description = AwsString(min_length=0, max_length=8192)
    Tags = AwsList(TagSchema)


class UpdatePrimaryRegion(RequestSchema):
    KeyId = key_id()
    PrimaryRegion = AwsString(min_length=1, max_length=32, pattern=REGION_PATTERN, required=True)


class ScheduleKeyDeletion(RequestSchema):
    KeyId = key_id()
    PendingWindowInDays = AwsInteger(minimum=1, maximum=365)


class AliasNameOnly(RequestSchema):
    AliasName = AwsString(min_length=1, max_length=256, pattern=ALIAS_PATTERN, required=True)


class CreateAlias(AliasNameOnly):
    TargetKeyId = key_id()


class ListAliases(RequestSchema):
    KeyId = key_id(required=False)
    Limit = limit()
    Marker = marker()


class TagResource(RequestSchema):
    KeyId = key_id()
    Tags = AwsList(TagSchema, required=True)


class UntagResource(RequestSchema):
    KeyId = key_id()
    TagKeys = AwsList(AwsString(min_length=1, max_length=128), required=True)


class ListResourceTags(RequestSchema):
    KeyId = key_id()
    Limit = limit()
    Marker = marker()


class GetKeyPolicy(RequestSchema):
    KeyId = key_id()
    PolicyName = AwsString(min_length=1, max_length=128, pattern=r"[\w]+")


class PutKeyPolicy(GetKeyPolicy):
    Policy = AwsString(min_length=1, max_length=131072, pattern=POLICY_PATTERN, required=True)
    BypassPolicyLockoutSafetyCheck = AwsBoolean()


class ListKeyPolicies(RequestSchema):
    KeyId = key_id()
    Limit = limit()
    Marker = marker()


class GenerateDataKey(GenerateDataKeyWithoutPlaintext):
    Recipient = AwsStruct(RecipientSchema)


class Sign(RequestSchema):
    KeyId = key_id()
    Message = AwsBlob(min_length=1, max_length=4096, required=True)
    MessageType = AwsString(enum=MESSAGE_TYPES)
    GrantTokens = grant_tokens()
    SigningAlgorithm = AwsString(enum=SIGNING_ALGORITHMS, required=True)
    DryRun = AwsBoolean()


class Verify(Sign):
    Signature = AwsBlob(min_length=1, max_length=6144, required=True)


class GetPublicKey(RequestSchema):
    KeyId = key_id()
    GrantTokens = grant_tokens()


class GenerateMac(RequestSchema):
    Message = AwsBlob(min_length=1, max_length=4096, required=True)
    KeyId = key_id()
    MacAlgorithm = AwsString(enum=MAC_ALGORITHMS, required=True)
    GrantTokens = grant_tokens()
    DryRun = AwsBoolean()


class VerifyMac(GenerateMac):
    Mac = AwsBlob(min_length=1, max_length=6144, required=True)


class DeriveSharedSecret(RequestSchema):
    KeyId = key_id()
    KeyAgreementAlgorithm = AwsString(enum=["ECDH"], required=True)
    PublicKey = AwsBlob(min_length=1, max_length=8192, required=True)
    GrantTokens = grant_tokens()
    DryRun = AwsBoolean()
    Recipient = AwsStruct(RecipientSchema)


class GenerateDataKeyPairWithoutPlaintext(RequestSchema):
    EncryptionContext = AwsStringMap()
    KeyId = key_id()
    KeyPairSpec = AwsString(enum=DATA_KEY_PAIR_SPECS, required=True)
    GrantTokens = grant_tokens()
    DryRun = AwsBoolean()


class GenerateDataKeyPair(GenerateDataKeyPairWithoutPlaintext):
    Recipient = AwsStruct(RecipientSchema)


GRANT_OPERATIONS = [
    "Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncryptFrom",
    "ReEncryptTo", "Sign", "Verify", "GetPublicKey", "CreateGrant", "RetireGrant", "DescribeKey",
    "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GenerateMac", "VerifyMac",
    "DeriveSharedSecret", "Decapsulate", "Encapsulate",
]  # fmt: skip
GRANT_PRINCIPAL_PATTERN = r"^[\w+=,.@:/-]+$"


SERVICE_PRINCIPAL_PATTERN = r"^([A-Za-z0-9\-]+)\.([A-Za-z0-9\-]+)(\.[A-Za-z0-9\-]+)+$"


def grant_principal() -> AwsString:
    return AwsString(min_length=1, max_length=256, pattern=GRANT_PRINCIPAL_PATTERN)


def service_principal() -> AwsString:
    return AwsString(min_length=1, max_length=128, pattern=SERVICE_PRINCIPAL_PATTERN)


class GrantConstraints(RequestSchema):
    EncryptionContextSubset = AwsStringMap()
    EncryptionContextEquals = AwsStringMap()
    SourceArn = AwsString(
        min_length=20,
        max_length=512,
        pattern=r"^arn:aws[a-z0-9-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{12}:.+$",
    )


class CreateGrant(RequestSchema):
    KeyId = key_id()
    GranteePrincipal = grant_principal()
    RetiringPrincipal = grant_principal()
    GranteeServicePrincipal = service_principal()
    RetiringServicePrincipal = service_principal()
    Operations = AwsList(AwsString(enum=GRANT_OPERATIONS), required=True)
    Constraints = AwsStruct(GrantConstraints)
    GrantTokens = grant_tokens()
    Name = AwsString(min_length=1, max_length=256, pattern=r"^[a-zA-Z0-9:/_-]+$")
    DryRun = AwsBoolean()


class ListGrants(RequestSchema):
    KeyId = key_id()
    Limit = limit()
    Marker = marker()
    GrantId = AwsString(min_length=1, max_length=128)
    GranteePrincipal = grant_principal()
    GranteeServicePrincipal = service_principal()


class ListRetirableGrants(RequestSchema):
    RetiringPrincipal = grant_principal()
    RetiringServicePrincipal = service_principal()
    Limit = limit()
    Marker = marker()


# --- custom key stores (docs/custom-key-stores.md) -------------------------------------------
CLUSTER_ID_PATTERN = r"cluster-[2-7a-zA-Z]{11,16}"
XKS_PROXY_URI_ENDPOINT_PATTERN = r"^https://[a-zA-Z0-9.-]+$"
XKS_PROXY_URI_PATH_PATTERN = r"^(/[a-zA-Z0-9\/_-]+/kms/xks/v\d{1,2})$|^(/kms/xks/v\d{1,2})$"
XKS_VPC_SERVICE_PATTERN = r"^(com|eu)\.amazonaws\.vpce\.([a-z]+-){2,3}\d+\.vpce-svc-[0-9a-z]+$"


def custom_key_store_id(required: bool = True) -> AwsString:
    return AwsString(min_length=1, max_length=64, required=required)


class XksProxyAuthenticationCredentialSchema(RequestSchema):
    AccessKeyId = AwsString(
        min_length=20, max_length=30, pattern=r"^[A-Z2-7]+$", required=True, sensitive=True
    )
    RawSecretAccessKey = AwsString(
        min_length=43, max_length=64, pattern=r"^[a-zA-Z0-9\/+=]+$", required=True, sensitive=True
    )


class _XksMembers(RequestSchema):
    XksProxyUriEndpoint = AwsString(
        min_length=10, max_length=128, pattern=XKS_PROXY_URI_ENDPOINT_PATTERN
    )
    XksProxyUriPath = AwsString(min_length=10, max_length=128, pattern=XKS_PROXY_URI_PATH_PATTERN)
    XksProxyVpcEndpointServiceName = AwsString(
        min_length=20, max_length=64, pattern=XKS_VPC_SERVICE_PATTERN
    )
    XksProxyVpcEndpointServiceOwner = AwsString(min_length=12, max_length=12, pattern=r"[0-9]{12}")
    XksProxyAuthenticationCredential = AwsStruct(XksProxyAuthenticationCredentialSchema)
    XksProxyConnectivity = AwsString(enum=["PUBLIC_ENDPOINT", "VPC_ENDPOINT_SERVICE"])


class CreateCustomKeyStore(_XksMembers):
    CustomKeyStoreName = AwsString(min_length=1, max_length=256, required=True)
    CloudHsmClusterId = AwsString(min_length=19, max_length=24, pattern=CLUSTER_ID_PATTERN)
    TrustAnchorCertificate = AwsString(min_length=1, max_length=5000)
    #: The token's PIN: never echoed in a validation error.
    KeyStorePassword = AwsString(min_length=7, max_length=32, sensitive=True)
    CustomKeyStoreType = AwsString(enum=["AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"])


class DescribeCustomKeyStores(RequestSchema):
    CustomKeyStoreId = custom_key_store_id(required=False)
    CustomKeyStoreName = AwsString(min_length=1, max_length=256)
    Limit = limit()
    Marker = marker()


class RetireGrant(RequestSchema):
    GrantToken = AwsString(min_length=1, max_length=8192)
    KeyId = key_id(required=False)
    GrantId = AwsString(min_length=1, max_length=128)
    DryRun = AwsBoolean()


class RevokeGrant(RequestSchema):
    KeyId = key_id()
    GrantId = AwsString(min_length=1, max_length=128, required=True)
    DryRun = AwsBoolean()


class CustomKeyStoreIdOnly(RequestSchema):
    CustomKeyStoreId = custom_key_store_id()


class UpdateCustomKeyStore(_XksMembers):
    CustomKeyStoreId = custom_key_store_id()
    NewCustomKeyStoreName = AwsString(min_length=1, max_length=256)
    KeyStorePassword = AwsString(min_length=7, max_length=32, sensitive=True)
    CloudHsmClusterId = AwsString(min_length=19, max_length=24, pattern=CLUSTER_ID_PATTERN)


# --- end of custom key stores ----------------------------------------------------------------


SCHEMAS: dict[str, type[Schema]] = {
    "CreateKey": CreateKey,
    "DescribeKey": DescribeKey,
    "ListKeys": ListKeys,
    "UpdateKeyDescription": UpdateKeyDescription,
    "EnableKey": KeyIdOnly,
    "DisableKey": KeyIdOnly,
    "ScheduleKeyDeletion": ScheduleKeyDeletion,
    "CancelKeyDeletion": KeyIdOnly,
    "ReplicateKey": ReplicateKey,
    "UpdatePrimaryRegion": UpdatePrimaryRegion,
    "Encrypt": Encrypt,
    "Decrypt": Decrypt,
    "ReEncrypt": ReEncrypt,
    "GenerateDataKey": GenerateDataKey,
    "GenerateDataKeyWithoutPlaintext": GenerateDataKeyWithoutPlaintext,
    "GenerateRandom": GenerateRandom,
    "EnableKeyRotation": EnableKeyRotation,
    "DisableKeyRotation": KeyIdOnly,
    "GetKeyRotationStatus": KeyIdOnly,
    "RotateKeyOnDemand": KeyIdOnly,
    "ListKeyRotations": ListKeyRotations,
    "CreateAlias": CreateAlias,
    "UpdateAlias": CreateAlias,
    "DeleteAlias": AliasNameOnly,
    "ListAliases": ListAliases,
    "TagResource": TagResource,
    "UntagResource": UntagResource,
    "ListResourceTags": ListResourceTags,
    "GetKeyPolicy": GetKeyPolicy,
    "PutKeyPolicy": PutKeyPolicy,
    "ListKeyPolicies": ListKeyPolicies,
    "Sign": Sign,
    "Verify": Verify,
    "GetPublicKey": GetPublicKey,
    "GenerateMac": GenerateMac,
    "VerifyMac": VerifyMac,
    "DeriveSharedSecret": DeriveSharedSecret,
    "GenerateDataKeyPair": GenerateDataKeyPair,
    "GenerateDataKeyPairWithoutPlaintext": GenerateDataKeyPairWithoutPlaintext,
    "CreateGrant": CreateGrant,
    "ListGrants": ListGrants,
    "ListRetirableGrants": ListRetirableGrants,
    "RetireGrant": RetireGrant,
    "RevokeGrant": RevokeGrant,
    # --- custom key stores
    "CreateCustomKeyStore": CreateCustomKeyStore,
    "DescribeCustomKeyStores": DescribeCustomKeyStores,
    "ConnectCustomKeyStore": CustomKeyStoreIdOnly,
    "DisconnectCustomKeyStore": CustomKeyStoreIdOnly,
    "UpdateCustomKeyStore": UpdateCustomKeyStore,
    "DeleteCustomKeyStore": CustomKeyStoreIdOnly,
}


# --- Imported key material (docs/key-import.md) ---------------------------------------------
WRAPPING_ALGORITHMS = [
    "RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1",
    "RSA_AES_KEY_WRAP_SHA_256", "SM2PKE",
]  # fmt: skip
WRAPPING_KEY_SPECS = ["RSA_2048", "RSA_3072", "RSA_4096", "SM2"]
KEY_MATERIAL_ID_PATTERN = r"^[a-f0-9]+$"


class GetParametersForImport(RequestSchema):
    KeyId = key_id()
    WrappingAlgorithm = AwsString(enum=WRAPPING_ALGORITHMS, required=True)
    WrappingKeySpec = AwsString(enum=WRAPPING_KEY_SPECS, required=True)


class ImportKeyMaterial(RequestSchema):
    KeyId = key_id()
    ImportToken = AwsBlob(min_length=1, max_length=6144, required=True)
    EncryptedKeyMaterial = AwsBlob(min_length=1, max_length=6144, required=True)
    ValidTo = AwsTimestamp()
    ExpirationModel = AwsString(enum=["KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"])
    ImportType = AwsString(enum=["NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"])
    KeyMaterialDescription = AwsString(
        min_length=0, max_length=256, pattern=r"^[a-zA-Z0-9:/_\s.-]+$"
    )
    KeyMaterialId = AwsString(min_length=64, max_length=64, pattern=KEY_MATERIAL_ID_PATTERN)


class DeleteImportedKeyMaterial(RequestSchema):
    KeyId = key_id()
    KeyMaterialId = AwsString(min_length=64, max_length=64, pattern=KEY_MATERIAL_ID_PATTERN)


SCHEMAS.update(
    {
        "GetParametersForImport": GetParametersForImport,
        "ImportKeyMaterial": ImportKeyMaterial,
        "DeleteImportedKeyMaterial": DeleteImportedKeyMaterial,
    }
)
