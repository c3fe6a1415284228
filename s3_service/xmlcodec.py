"""S3's XML: building response documents and reading the few request bodies S3 takes.

Request bodies come from clients, so parsing refuses DTDs outright (no entity expansion of
any kind) and caps the size; S3 never sends or needs a DOCTYPE.
"""

from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from s3_service.errors import S3Error, malformed_xml

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
#: CompleteMultipartUpload with 10,000 parts is about 1 MB; nothing legitimate is larger.
MAX_REQUEST_XML = 2 * 1024 * 1024

Child = tuple[str, "str | int | bool | list[Child] | None"]


def element(parent: ET.Element, tag: str, value: str | int | bool | list[Child] | None) -> None:
    """Append ``<tag>value</tag>`` to ``parent``; a list value becomes nested children and
    None is left out (S3 omits absent members)."""
    if value is None:
        return
    child = ET.SubElement(parent, tag)
    if isinstance(value, list):
        for name, nested in value:
            element(child, name, nested)
    elif isinstance(value, bool):
        child.text = "true" if value else "false"
    else:
        child.text = str(value)


def document(root: str, children: Iterable[Child], *, namespace: bool = True) -> bytes:
    """A complete XML document ``<root xmlns=...>children</root>`` as UTF-8 bytes."""
    node = ET.Element(root, {"xmlns": NAMESPACE} if namespace else {})
    for name, value in children:
        element(node, name, value)
    body: bytes = ET.tostring(node, encoding="utf-8", xml_declaration=True)
    return body


def text_document(root: str, value: str) -> bytes:
    """``<root xmlns=...>value</root>`` (GetBucketLocation's shape)."""
    node = ET.Element(root, {"xmlns": NAMESPACE})
    node.text = value
    body: bytes = ET.tostring(node, encoding="utf-8", xml_declaration=True)
    return body


#: What XML 1.0 cannot carry at all, even escaped: control characters other than tab, line
#: feed and carriage return, surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 cannot carry replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def error_document(error: S3Error, resource: str, request_id: str, host_id: str) -> bytes:
    """S3's ``<Error>`` body (no namespace, as AWS sends it). A request's own path or key
    echoed in it (``Resource``, ``Key``) loses the characters XML cannot carry, so that the
    document always parses."""
    children: list[Child] = [("Code", error.code), ("Message", xml_safe(error.message))]
    children.extend((name, xml_safe(value)) for name, value in error.details.items())
    children.extend(
        [("Resource", xml_safe(resource)), ("RequestId", request_id), ("HostId", host_id)]
    )
    return document("Error", children, namespace=False)


def parse(body: bytes, root: str) -> ET.Element:
    """The request document, namespaces stripped, whose root element must be ``root``.

    Raises ``MalformedXML`` for anything else, including any DTD.
    """
    if len(body) > MAX_REQUEST_XML or b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise malformed_xml()
    try:
        node = ET.fromstring(body)  # noqa: S314 - DTDs refused above, size capped
    except ET.ParseError:
        raise malformed_xml() from None
    for item in node.iter():
        if isinstance(item.tag, str) and "}" in item.tag:
            item.tag = item.tag.split("}", 1)[1]
    if node.tag != root:
        raise malformed_xml()
    return node


def text(node: ET.Element, tag: str) -> str | None:
    """The text of the direct child ``tag`` ("" when empty), or None if it is absent."""
    child = node.find(tag)
    if child is None:
        return None
    return child.text or ""


def timestamp(seconds: float) -> str:
    """ISO 8601 with milliseconds and ``Z``, as S3 writes ``LastModified`` in XML."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
