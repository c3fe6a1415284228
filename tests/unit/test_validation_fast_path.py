"""The validation fast path (plain members checked field by field) must accept exactly what
marshmallow accepts, and give the same result; anything it declines goes through marshmallow,
so every error stays word for word the same."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from kms_service.wire.schemas import SCHEMAS
from kms_service.wire.validation import _drop_nulls, _load_flat

INSTANCES = {name: schema() for name, schema in SCHEMAS.items()}
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["AES_256", "AES_128", "SYMMETRIC_DEFAULT", "alias/x", "", "a" * 3000]),
    st.binary(max_size=70).map(lambda b: base64.b64encode(b).decode()),
    st.just("!!notb64"),
    st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), st.integers()), max_size=3),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
)


@settings(max_examples=600, suppress_health_check=list(HealthCheck), deadline=None)
@given(st.sampled_from(sorted(SCHEMAS)), st.data())
def test_fast_path_agrees_with_marshmallow(name: str, data: Any) -> None:
    schema = INSTANCES[name]
    names = [*schema.load_fields, "Unknown"]
    body = data.draw(st.dictionaries(st.sampled_from(names), VALUES, max_size=6))
    cleaned = _drop_nulls(body)
    fast = _load_flat(schema, cleaned)
    try:
        slow = schema.load(cleaned)
    except ValidationError:
        assert fast is None
        return
    if fast is not None:
        assert fast == slow
        assert list(fast) == list(slow)


def test_fast_path_is_taken_for_a_plain_valid_request() -> None:
    body = {"KeyId": "alias/app", "Plaintext": base64.b64encode(b"x").decode()}
    assert _load_flat(INSTANCES["Encrypt"], body) == {"KeyId": "alias/app", "Plaintext": b"x"}
