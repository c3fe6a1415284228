"""The AWS-shaped answers to requests gunicorn refuses (kms_service.serving.http_errors):
real gunicorn parsing of crafted bytes, then the refusal's kind, the service it was meant
for, and the exact response written."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http import errors as gunicorn_errors
from gunicorn.http.parser import RequestParser

from kms_service.serving.http_errors import (
    KMS,
    S3,
    WORKER_CLASS,
    AwsErrorWorker,
    Refusal,
    RequestHead,
    classify,
    error_response,
    new_request_id,
    request_being_parsed,
    service_for,
    shown,
)

CONFIG = Config()
KMS_LINE = b"POST / HTTP/1.1\r\nHost: h\r\n"
TARGET = b"X-Amz-Target: TrentService.ListKeys\r\n"


def refusal_of(raw: bytes) -> BaseException:
    """The exception gunicorn's own parser raises on ``raw`` (the test fails if it parses)."""
    parser = RequestParser(CONFIG, iter([raw]), ("127.0.0.1", 1))
    with pytest.raises(Exception) as caught:
        request = next(parser)
        request.body.read()  # body framing errors surface on reading
    return caught.value


def service_of(raw: bytes) -> str:
    exc = refusal_of(raw)
    return service_for(RequestHead.from_gunicorn(request_being_parsed(exc)))


def split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


# --- which service ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "service"),
    [
        # The X-Amz-Target header is known: the app's own routing rule decides.
        (KMS_LINE + TARGET + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n", KMS),
        (b"PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", S3),
        # gunicorn failed inside the header section: the request line decides.
        (KMS_LINE + TARGET + b"Content-Type: a\r\nContent-Type: b\r\n\r\n", KMS),
        (KMS_LINE + b"Bad Name: v\r\n" + TARGET + b"\r\n", KMS),
        (KMS_LINE + b"X-Amz-Target: TrentService.\x01\r\n\r\n", KMS),
        (b"POST /b?delete HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n", S3),
        (b"GET /b/k HTTP/1.1\r\nHost: h\r\nX-F: a\r\n b\r\n\r\n", S3),
        (b"PUT /b/k HTTP/1.1\r\nHost: h\r\nExpect: nothing\r\n\r\n", S3),
        (b"POST / HTTP/9.9\r\nHost: h\r\n\r\n", KMS),
        # Not even the request line: S3, whose API puts everything in the URL.
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", S3),
        (b"HELLO\r\n\r\n", S3),
    ],
)
def test_service_the_request_was_meant_for(raw: bytes, service: str) -> None:
    assert service_of(raw) == service


def test_service_from_a_parsed_head() -> None:
    target = (("X-AMZ-TARGET", "DynamoDB_20120810.ListTables"),)
    assert service_for(RequestHead("GET", "/b", "", target)) == KMS
    json_post = (("CONTENT-TYPE", "application/x-amz-json-1.1"),)
    assert service_for(RequestHead("POST", "/", "", json_post)) == KMS
    assert service_for(RequestHead("POST", "/", "", (("HOST", "h"),))) == S3
    assert service_for(RequestHead("POST", "/", "", ())) == KMS
    assert service_for(RequestHead("POST", "/b", "uploads", ())) == S3
    assert service_for(None) == S3


# --- which refusal ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "refusal", "words"),
    [
        (
            KMS_LINE + b"Content-Type: a\r\nContent-Type: b\r\n\r\n",
            Refusal.MALFORMED,
            "CONTENT-TYPE",
        ),
        (KMS_LINE + b"Bad Name: v\r\n\r\n", Refusal.MALFORMED, "'Bad Name'"),
        (KMS_LINE + b"X: a\r\n b\r\n\r\n", Refusal.MALFORMED, "folded"),
        (KMS_LINE + b"Expect: x\r\n\r\n", Refusal.MALFORMED, "100-continue"),
        (b"P@ST / HTTP/1.1\r\n\r\n", Refusal.MALFORMED, "method"),
        (b"POST / HTTP/9.9\r\n\r\n", Refusal.MALFORMED, "HTTP version"),
        (
            KMS_LINE + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            Refusal.MALFORMED,
            "chunked transfer encoding",
        ),
        (KMS_LINE + b"Transfer-Encoding: br\r\n\r\n", Refusal.UNSUPPORTED, "'br'"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", Refusal.TOO_LARGE, "(4094 bytes)"),
        (KMS_LINE + b"X: " + b"v" * 9000 + b"\r\n\r\n", Refusal.TOO_LARGE, "headers"),
        (
            KMS_LINE + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n",
            Refusal.TOO_LARGE,
            "headers",
        ),
    ],
)
def test_classify_gunicorn_refusals(raw: bytes, refusal: Refusal, words: str) -> None:
    kind, message = classify(refusal_of(raw))
    assert kind is refusal
    assert words in message
    assert "gunicorn" not in message.lower() and "Error" not in message


