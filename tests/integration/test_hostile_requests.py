"""Hostile input, as properties: thousands of generated malformed requests, sent over raw
sockets to one real ``mock-kms serve`` (2 gunicorn workers), each of which must get a
response, a 4xx status, the error shape of the service it was meant for (KMS JSON with
``__type`` and ``message``; S3 XML ``<Error>`` with ``Code`` and ``Message``) and no
internals; at the end the server still serves ordinary requests.

The families: JSON nested past the limit in every member position; wrong JSON types for
every member of every operation; bad, repeated and oversized headers, request lines and
framing at the socket level; ``X-Amz-Target`` values naming other services or nothing; bad
bodies and encodings for KMS and S3; S3 paths with odd methods, queries and headers.

``pytest -s`` prints the figures (requests per family, server errors, closed connections).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kms_service.operations import OPERATIONS
from kms_service.wire import fields as wire_fields
from tests.support.hostile import (
    EITHER,
    KMS,
    S3,
    Tally,
    check_answer,
    deep_body,
    exchange,
    http_request,
    kms_request,
    member_positions,
    placed,
    shape_of,
)
from tests.support.s3 import kms_client, s3_client
from tests.support.server import RunningServer, free_port, running_server

ROOT = Path(__file__).resolve().parents[2]
TALLY = Tally()
POSITIONS = member_positions()
BUCKET = "hostile"
#: KMS operations that fail for any body naming no existing key: whatever a generated body
#: parses to, the answer is a 4xx (a missing or unknown KeyId).
KEYED_OPERATIONS = ["DescribeKey", "GetKeyPolicy", "ListResourceTags", "DisableKey"]
SERIALIZATION = "SerializationException"


def hypothesis_settings(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("hostile") / "data", workers=2) as running:
        s3_client(running).create_bucket(Bucket=BUCKET)
        yield running


def send(
    server: RunningServer,
    family: str,
    request: bytes,
    expected: str,
    *,
    head: bool = False,
    kms_type: str | None = None,
) -> None:
    """Send one hostile request, count it, and check its answer."""
    answer = exchange(server.port, request, head=head)
    TALLY.record(family, answer, None if answer is None else shape_of(answer))
    check_answer(answer, request, expected, head=head, kms_type=kms_type)


# --- 1. nesting past the limit, in every member position --------------------------------------
@pytest.mark.parametrize("kind", ["list", "object", "mixed"])
def test_deep_nesting_in_every_member(server: RunningServer, kind: str) -> None:
    for operation, path, _ in POSITIONS:
        body = deep_body(path, 600, kind)
        send(
            server,
            "deep",
            kms_request(f"TrentService.{operation}", body),
            KMS,
            kms_type=SERIALIZATION,
        )


@hypothesis_settings(200)
@given(
    position=st.sampled_from(POSITIONS),
    depth=st.integers(min_value=65, max_value=5000),
    kind=st.sampled_from(["list", "object", "mixed"]),
)
def test_deep_nesting_property(
    server: RunningServer, position: tuple[str, Any, Any], depth: int, kind: str
) -> None:
    operation, path, _ = position
    body = deep_body(path, depth, kind)
    send(
        server, "deep", kms_request(f"TrentService.{operation}", body), KMS, kms_type=SERIALIZATION
    )


# --- 2. wrong JSON types for every member -----------------------------------------------------
SCALARS = [1, 1.5, True, "text"]


def wrong_values(member: Any) -> list[Any]:
    """Values of a JSON type ``member`` does not accept (never null: null means absent)."""
    if isinstance(member, wire_fields.AwsString | wire_fields.AwsBlob):
        return [1, 1.5, True, [], {}, ["x"], {"a": "b"}]
    if isinstance(member, wire_fields.AwsInteger):
        return ["1", True, 1.5, [], {}, [1]]
    if isinstance(member, wire_fields.AwsBoolean):
        return ["true", 1, 0, [], {}, [True]]
    if isinstance(member, wire_fields.AwsTimestamp):
        return ["1700000000", "2026-01-01T00:00:00Z", True, [], {}, [1]]
    if isinstance(member, wire_fields.AwsStringMap):
        return ["x", 1, [], True, {"a": 1}, {"a": ["b"]}, {"a": {"b": "c"}}, {"a": True}]
    if isinstance(member, wire_fields.AwsList):
        # Items of the wrong type: structures for a list of strings, scalars for a list of
        # structures.
        items = [1, True, [], "x"] if isinstance(member.member, type) else [1, True, [], {}, 2.5]
        return ["x", 1, True, {}, {"a": []}, *[[item] for item in items]]
    if isinstance(member, wire_fields.AwsStruct):
        return ["x", 1, True, [], [{}]]
    raise AssertionError(f"no wrong values for {member!r}")


def wrong_value_strategy(member: Any) -> st.SearchStrategy[Any]:
    """Generated values of a wrong JSON type for ``member``."""
    texts = st.text(max_size=20)
    numbers = st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    objects = st.dictionaries(texts, st.integers() | texts, min_size=0, max_size=3)
    arrays = st.lists(st.integers() | texts, max_size=3)
    fractions = st.floats(allow_nan=True).filter(lambda x: not float(x).is_integer())
    if isinstance(member, wire_fields.AwsString | wire_fields.AwsBlob):
        return numbers | st.booleans() | arrays | objects
    if isinstance(member, wire_fields.AwsInteger):
        return texts | st.booleans() | fractions | arrays | objects
    if isinstance(member, wire_fields.AwsBoolean):
        return texts | numbers | arrays | objects
    if isinstance(member, wire_fields.AwsTimestamp):
        return texts | st.booleans() | arrays | objects
    if isinstance(member, wire_fields.AwsStringMap):
        bad_values = st.dictionaries(
            texts, numbers | st.booleans() | arrays, min_size=1, max_size=3
        )
        return texts | numbers | st.booleans() | arrays | bad_values
    if isinstance(member, wire_fields.AwsList):
        not_a_list = texts | numbers | st.booleans() | objects
        if isinstance(member.member, wire_fields.AwsString):
            wrong_item: st.SearchStrategy[Any] = numbers | st.booleans() | arrays | objects
        else:
            wrong_item = numbers | st.booleans() | texts | arrays
        return not_a_list | st.lists(wrong_item, min_size=1, max_size=4)
    return texts | numbers | st.booleans() | arrays  # AwsStruct


def test_wrong_types_for_every_member(server: RunningServer) -> None:
    for operation, path, member in POSITIONS:
        for value in wrong_values(member):
            request = kms_request(f"TrentService.{operation}", placed(path, value))
            send(server, "wrong-type", request, KMS, kms_type=SERIALIZATION)


@st.composite
def wrong_typed_requests(draw: st.DrawFn) -> bytes:
    operation, path, member = draw(st.sampled_from(POSITIONS))
    return kms_request(
        f"TrentService.{operation}", placed(path, draw(wrong_value_strategy(member)))
    )


@hypothesis_settings(300)
@given(request=wrong_typed_requests())
def test_wrong_types_property(server: RunningServer, request: bytes) -> None:
    send(server, "wrong-type", request, KMS, kms_type=SERIALIZATION)


# --- 3. X-Amz-Target naming another service, or nothing ---------------------------------------
FOREIGN_TARGETS = [
    "DynamoDB_20120810.ListTables", "AmazonSQS.ListQueues", "Kinesis_20131202.ListStreams",
    "AWSSecurityTokenServiceV20110615.GetCallerIdentity", "secretsmanager.ListSecrets",
    "AmazonSSM.GetParameter", "Logs_20140328.DescribeLogGroups", "TrentService",
    "TrentService.", "trentservice.ListKeys", "TrentService.ListKeys.Extra", "ListKeys",
    "TrentService.NoSuchOperation", "TrentService..ListKeys", " TrentService.ListKeys x",
]  # fmt: skip
TARGET_METHODS = [b"POST", b"GET", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"]


def test_foreign_targets(server: RunningServer) -> None:
    for target in FOREIGN_TARGETS:
        for method in TARGET_METHODS:
            for body in (b"{}", b'{"TableName": "t"}', b""):
                headers = [
                    (b"X-Amz-Target", target.encode()),
                    (b"Content-Type", b"application/x-amz-json-1.0"),
                ]
                send(server, "foreign-target", http_request(method, b"/", headers, body), KMS)


header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    min_size=1,
    max_size=60,
).filter(lambda value: value.strip() and value.strip().partition(".")[2] not in OPERATIONS)


@hypothesis_settings(250)
@given(
    target=header_text,
    method=st.sampled_from(TARGET_METHODS),
    path=st.sampled_from([b"/", b"/kms", b"/a/b?c=d", b"/" + BUCKET.encode()]),
    body=st.binary(max_size=64),
)
def test_foreign_targets_property(
    server: RunningServer, target: str, method: bytes, path: bytes, body: bytes
) -> None:
    headers = [(b"X-Amz-Target", target.encode("latin-1"))]
    send(server, "foreign-target", http_request(method, path, headers, body), KMS)


# --- 4. bad, repeated and oversized headers, lines and framing --------------------------------
#: A base request of each service that fails in the app too, should gunicorn let it through:
#: DescribeKey without a KeyId, a GET in a bucket that does not exist.
KMS_CT = b"application/x-amz-json-1.1"
KMS_BASE = (
    b"POST",
    b"/",
    [(b"X-Amz-Target", b"TrentService.DescribeKey"), (b"Content-Type", KMS_CT)],
    b"{}",
)
S3_BASE = (b"GET", b"/no-such-bucket-hostile/key", [], b"")
SEPARATORS = '()<>@,;:\\"/[]?={} \t'


@st.composite
def header_troubles(draw: st.DrawFn) -> tuple[bytes, str]:
    """A request with one kind of trouble in its head or framing, and the service whose
    shape its answer must have."""
    service = draw(st.sampled_from([KMS, S3]))
    method, target, headers, body = KMS_BASE if service == KMS else S3_BASE
    headers = list(headers)
    version = b"HTTP/1.1"
    trouble = draw(
        st.sampled_from(
            [
                "duplicate", "bad-name", "bad-value", "no-colon", "folding", "long-header",
                "many-headers", "long-line", "content-length", "transfer-encoding",
                "te-and-cl", "bad-chunks", "expect", "version", "method", "bare-lf",
                "underscore",
            ]
        )
    )  # fmt: skip
    expected = service
    length = True
    if trouble == "duplicate":
        name = draw(
            st.sampled_from(
                [b"Content-Type", b"Content-Length", b"Host", b"Transfer-Encoding", b"Expect"]
            )
        )
        value = draw(
            st.sampled_from(
                [b"a", b"0", b"chunked", b"100-continue", b"application/x-amz-json-1.1"]
            )
        )
        headers += [(name, value), (name, value)]
    elif trouble == "bad-name":
        text = draw(
            st.text(min_size=1, max_size=10).filter(lambda t: "\r" not in t and "\n" not in t)
        )
        bad = draw(st.sampled_from([*SEPARATORS, "\x01", "\x7f", "é", "\u20ac"]))
        headers.append(((text + bad + "X").encode("utf-8"), b"v"))
    elif trouble == "bad-value":
        bad = draw(st.sampled_from([b"\x00", b"\x01", b"\x7f", b"\x1b", b"\x08"]))
        headers.append((b"X-Amz-Meta-Odd", b"a" + bad + b"b"))
    elif trouble == "no-colon":
        headers.append(
            (draw(st.text("abcXYZ-", min_size=1, max_size=20)).encode() + b" no colon", b"here")
        )
    elif trouble == "folding":
        headers.append((b"X-Folded", b"first\r\n " + draw(st.text("abc ", max_size=10)).encode()))
    elif trouble == "long-header":
        headers.append((b"X-Long", b"v" * draw(st.integers(8200, 30000))))
    elif trouble == "many-headers":
        headers += [(b"X-H%d" % i, b"v") for i in range(draw(st.integers(101, 300)))]
    elif trouble == "long-line":
        target = target + b"?" + b"q" * draw(st.integers(8200, 20000))
        expected = EITHER  # the request line was never read
    elif trouble == "content-length":
        value = draw(
            st.sampled_from([b"-1", b"+5", b"0x10", b"1 2", b"abc", b"1.5", b"", b"\xc2\xb2"])
        )
        headers.append((b"Content-Length", value))
        length = False
    elif trouble == "transfer-encoding":
        coding = draw(
            st.sampled_from(
                [
                    b"gzip",
                    b"br",
                    b"chunked, chunked",
                    b"identity",
                    b"x",
                    b"chunked, gzip",
                    b"deflate, identity",
                ]
            )
        )
        headers.append((b"Transfer-Encoding", coding))
        length = False
    elif trouble == "te-and-cl":
        headers += [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"5")]
        body, length = b"0\r\n\r\n", False
    elif trouble == "bad-chunks":
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = draw(
            st.sampled_from(
                [
                    b"zz\r\n{}\r\n0\r\n\r\n",
                    b"2\r\n{}XX0\r\n\r\n",
                    b"2;\x01\r\n{}\r\n0\r\n\r\n",
                    b"-1\r\n\r\n",
                    b"2\r\n{}\r\n0\r\nBad Trailer\r\n\r\n",
                ]
            )
        )
        length = False
    elif trouble == "expect":
        headers.append((b"Expect", draw(st.text("abcdef-0123", min_size=1, max_size=12)).encode()))
    elif trouble == "version":
        version = draw(
            st.sampled_from(
                [b"HTTP/9.9", b"HTTP/1.x", b"HTTP/2.0", b"HTTPS/1.1", b"HTTP/1.1.1", b"http/1.1"]
            )
        )
        expected = EITHER
    elif trouble == "method":
        method = draw(st.sampled_from([b"P@ST", b"GE T", b"G\x01T", b"(GET)", b"G\xc3\xa9T"]))
        expected = EITHER
    elif trouble == "bare-lf":
        headers.append((b"X-A", b"1\nX-B: 2"))
    else:  # underscore: gunicorn refuses names that would alias another in the WSGI environ
        headers.append((b"X_Amz_Date", b"20240101T000000Z"))
    if trouble == "expect" and headers[-1][1].lower() == b"100-continue":
        headers[-1] = (b"Expect", b"100-continue-not")
    return http_request(
        method, target, headers, body, version=version, content_length=length
    ), expected


@hypothesis_settings(500)
@given(trouble=header_troubles())
def test_header_troubles_property(server: RunningServer, trouble: tuple[bytes, str]) -> None:
    request, expected = trouble
    send(server, "headers", request, expected)


def test_the_issue_examples(server: RunningServer) -> None:
    """The requests the issue names: two Content-Type lines on a KMS call, and on S3."""
    kms_twice = http_request(
        b"POST",
        b"/",
        [
            (b"X-Amz-Target", b"TrentService.ListKeys"),
            (b"Content-Type", KMS_CT),
            (b"Content-Type", KMS_CT),
        ],
        b"{}",
    )
    send(server, "headers", kms_twice, KMS, kms_type="MalformedHttpRequestException")
    s3_twice = http_request(
        b"PUT", b"/hostile/k", [(b"Content-Type", b"a"), (b"Content-Type", b"b")], b"x"
    )
    send(server, "headers", s3_twice, S3)
    send(
        server,
        "foreign-target",
        kms_request("DynamoDB_20120810.ListTables", {}),
        KMS,
        kms_type="UnknownOperationException",
    )
    send(
        server,
        "wrong-type",
        kms_request("TrentService.CreateKey", {"Tags": "x"}),
        KMS,
        kms_type=SERIALIZATION,
    )


# --- 5. bad bodies and encodings --------------------------------------------------------------
def not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


kms_bodies = st.one_of(
    st.binary(max_size=200).filter(not_utf8),
    st.text(max_size=100).map(str.encode),
    st.sampled_from(
        [b"[]", b'"s"', b"1", b"true", b"null", b'{"a":', b"{", b"}", b'{"a" 1}', b"\xef\xbb\xbf{}"]
    ),
    st.sampled_from(["utf-16", "utf-32", "utf-16-be"]).map(
        lambda enc: '{"KeyId": "k"}'.encode(enc)
    ),
    st.integers(4400, 6000).map(lambda digits: b'{"Limit": ' + b"9" * digits + b"}"),
    st.sampled_from(
        [
            b'{"KeyId": NaN}',
            b'{"KeyId": Infinity}',
            b'{"Limit": 1e999}',
            b'{"KeyId": "\\ud800"}',
            b'{"KeyId": "a", "KeyId": 1}',
            b'{"KeyId": "\\u0000"}',
        ]
    ),
    st.binary(min_size=1, max_size=40).map(lambda data: b"\x1f\x8b\x08\x00" + data),
)


@hypothesis_settings(300)
@given(
    operation=st.sampled_from(KEYED_OPERATIONS),
    body=kms_bodies,
    content_type=st.sampled_from(
        [KMS_CT, b"application/json", b"text/plain", b"application/x-amz-json-1.0"]
    ),
    encoding=st.sampled_from([None, b"gzip", b"br", b"x-garbage"]),
)
def test_kms_bad_bodies_property(
    server: RunningServer, operation: str, body: bytes, content_type: bytes, encoding: bytes | None
) -> None:
    headers = [
        (b"X-Amz-Target", f"TrentService.{operation}".encode()),
        (b"Content-Type", content_type),
    ]
    if encoding is not None:
        headers.append((b"Content-Encoding", encoding))
    send(server, "kms-body", http_request(b"POST", b"/", headers, body), KMS)


def md5_header(body: bytes) -> bytes:
    return base64.b64encode(hashlib.md5(body).digest())


xml_bodies = st.one_of(
    st.binary(max_size=200),
    st.integers(100, 20000).map(lambda depth: b"<a>" * depth + b"</a>" * depth),
    st.integers(100, 20000).map(
        lambda depth: b"<Delete>" + b"<Object>" * depth + b"</Object>" * depth + b"</Delete>"
    ),
    st.sampled_from(
        [
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
            b"<Delete><Object><Key></Key></Object></Delete>",
            b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>",
            b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
            b"<\xff\xfe/>",
        ]
    ),
)


@st.composite
def s3_bad_bodies(draw: st.DrawFn) -> bytes:
    """An S3 request whose body or body headers are wrong."""
    kind = draw(
        st.sampled_from(
            ["xml", "md5", "sha256", "aws-chunked", "chunked", "sse", "sse-c", "no-length"]
        )
    )
    body = draw(st.binary(max_size=100))
    if kind == "xml":
        method, target = draw(
            st.sampled_from(
                [
                    (b"PUT", b"/hostile?encryption"),
                    (b"POST", b"/hostile?delete"),
                    (b"POST", b"/hostile/k?uploadId=nope"),
                ]
            )
        )
        xml = draw(xml_bodies)
        headers = [(b"Content-MD5", md5_header(xml))] if draw(st.booleans()) else []
        return http_request(method, target, headers, xml)
    if kind == "md5":
        value = draw(st.sampled_from([b"", b"x", b"AAAA", md5_header(body + b"other"), b"\xff"]))
        return http_request(b"PUT", b"/hostile/k-md5", [(b"Content-MD5", value)], body)
    if kind == "sha256":
        # A well-formed digest of other bytes (mock-kms's S3 ignores malformed values).
        other = hashlib.sha256(body + draw(st.binary(min_size=1, max_size=8))).hexdigest()
        value = draw(st.sampled_from([b"0" * 64, other.encode()]))
        return http_request(b"PUT", b"/hostile/k-sha", [(b"x-amz-content-sha256", value)], body)
    if kind == "aws-chunked":
        framed = draw(
            st.sampled_from(
                [b"zz;chunk-signature=x\r\n", b"5\r\nab", b"10\r\n" + body, b"-1\r\n\r\n"]
            )
        )
        headers = [
            (b"Content-Encoding", b"aws-chunked"),
            (b"x-amz-decoded-content-length", b"%d" % len(body)),
            (b"x-amz-content-sha256", b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        ]
        return http_request(b"PUT", b"/hostile/k-aws-chunked", headers, framed)
    if kind == "chunked":
        framed = draw(
            st.sampled_from([b"zz\r\n", b"2\r\nabXX0\r\n\r\n", b"2;\x01\r\nab\r\n0\r\n\r\n"])
        )
        return http_request(
            b"PUT",
            b"/hostile/k-chunked",
            [(b"Transfer-Encoding", b"chunked")],
            framed,
            content_length=False,
        )
    if kind == "sse":
        headers = draw(
            st.sampled_from(
                [
                    [(b"x-amz-server-side-encryption", b"AES512")],
                    [
                        (b"x-amz-server-side-encryption", b"aws:kms"),
                        (b"x-amz-server-side-encryption-aws-kms-key-id", b"alias/none-such"),
                    ],
                    [
                        (b"x-amz-server-side-encryption", b"aws:kms"),
                        (b"x-amz-server-side-encryption-context", b"not base64!"),
                    ],
                    [
                        (b"x-amz-server-side-encryption", b"aws:kms"),
                        (b"x-amz-server-side-encryption-context", base64.b64encode(b'{"a": [1]}')),
                    ],
                    [
                        (b"x-amz-server-side-encryption", b"aws:kms"),
                        (
                            b"x-amz-server-side-encryption-context",
                            base64.b64encode(b"[" * 5000 + b"]" * 5000),
                        ),
                    ],
                    [(b"x-amz-server-side-encryption-aws-kms-key-id", b"k")],
                ]
            )
        )
        return http_request(b"PUT", b"/hostile/k-sse", headers, body)
    if kind == "sse-c":  # any SSE-C header over plain HTTP is refused
        value = draw(st.binary(max_size=40).map(base64.b64encode))
        headers = [
            (b"x-amz-server-side-encryption-customer-algorithm", b"AES256"),
            (b"x-amz-server-side-encryption-customer-key", value),
        ]
        return http_request(b"PUT", b"/hostile/k-ssec", headers, body)
    return http_request(b"PUT", b"/hostile/k-nolength", [], body, content_length=False)


@hypothesis_settings(250)
@given(request=s3_bad_bodies())
def test_s3_bad_bodies_property(server: RunningServer, request: bytes) -> None:
    send(server, "s3-body", request, S3)


# --- 6. S3 paths with odd methods, queries and headers ----------------------------------------
S3_PATHS = [
    b"/", b"/hostile", b"/hostile/", b"/hostile/k", b"/no-such-bucket-hostile/k", b"//",
    b"/%ff%fe", b"/hostile/%00", b"/hostile/a/../b", b"/hostile/" + b"k" * 1100, b"/Bad_Bucket",
    b"/hostile?acl", b"/hostile?versions", b"/hostile/k?tagging", b"/hostile?list-type=9",
    b"/hostile?max-keys=-5", b"/hostile?uploads&upload-id-marker=%ff", b"/x?%zz=1",
]  # fmt: skip
ODD_METHODS = [b"PATCH", b"TRACE", b"PROPFIND", b"OPTIONS", b"MKCOL", b"LOCK", b"FOO", b"COPY"]


@st.composite
def s3_odd_requests(draw: st.DrawFn) -> tuple[bytes, bool]:
    """An S3 request that must fail: an odd method anywhere, or an ordinary method on a
    missing bucket or key with odd headers. Returns the bytes and whether it is a HEAD."""
    odd_headers = draw(
        st.lists(
            st.sampled_from([
                (b"Range", b"bytes=zz-"), (b"Range", b"bytes=9999999-1"), (b"If-Match", b"\"x"),
                (b"If-Modified-Since", b"yesterday"), (b"x-amz-copy-source", b"/%ff"),
                (b"x-amz-copy-source", b"nothing"), (b"x-amz-meta-big", b"m" * 3000),
                (b"Authorization", b"AWS4-HMAC-SHA256 garbage"), (b"x-amz-date", b"never"),
                (b"Host", b"bucket.localhost"), (b"x-amz-acl", b"public-read-write"),
                (b"x-amz-storage-class", b"GLACIER_DEEP"), (b"Content-Type", b"\xff\xfe"),
            ]),
            max_size=3,
            unique=True,
        )
    )  # fmt: skip
    if draw(st.booleans()):
        method = draw(st.sampled_from(ODD_METHODS))
        path = draw(st.sampled_from(S3_PATHS))
    else:
        method = draw(st.sampled_from([b"GET", b"HEAD", b"DELETE", b"PUT", b"POST"]))
        missing = (
            b"/no-such-bucket-hostile/" + draw(st.text("abc/%20", min_size=1, max_size=30)).encode()
        )
        path = draw(
            st.sampled_from(
                [missing, b"/hostile/missing-" + draw(st.text("abc", min_size=1)).encode()]
            )
        )
        if method in (b"PUT", b"POST", b"DELETE"):
            path = missing  # in an existing bucket these succeed (DELETE of no key too)
        if method == b"POST":
            path += b"?uploads"
    headers = [
        header
        for header in odd_headers
        if not (header[0] == b"Host" and path.startswith(b"/hostile/missing"))
    ]
    return http_request(method, path, headers, draw(st.binary(max_size=20))), method == b"HEAD"


@hypothesis_settings(400)
@given(request=s3_odd_requests())
def test_s3_odd_requests_property(server: RunningServer, request: tuple[bytes, bool]) -> None:
    raw, head = request
    send(server, "s3-path", raw, S3, head=head)


def test_s3_odd_methods_everywhere(server: RunningServer) -> None:
    for method in ODD_METHODS:
        for path in S3_PATHS:
            send(server, "s3-path", http_request(method, path, [], b""), S3)


# --- the other way to start the server ------------------------------------------------------
def test_deploy_config_answers_aws_shaped_too(tmp_path: Path) -> None:
    """``gunicorn -c deploy/gunicorn.conf.py`` runs the same worker: gunicorn's refusals are
    AWS-shaped there as well."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_KMS_")}
    env.update(
        MOCK_KMS_BIND=f"127.0.0.1:{port}", MOCK_KMS_DATA_DIR=str(tmp_path / "data"),
        MOCK_KMS_WORKERS="1",
    )  # fmt: skip
    gunicorn = Path(sys.executable).parent / "gunicorn"
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [str(gunicorn), "-c", str(ROOT / "deploy" / "gunicorn.conf.py")],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
    deployed = RunningServer(process, port, tmp_path / "data", log_path, env)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None and time.monotonic() < deadline, deployed.log()
            with contextlib.suppress(OSError, urllib.error.URLError):
                if deployed.health().get("status") == "ok":
                    break
            time.sleep(0.1)
        twice = [(b"X-Amz-Target", b"TrentService.ListKeys"), (b"Content-Type", KMS_CT)] * 2
        malformed = "MalformedHttpRequestException"
        send(deployed, "deploy", http_request(b"POST", b"/", twice, b"{}"), KMS, kms_type=malformed)
        s3_twice = [(b"Content-Type", b"a"), (b"Content-Type", b"b")]
        send(deployed, "deploy", http_request(b"PUT", b"/b/k", s3_twice, b"x"), S3)
        deep = kms_request("TrentService.CreateKey", deep_body(("Tags",), 800, "list"))
        send(deployed, "deploy", deep, KMS, kms_type=SERIALIZATION)
        assert "AwsErrorWorker" in deployed.log()
    finally:
        deployed.stop()


# --- afterwards -------------------------------------------------------------------------------
def test_server_still_serves_and_figures(server: RunningServer) -> None:
    """The server is alive and correct after everything above; the figures, printed."""
    kms = kms_client(server)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"still here")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"still here"
    s3 = s3_client(server)
    s3.put_object(Bucket=BUCKET, Key="after", Body=b"after the storm")
    assert s3.get_object(Bucket=BUCKET, Key="after")["Body"].read() == b"after the storm"
    assert server.process.poll() is None
    print("\n" + TALLY.figures())
    print(f"statuses: {dict(sorted(TALLY.statuses.items()))}")
    assert TALLY.server_errors == 0 and TALLY.closed == 0
