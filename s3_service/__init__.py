"""A local S3 endpoint whose server-side encryption is real: SSE-S3, SSE-KMS and SSE-C.

Served by ``mock-kms serve`` beside the KMS (see :mod:`s3_service.routing`); it reaches the
KMS only through the thin client in :mod:`clients.kms`, as S3 reaches AWS KMS.
"""
