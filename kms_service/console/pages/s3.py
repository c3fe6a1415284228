"""The S3 pages: buckets, each object's protection, and its envelope."""

from __future__ import annotations

from typing import Any

from flask import (
    abort,
    current_app,
    render_template,
    request,
)

from kms_service.console.actions import services
from kms_service.console.blueprint import (
    console,
    current_scope,
)
from kms_service.console.keys import (
    find_key,
)
from kms_service.console.s3_objects import object_protection


# --- S3 -------------------------------------------------------------------------------------
def _s3() -> Any:
    return current_app.extensions.get("mock_kms.s3")


@console.get("/s3")
def s3_page() -> str:
    scope = current_scope()
    s3 = _s3()
    buckets = s3.store.list_buckets(scope.account_id) if s3 is not None else []
    return render_template("s3.html", scope=scope, s3_enabled=s3 is not None, buckets=buckets)


@console.get("/s3/<bucket>")
def bucket_page(bucket: str) -> str:
    scope = current_scope()
    s3 = _s3()
    if s3 is None:
        abort(404)
    from s3_service.errors import S3Error

    try:
        record = s3.store.get_bucket(bucket)
    except S3Error:
        abort(404)
    if record.account_id != scope.account_id:
        abort(404)
    objects = []
    for listed in s3.store.list_objects(bucket, b"", None, 1000):
        try:
            stored = s3.store.get_object(bucket, listed.key)
        except S3Error:
            continue  # deleted since it was listed
        protection = object_protection(s3, record, stored)
        objects.append((stored, protection))
    return render_template("bucket.html", scope=scope, bucket=record, objects=objects)


@console.get("/s3/<bucket>/object")
def object_page(bucket: str) -> str:
    scope = current_scope()
    s3 = _s3()
    if s3 is None:
        abort(404)
    from s3_service.errors import S3Error

    try:
        record = s3.store.get_bucket(bucket)
        stored = s3.store.get_object(bucket, request.args.get("key", ""))
    except S3Error:
        abort(404)
    if record.account_id != scope.account_id:
        abort(404)
    protection = object_protection(s3, record, stored)
    current_version = None
    if protection.kms is not None:
        key = find_key(services(), scope.account_id, scope.region, protection.kms.key_id)
        current_version = key.current_material_id if key is not None else None
    return render_template(
        "object.html",
        scope=scope,
        bucket=record,
        stored=stored,
        protection=protection,
        current_version=current_version,
    )
