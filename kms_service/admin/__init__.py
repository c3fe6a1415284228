"""Developer endpoints under ``/_mock-kms/`` (only with ``MOCK_KMS_DEV_ENDPOINTS=1``): the
movable clock, state reset and fault-injection rules, and the CLI that calls them."""
