"""marshmallow fields that check AWS JSON 1.1 types and the KMS model's constraints.

A wrong JSON type is a *serialization* error (``SerializationException`` on AWS); a value of
the right type that breaks a constraint is a *constraint* error, reported in the Coral wording
of ``ValidationException``. Each error message is tagged with its kind so that
:mod:`kms_service.wire.validation` can tell them apart and phrase them as AWS does.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any

from marshmallow import Schema, ValidationError, fields

SERIALIZATION = "ser"
CONSTRAINT = "con"
NULL = "null"
_SEP = "\x1f"


def tagged(kind: str, text: str) -> str:
    """A message carrying its kind (see the module docstring)."""
    return f"{kind}{_SEP}{text}"


def untag(message: str) -> tuple[str, str]:
    """Split a tagged message into ``(kind, text)``; untagged ones count as constraints."""
    kind, sep, text = message.partition(_SEP)
    return (kind, text) if sep else (CONSTRAINT, message)


class AwsField(fields.Field):  # type: ignore[type-arg]
    """Base: ``required`` missing members read ``Member must not be null``; ``sensitive``
    members never have their value echoed in an error."""

    def __init__(self, *, required: bool = False, sensitive: bool = False) -> None:
        super().__init__(required=required)
        self.sensitive = sensitive
        self.error_messages["required"] = tagged(NULL, "Member must not be null")

    def _type_error(self, expected: str) -> ValidationError:
        return ValidationError(tagged(SERIALIZATION, f"expected {expected}"))


def _length_errors(size: int, minimum: int | None, maximum: int | None) -> list[str]:
    errors = []
    if minimum is not None and size < minimum:
        errors.append(f"Member must have length greater than or equal to {minimum}")
    if maximum is not None and size > maximum:
        errors.append(f"Member must have length less than or equal to {maximum}")
    return errors


def _raise_constraints(errors: Sequence[str]) -> None:
    if errors:
        raise ValidationError([tagged(CONSTRAINT, e) for e in errors])


class AwsString(AwsField):
    """A JSON string with optional length bounds (in characters), pattern and enum."""

    def __init__(
        self,
        *,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        enum: Sequence[str] | None = None,
        required: bool = False,
        sensitive: bool = False,
    ) -> None:
        super().__init__(required=required, sensitive=sensitive)
        self.min_length = min_length
        self.max_length = max_length
        self.pattern_text = pattern
        self.pattern = re.compile(pattern) if pattern else None
        self.enum = list(enum) if enum else None

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self._type_error("a string")
        errors = _length_errors(len(value), self.min_length, self.max_length)
        if self.pattern is not None and not self.pattern.fullmatch(value):
            errors.append(f"Member must satisfy regular expression pattern: {self.pattern_text}")
        if self.enum is not None and value not in self.enum:
            errors.append(f"Member must satisfy enum value set: [{', '.join(self.enum)}]")
        _raise_constraints(errors)
        return value


class AwsBlob(AwsField):
    """Standard padded base64 in JSON; returns bytes. Bounds are in decoded bytes. Blob values
    are never echoed in errors (as AWS does for sensitive members)."""

    def __init__(
        self,
        *,
        min_length: int | None = None,
        max_length: int | None = None,
        required: bool = False,
    ) -> None:
        super().__init__(required=required, sensitive=True)
        self.min_length = min_length
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bytes:
        if not isinstance(value, str):
            raise self._type_error("a base64 string")
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(tagged(SERIALIZATION, "invalid base64")) from None
        _raise_constraints(_length_errors(len(decoded), self.min_length, self.max_length))
        return decoded


class AwsInteger(AwsField):
    """A JSON integer (not a bool, not a fraction) with optional bounds."""

    def __init__(
        self, *, minimum: int | None = None, maximum: int | None = None, required: bool = False
    ) -> None:
        super().__init__(required=required)
        self.minimum = minimum
        self.maximum = maximum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._type_error("an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise self._type_error("an integer")
            value = int(value)
        errors = []
        if self.minimum is not None and value < self.minimum:
            errors.append(f"Member must have value greater than or equal to {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            errors.append(f"Member must have value less than or equal to {self.maximum}")
        _raise_constraints(errors)
        return int(value)


class AwsBoolean(AwsField):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self._type_error("a boolean")
        return value


class AwsStringMap(AwsField):
    """A JSON object of string to string (``EncryptionContext``)."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise self._type_error("an object")
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str):
                raise self._type_error("an object of strings")
        return dict(value)


class AwsList(AwsField):
    """A JSON array whose members are checked by ``member`` (a field, or a schema class)."""

    def __init__(
        self,
        member: AwsField | type[Schema],
        *,
        min_length: int | None = None,
        max_length: int | None = None,
        required: bool = False,
    ) -> None:
        super().__init__(required=required)
        self.member = member
        self.min_length = min_length
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self._type_error("an array")
        result: list[Any] = []
        errors: dict[int, Any] = {}
        for index, item in enumerate(value):
            try:
                if isinstance(self.member, AwsField):
                    result.append(self.member.deserialize(item))
                else:
                    if not isinstance(item, Mapping):
                        raise self._type_error("an object")
                    result.append(self.member().load(item))
            except ValidationError as exc:
                errors[index] = exc.messages
        length_errors = _length_errors(len(value), self.min_length, self.max_length)
        if length_errors:
            errors[-1] = [tagged(CONSTRAINT, e) for e in length_errors]
        if errors:
            raise ValidationError(errors)
        return result


class AwsStruct(AwsField):
    """A JSON object checked by a nested schema."""

    def __init__(self, schema: type[Schema], *, required: bool = False) -> None:
        super().__init__(required=required)
        self.schema = schema

    def _deserialize(
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self._type_error("an object")
        loaded: dict[str, Any] = self.schema().load(value)
        return loaded


class AwsTimestamp(AwsField):
    """A timestamp as the AWS JSON protocols send it: epoch seconds, an integer or a fraction
    (botocore sends integers, other SDKs fractions); returns float epoch seconds."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._type_error("a timestamp (epoch seconds)")
        return float(value)
