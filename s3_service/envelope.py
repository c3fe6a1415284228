"""What is stored about an object's encryption: never a plaintext key.

* SSE-S3: the data key wrapped under the S3 master key.
* SSE-KMS: the KMS ciphertext blob of the data key, the key ARN and the full context sent to
  the KMS (needed again for ``Decrypt``).
* SSE-C: a salt and the HMAC of the customer's key, to recognise it later.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

SSE_S3 = "AES256"
SSE_KMS = "aws:kms"
SSE_C = "SSE-C"
MODES = (SSE_S3, SSE_KMS, SSE_C)


@dataclass(frozen=True)
class Envelope:
    """The encryption record of one object or multipart upload.

    ``envelope_id`` is random and binds the wrapped SSE-S3 key to this record; a multipart
    object keeps the envelope of its upload, so all its parts share one data key.
    """

    mode: str
    envelope_id: str
    wrapped_key: bytes = b""
    kms_key_arn: str = ""
    kms_ciphertext: bytes = b""
    kms_context: dict[str, str] = field(default_factory=dict)
    bucket_key: bool = False
    customer_salt: bytes = b""
    customer_hmac: bytes = b""

    def to_json(self) -> str:
        data: dict[str, Any] = {"mode": self.mode, "id": self.envelope_id}
        if self.mode == SSE_S3:
            data["wrapped_key"] = _b64(self.wrapped_key)
        elif self.mode == SSE_KMS:
            data.update(
                key_arn=self.kms_key_arn,
                ciphertext=_b64(self.kms_ciphertext),
                context=self.kms_context,
                bucket_key=self.bucket_key,
            )
        else:
            data.update(salt=_b64(self.customer_salt), hmac=_b64(self.customer_hmac))
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Envelope:
        """Raises ValueError for a record this version does not understand."""
        data = json.loads(text)
        mode = data["mode"]
        if mode not in MODES:
            raise ValueError(f"unknown encryption mode {mode!r}")
        return cls(
            mode=mode,
            envelope_id=data["id"],
            wrapped_key=_unb64(data.get("wrapped_key", "")),
            kms_key_arn=data.get("key_arn", ""),
            kms_ciphertext=_unb64(data.get("ciphertext", "")),
            kms_context=dict(data.get("context", {})),
            bucket_key=bool(data.get("bucket_key", False)),
            customer_salt=_unb64(data.get("salt", "")),
            customer_hmac=_unb64(data.get("hmac", "")),
        )


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _unb64(value: str) -> bytes:
    return base64.b64decode(value)
