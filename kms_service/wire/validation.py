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

import weakref
from typing import Any

from marshmallow import Schema, ValidationError
from marshmallow.fields import Field

from kms_service.domain.errors import SerializationException, ValidationException
from kms_service.wire.fields import (
    CONSTRAINT,
    NULL,
    SERIALIZATION,
    AwsBlob,
    AwsBoolean,
    AwsField,
    AwsInteger,
    AwsList,
    AwsString,
    AwsStringMap,
    AwsStruct,
    untag,
)

_MAX_ECHO = 1024


def load_request(schema: Schema, body: dict[str, Any]) -> dict[str, Any]:
    """Validate ``body`` and return it with blobs decoded; absent members stay absent.

    Raises :class:`SerializationException` or :class:`ValidationException`.
    """
    cleaned = _drop_nulls(body)
    fast = _load_flat(schema, cleaned)
    if fast is not None:
        return fast
    try:
        loaded: dict[str, Any] = schema.load(cleaned)
    except ValidationError as exc:
        raise _aws_error(schema, exc.messages, cleaned) from None
    return loaded


#: Fields whose value is one JSON scalar or string map: marshmallow adds nothing to their own
#: ``_deserialize`` but its per-field bookkeeping, which was most of the cost of a request's
#: validation. Lists and structures keep marshmallow's nesting and error paths.
_FLAT_FIELDS = (AwsString, AwsBlob, AwsInteger, AwsBoolean, AwsStringMap)
_Plan = tuple[tuple[str, Field[Any]], ...]
_FLAT_PLANS: weakref.WeakKeyDictionary[Schema, _Plan | None] = weakref.WeakKeyDictionary()


def _flat_plan(schema: Schema) -> _Plan | None:
    """The (name, field) pairs :func:`_load_flat` may handle for ``schema``, or None if the
    schema has anything beyond plain fields (hooks, validators, renamed members)."""
    try:
        return _FLAT_PLANS[schema]
    except KeyError:
        pass
    plan: _Plan | None = tuple(schema.load_fields.items())
    if any(schema._hooks.values()) or any(
        field.data_key is not None or field.attribute is not None or field.validators
        for _, field in plan or ()
    ):
        plan = None
    _FLAT_PLANS[schema] = plan
    return plan


def _load_flat(schema: Schema, body: dict[str, Any]) -> dict[str, Any] | None:
    """What ``schema.load(body)`` returns, computed field by field, when every member present
    is a flat field that accepts its value; None otherwise (a nested member, a missing
    required member or any invalid value), so that marshmallow itself produces the error."""
    plan = _flat_plan(schema)
    if plan is None:
        return None
    loaded: dict[str, Any] = {}
    for name, field in plan:
        if name not in body:
            if field.required:
                return None
            continue
        if not isinstance(field, _FLAT_FIELDS):
            return None
        try:
            loaded[name] = field._deserialize(body[name], name, body)
        except ValidationError:
            return None
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
