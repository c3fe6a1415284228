"""Loading a request through its schema, with AWS's errors for what does not fit.

Wrong JSON types become ``SerializationException``; constraint violations become one
``ValidationException`` in the Coral wording AWS uses::

    2 validation errors detected: Value '1025' at 'numberOfBytes' failed to satisfy
    constraint: Member must have value less than or equal to 1024; Value null at 'keyId'
    failed to satisfy constraint: Member must not be null

Member paths are lowerCamelCase, list members read ``tags.1.member.tagKey``, and sensitive
values (plaintext, every blob) are never echoed.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError

from kms_service.errors import SerializationException, ValidationException
from kms_service.wire.fields import (
    CONSTRAINT,
    NULL,
    SERIALIZATION,
    AwsField,
    AwsList,
    AwsStruct,
    untag,
)

_MAX_ECHO = 1024


def load_request(schema: Schema, body: dict[str, Any]) -> dict[str, Any]:
    """Validate ``body`` and return it with blobs decoded; absent members stay absent.

    Raises :class:`SerializationException` or :class:`ValidationException`.
    """
    cleaned = _drop_nulls(body)
    try:
        loaded: dict[str, Any] = schema.load(cleaned)
    except ValidationError as exc:
        raise _aws_error(schema, exc.messages, cleaned) from None
    return loaded


def _drop_nulls(value: Any) -> Any:
    """JSON nulls mean "absent" (botocore never sends them; other callers might)."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _aws_error(schema: Schema, messages: Any, raw: Any) -> Exception:
    problems: list[tuple[str, str, str, Any, bool]] = []
    _collect(schema, messages, raw, "", problems)
    for kind, path, _text, _value, _sensitive in problems:
        if kind == SERIALIZATION:
            return SerializationException(
                f"Unable to parse member '{path}': wrong JSON type or encoding"
            )
    if not problems:
        # marshmallow reported something the walk above could not place: still the caller's
        # fault, never an empty "0 validation errors detected".
        return SerializationException("Unable to parse the request: wrong JSON type or encoding")
    phrases = [
        _phrase(kind, path, text, value, sensitive)
        for kind, path, text, value, sensitive in problems
    ]
    count = len(phrases)
    noun = "error" if count == 1 else "errors"
    return ValidationException(f"{count} validation {noun} detected: " + "; ".join(phrases))


def _phrase(kind: str, path: str, text: str, value: Any, sensitive: bool) -> str:
    if kind == NULL:
        return f"Value null at '{path}' failed to satisfy constraint: {text}"
    if sensitive or not isinstance(value, str | int | float):
        return f"Value at '{path}' failed to satisfy constraint: {text}"
    shown = str(value)
    if len(shown) > _MAX_ECHO:
        shown = shown[:_MAX_ECHO] + "..."
    return f"Value '{shown}' at '{path}' failed to satisfy constraint: {text}"


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _collect(
    schema: Schema,
    messages: Any,
    raw: Any,
    prefix: str,
    out: list[tuple[str, str, str, Any, bool]],
) -> None:
    if not isinstance(messages, dict):
        return
    for name, field in schema.fields.items():
        if name not in messages:
            continue
        path = f"{prefix}{_camel(name)}"
        value = raw.get(name) if isinstance(raw, dict) else None
        _collect_field(field, messages[name], value, path, out)


def _collect_field(
    field: Any, messages: Any, value: Any, path: str, out: list[tuple[str, str, str, Any, bool]]
) -> None:
    sensitive = bool(getattr(field, "sensitive", False))
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, str):
                kind, text = untag(message)
                out.append((kind, path, text, value, sensitive))
        return
    if not isinstance(messages, dict):
        return
    if isinstance(field, AwsStruct):
        _collect(field.schema(), messages, value, path + ".", out)
        return
    if isinstance(field, AwsList):
        for index in sorted(k for k in messages if isinstance(k, int)):
            if index < 0:
                _collect_field(field, messages[index], None, path, out)
                continue
            item = value[index] if isinstance(value, list) and index < len(value) else None
            member_path = f"{path}.{index + 1}.member"
            if isinstance(field.member, AwsField):
                _collect_field(field.member, messages[index], item, member_path, out)
            elif not isinstance(messages[index], dict):
                # The item itself is wrong (``Tags: [1]``), not one of its members.
                _collect_field(field, messages[index], item, member_path, out)
            else:
                _collect(field.member(), messages[index], item, member_path + ".", out)
        return
    # marshmallow's own schema-level errors ("_schema") are constraint errors on the member.
    for nested in messages.values():
        _collect_field(field, nested, value, path, out)


__all__ = ["CONSTRAINT", "load_request"]
