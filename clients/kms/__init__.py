"""A small client for the AWS KMS wire protocol (AWS JSON 1.1 + SigV4), boto3-compatible.

``KmsClient`` has boto3's KMS method names, keyword arguments, response dictionaries and
``client.exceptions``; it needs only the standard library and works against mock-kms and
AWS KMS alike::

    from clients.kms import KmsClient

    kms = KmsClient("http://127.0.0.1:8080", region_name="us-east-1")  # or from AWS_* vars
    key = kms.generate_data_key(KeyId="alias/app", KeySpec="AES_256")
    try:
        kms.decrypt(CiphertextBlob=key["CiphertextBlob"], EncryptionContext={"wrong": "ctx"})
    except kms.exceptions.InvalidCiphertextException as error:
        print(error.code, error.request_id)

Modules: ``client`` (operations), ``config`` (endpoint/region/credentials lookup), ``signing``
(SigV4), ``protocol`` (JSON bodies and error bodies), ``transport`` (keep-alive HTTP),
``retry`` (backoff policy), ``paginator`` and ``errors``.
"""

from clients.kms import errors
from clients.kms.client import ClientExceptions, ClientMeta, KmsClient
from clients.kms.errors import (
    ConfigurationError,
    KmsClientError,
    KmsLocalError,
    NoCredentialsError,
    NoRegionError,
    TransportError,
)
from clients.kms.retry import RetryPolicy
from clients.kms.signing import Credentials

__all__ = [
    "ClientExceptions",
    "ClientMeta",
    "ConfigurationError",
    "Credentials",
    "KmsClient",
    "KmsClientError",
    "KmsLocalError",
    "NoCredentialsError",
    "NoRegionError",
    "RetryPolicy",
    "TransportError",
    "errors",
]
