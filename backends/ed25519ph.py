"""Ed25519ph (RFC 8032 section 5.1, ``phflag = 1``, empty context): AWS's ``ED25519_PH_SHA_512``.

`cryptography` (and OpenSSL 3.0) offer only pure Ed25519, so the pre-hash variant is written out
here from RFC 8032's definitions: it differs from pure Ed25519 only in the ``dom2`` prefix
hashed into ``r`` and ``k`` and in signing ``SHA-512(message)``. Plain integer arithmetic, so it
is not constant-time; the software backend is for development, and docs/key-types.md says so.
The RFC 8032 section 7.3 test vector is checked in the unit tests.
"""

from __future__ import annotations

import hashlib

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
#: dom2(phflag=1, context="") from RFC 8032 section 2.
_DOM2 = b"SigEd25519 no Ed25519 collisions" + bytes([1, 0])

_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _add(p: _Point, q: _Point) -> _Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _multiply(scalar: int, point: _Point) -> _Point:
    result: _Point = (0, 1, 1, 0)
    while scalar > 0:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _equal(p: _Point, q: _Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % _P == 0 and (p[1] * q[2] - q[1] * p[2]) % _P == 0


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
assert _GX is not None
_G: _Point = (_GX, _GY, 1, _GX * _GY % _P)


def _compress(point: _Point) -> bytes:
    z_inverse = pow(point[2], _P - 2, _P)
    x = point[0] * z_inverse % _P
    y = point[1] * z_inverse % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _decompress(encoded: bytes) -> _Point | None:
    if len(encoded) != 32:
        return None
    y = int.from_bytes(encoded, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


def _hash_int(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def _expand(seed: bytes) -> tuple[int, bytes]:
    digest = hashlib.sha512(seed).digest()
    scalar = int.from_bytes(digest[:32], "little")
    scalar &= (1 << 254) - 8
    scalar |= 1 << 254
    return scalar, digest[32:]


def public_key(seed: bytes) -> bytes:
    """The 32-byte public key of the 32-byte private ``seed``."""
    scalar, _ = _expand(seed)
    return _compress(_multiply(scalar, _G))


def sign(seed: bytes, digest: bytes) -> bytes:
    """The 64-byte Ed25519ph signature of ``digest`` (the SHA-512 of the message) under the
    32-byte private ``seed``. Raises ``ValueError`` for a digest that is not 64 bytes."""
    if len(seed) != 32 or len(digest) != 64:
        raise ValueError("Ed25519ph needs a 32-byte seed and a 64-byte SHA-512 digest")
    scalar, prefix = _expand(seed)
    encoded_public = _compress(_multiply(scalar, _G))
    r = _hash_int(_DOM2, prefix, digest) % _L
    encoded_r = _compress(_multiply(r, _G))
    k = _hash_int(_DOM2, encoded_r, encoded_public, digest) % _L
    s = (r + k * scalar) % _L
    return encoded_r + int.to_bytes(s, 32, "little")


def verify(public: bytes, digest: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519ph signature of ``digest`` under the 32-byte
    ``public`` key (RFC 8032 section 5.1.7, cofactored check)."""
    if len(public) != 32 or len(signature) != 64 or len(digest) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    k = _hash_int(_DOM2, signature[:32], public, digest) % _L
    left = _multiply(8 * s, _G)
    right = _multiply(8, _add(r, _multiply(k, a)))
    return _equal(left, right)
