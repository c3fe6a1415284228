"""The key-kind tables the service and the backends share agree with each other and with AWS's
published lists (docs/key-types.md)."""

from __future__ import annotations

from backends.key_specs import HMAC_SPECS, SIGNING_ALGORITHMS, SIGNING_HASHES
from kms_service.operations.key_kinds import (
    ALLOWED_USAGES,
    COMMERCIAL_KEY_PAIR_SPECS,
    COMMERCIAL_KEY_SPECS,
    algorithm_fields,
)
from kms_service.operations.signing import signing_payload
from kms_service.wire.schemas import DATA_KEY_PAIR_SPECS, KEY_SPECS
from kms_service.wire.schemas import SIGNING_ALGORITHMS as WIRE


def test_every_commercial_spec_has_usages_and_is_on_the_wire() -> None:
    assert set(ALLOWED_USAGES) == set(COMMERCIAL_KEY_SPECS)
    assert set(COMMERCIAL_KEY_SPECS) <= set(KEY_SPECS)
    assert "SM2" in KEY_SPECS and "SM2" not in COMMERCIAL_KEY_SPECS
    ml_kem = {"ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"}
    assert set(COMMERCIAL_KEY_PAIR_SPECS) == set(DATA_KEY_PAIR_SPECS) - {"SM2"} - ml_kem


def test_every_signing_algorithm_has_a_hash_rule_and_is_on_the_wire() -> None:
    named = {a for algorithms in SIGNING_ALGORITHMS.values() for a in algorithms}
    assert named == set(SIGNING_HASHES)
    assert named == set(WIRE) - {"SM2DSA"}


def test_algorithm_fields_name_one_list() -> None:
    for spec, usages in ALLOWED_USAGES.items():
        for usage in usages:
            fields = algorithm_fields(spec, usage)
            assert len(fields) == 1 and next(iter(fields.values())), (spec, usage)
    assert algorithm_fields("HMAC_384", "GENERATE_VERIFY_MAC") == {
        "MacAlgorithms": ["HMAC_SHA_384"]
    }
    assert set(HMAC_SPECS) == {s for s, u in ALLOWED_USAGES.items() if "GENERATE_VERIFY_MAC" in u}


def test_raw_messages_are_hashed_and_digests_pass_through() -> None:
    import hashlib

    assert signing_payload("ECDSA_SHA_384", b"m", "RAW") == hashlib.sha384(b"m").digest()
    digest = hashlib.sha512(b"m").digest()
    assert signing_payload("RSASSA_PSS_SHA_512", digest, "DIGEST") == digest
    assert signing_payload("ED25519_SHA_512", b"m", "RAW") == b"m"
    assert signing_payload("ML_DSA_SHAKE_256", b"m", "RAW") == b"m"