def test_classify_what_is_not_the_clients_fault() -> None:
    assert classify(KeyError("x")) == (Refusal.INTERNAL, "")
    response_header = gunicorn_errors.InvalidResponseHeader("X-Bad")
    assert classify(response_header)[0] is Refusal.INTERNAL
    assert classify(gunicorn_errors.ForbiddenProxyRequest("10.0.0.1"))[0] is Refusal.FORBIDDEN


def test_shown_echoes_only_a_safe_prefix() -> None:
    assert shown("Bad Name") == "'Bad Name'"
    assert shown("a\x00b\xffc") == "'a?b?c'"
    assert shown("x" * 500) == "'" + "x" * 64 + "...'"


# --- the response written ---------------------------------------------------------------------
def test_kms_response_shape() -> None:
    head = RequestHead("POST", "/", "", ())
    status, headers, body = split(
        error_response(KMS, Refusal.MALFORMED, "Bad header.", head, new_request_id(KMS))
    )
    assert status == 400
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert headers["X-Amzn-ErrorType"] == "MalformedHttpRequestException"
    assert len(headers["x-amzn-RequestId"]) == 36
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body)
    assert json.loads(body) == {"__type": "MalformedHttpRequestException", "message": "Bad header."}


@pytest.mark.parametrize(
    ("refusal", "status", "error_type"),
    [
        (Refusal.TOO_LARGE, 413, "RequestEntityTooLargeException"),
        (Refusal.UNSUPPORTED, 400, "MalformedHttpRequestException"),
        (Refusal.FORBIDDEN, 400, "AccessDeniedException"),
        (Refusal.INTERNAL, 500, "KMSInternalException"),
    ],
)
def test_kms_error_per_refusal(refusal: Refusal, status: int, error_type: str) -> None:
    got_status, headers, body = split(error_response(KMS, refusal, "m", None, "rid"))
    decoded: dict[str, Any] = json.loads(body)
    assert (got_status, decoded["__type"], headers["X-Amzn-ErrorType"]) == (
        status,
        error_type,
        error_type,
    )
    assert decoded["message"]


@pytest.mark.parametrize(
    ("refusal", "status", "code"),
    [
        (Refusal.MALFORMED, 400, "InvalidRequest"),
        (Refusal.TOO_LARGE, 400, "RequestHeaderSectionTooLarge"),
        (Refusal.UNSUPPORTED, 501, "NotImplemented"),
        (Refusal.FORBIDDEN, 403, "AccessDenied"),
        (Refusal.INTERNAL, 500, "InternalError"),
    ],
)
def test_s3_response_shape(refusal: Refusal, status: int, code: str) -> None:
    head = RequestHead("PUT", "/bucket/key", "", ())
    got_status, headers, body = split(
        error_response(S3, refusal, "Bad header.", head, new_request_id(S3))
    )
    assert got_status == status
    assert headers["Content-Type"] == "application/xml"
    assert headers["Connection"] == "close"
    root = ET.fromstring(body)
    assert root.tag == "Error"
    assert root.findtext("Code") == code
    assert (root.findtext("Message") or "").strip()
    assert root.findtext("RequestId") == headers["x-amz-request-id"]
    assert root.findtext("Resource") == "/bucket/key"


def test_head_request_gets_headers_only() -> None:
    head = RequestHead("HEAD", "/bucket/key", "", ())
    status, headers, body = split(error_response(S3, Refusal.MALFORMED, "m", head, "RID"))
    assert (status, body) == (400, b"")
    assert int(headers["Content-Length"]) > 0


def test_internal_error_names_the_request_id() -> None:
    _, _, body = split(error_response(KMS, Refusal.INTERNAL, "", None, "rid-1"))
    assert json.loads(body)["message"] == "An internal error occurred (request id rid-1)."
    _, headers, body = split(error_response(S3, Refusal.INTERNAL, "", None, "RID2"))
    assert "RID2" in (ET.fromstring(body).findtext("Message") or "")
    assert headers["x-amz-request-id"] == "RID2"


def test_request_ids_in_each_services_form() -> None:
    assert len(new_request_id(KMS)) == 36 and new_request_id(KMS).count("-") == 4
    s3_id = new_request_id(S3)
    assert len(s3_id) == 16 and s3_id == s3_id.upper()


def test_worker_class_path_names_the_worker() -> None:
    module, _, name = WORKER_CLASS.rpartition(".")
    assert getattr(__import__(module, fromlist=[name]), name) is AwsErrorWorker


def test_both_start_paths_use_the_worker() -> None:
    # `mock-kms serve` and deploy/gunicorn.conf.py take their options from gunicorn_options.
    from kms_service.serving import gunicorn_options

    assert gunicorn_options.WORKER_CLASS == WORKER_CLASS
