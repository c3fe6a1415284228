"""The web console in a real browser: Debian's headless Chromium driven by Selenium through
Debian's chromedriver (nothing downloaded: selenium-manager is never asked), against a real
``mock-kms serve`` (gunicorn, two workers) that boto3, the thin KMS client and the S3
Encryption Client talk to at the same time.

Screenshots of every page are saved under ``$MOCK_KMS_ARTIFACTS`` (or a temporary folder);
the folder is printed. Locally the tests skip without chromium; with ``CI`` set they fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from clients.kms import KmsClient
from clients.s3_encryption import (
    AesGcmKeyring,
    EncryptingS3Client,
    FormatVersion,
    KmsKeyring,
    MetadataStorage,
)
from tests.conftest import require_in_ci
from tests.support.server import RunningServer, running_server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CREDENTIALS = {"aws_access_key_id": "AKIDCONSOLETEST", "aws_secret_access_key": "console-secret"}
REGION = "us-east-1"
ACCOUNT = "111122223333"
WAIT_SECONDS = 15


def _browser_missing() -> str | None:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return "Chromium is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where screenshots go: ``$MOCK_KMS_ARTIFACTS/console`` or a fresh temporary folder."""
    base = os.environ.get("MOCK_KMS_ARTIFACTS")
    folder = Path(base) / "console" if base else Path(tempfile.mkdtemp(prefix="console-shots-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(
        tmp_path_factory.mktemp("console") / "data",
        extra_args=["--dev-endpoints", "--allow-sse-c-over-http"],
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        require_in_ci(missing)
    # Selenium must not fetch a driver or a browser: both are Debian's.
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _client(service: str, server: RunningServer) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        **CREDENTIALS,
    )


@pytest.fixture(scope="module")
def kms(server: RunningServer) -> Any:
    return _client("kms", server)


@pytest.fixture(scope="module")
def s3(server: RunningServer) -> Any:
    return _client("s3", server)


def _open(browser: Any, server: RunningServer, path: str) -> None:
    browser.get(server.endpoint + path)


def _by(kind: str) -> Any:
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


def _wait(browser: Any, condition: Any, seconds: float = WAIT_SECONDS) -> Any:
    """Until ``condition`` holds; elements of a page being replaced are retried, not errors."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(browser, seconds, ignored_exceptions=ignored).until(condition)


def _click_and_confirm(browser: Any, button_id: str) -> None:
    """Press an action button, then the confirmation page's Confirm."""
    browser.find_element(_by("ID"), button_id).click()
    _wait(browser, lambda b: b.find_element(_by("ID"), "confirm")).click()
    _wait(browser, lambda b: not b.find_elements(_by("ID"), "confirm"))


def _flash(browser: Any) -> str:
    return " ".join(e.text for e in browser.find_elements(_by("CSS_SELECTOR"), ".flash"))


def _shot(browser: Any, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    return path


def test_create_key_on_the_page_is_seen_through_boto3(
    browser: Any, server: RunningServer, kms: Any, artifacts: Path
) -> None:
    description = f"made in the console {uuid.uuid4().hex[:8]}"
    _open(browser, server, "/console/keys/new")
    offered = [o.text for o in browser.find_elements(_by("CSS_SELECTOR"), "#key-spec option")]
    assert "SYMMETRIC_DEFAULT" in offered  # read from the backend's capabilities
    _shot(browser, artifacts, "create-key")
    browser.find_element(_by("ID"), "description").send_keys(description)
    browser.find_element(_by("ID"), "tag-key").send_keys("team")
    browser.find_element(_by("ID"), "tag-value").send_keys("console")
    _click_and_confirm(browser, "create-key-submit")
    assert "CreateKey succeeded" in _flash(browser)
    key_id = browser.find_element(_by("ID"), "key-id").text
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["Description"] == description
    assert metadata["KeyState"] == "Enabled"
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [
        {"TagKey": "team", "TagValue": "console"}
    ]


def test_key_made_through_boto3_is_on_the_page_with_filters(
    browser: Any, server: RunningServer, kms: Any, artifacts: Path
) -> None:
    marker = uuid.uuid4().hex[:8]
    key_id = kms.create_key(
        Description=f"boto3 {marker}", Tags=[{"TagKey": "marker", "TagValue": marker}]
    )["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=f"alias/boto3-{marker}", TargetKeyId=key_id)
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)
    _open(browser, server, "/console/keys")
    row = browser.find_element(_by("CSS_SELECTOR"), f'tr[data-key-id="{key_id}"]')
    assert f"alias/boto3-{marker}" in row.text
    assert f"boto3 {marker}" in row.text
    assert "SYMMETRIC_DEFAULT / ENCRYPT_DECRYPT" in row.text
    assert "180 days" in row.text and "software" in row.text
    _shot(browser, artifacts, "keys")
    # Filter by tag, with the keyboard: type in the labelled field and press Enter.
    from selenium.webdriver.common.keys import Keys

    tag_field = browser.find_element(_by("ID"), "f-tag")
    tag_field.send_keys(f"marker={marker}", Keys.ENTER)
    _wait(browser, lambda b: "tag=marker" in b.current_url)
    rows = browser.find_elements(_by("CSS_SELECTOR"), "#keys-table tbody tr[data-key-id]")
    assert [r.get_attribute("data-key-id") for r in rows] == [key_id]
    _open(browser, server, "/console/keys?state=Disabled")
    assert not browser.find_elements(_by("CSS_SELECTOR"), f'tr[data-key-id="{key_id}"]')
    _open(browser, server, f"/console/keys?q={key_id[:13]}&alias=boto3-{marker}")
    rows = browser.find_elements(_by("CSS_SELECTOR"), "#keys-table tbody tr[data-key-id]")
    assert [r.get_attribute("data-key-id") for r in rows] == [key_id]
    # Sorting: a column header toggles ascending and descending order.
    _open(browser, server, "/console/keys")
    for direction in ("ascending", "descending"):
        browser.find_element(_by("LINK_TEXT"), "Key id" if direction == "ascending" else
                             "Key id ▲").click()  # fmt: skip
        header = _wait(browser, lambda b: b.find_element(_by("CSS_SELECTOR"), "th[aria-sort]"))
        assert header.get_attribute("aria-sort") == direction
        ids = [
            r.get_attribute("data-key-id")
            for r in browser.find_elements(_by("CSS_SELECTOR"), "#keys-table tr[data-key-id]")
        ]
        assert len(ids) >= 2 and ids == sorted(ids, reverse=direction == "descending")


def test_disable_enable_and_rotate_from_the_page(
    browser: Any, server: RunningServer, kms: Any, artifacts: Path
) -> None:
    key_id = kms.create_key(Description="to disable and rotate")["KeyMetadata"]["KeyId"]
    _open(browser, server, f"/console/keys/{ACCOUNT}/{REGION}/{key_id}")
    _click_and_confirm(browser, "action-disable")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    assert browser.find_element(_by("ID"), "key-state").text == "Disabled"
    _click_and_confirm(browser, "action-enable")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    _click_and_confirm(browser, "action-rotate")
    assert "RotateKeyOnDemand succeeded" in _flash(browser)
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"]
    current = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    rows = browser.find_elements(_by("CSS_SELECTOR"), "#versions-table tbody tr")
    assert len(rows) == 2
    assert "creation" in rows[0].text and "current" not in rows[0].text
    assert "on-demand rotation" in rows[1].text and current in rows[1].text
    assert "current" in rows[1].text
    policy = browser.find_element(_by("ID"), "policy").text
    assert '"Version": "2012-10-17"' in policy
    assert browser.find_element(_by("ID"), "grants-none").text == "None."
    # A grant made through boto3 is listed on the page (through ListGrants).
    grantee = f"arn:aws:iam::{ACCOUNT}:role/console-grantee"
    grant_id = kms.create_grant(
        KeyId=key_id, GranteePrincipal=grantee, Operations=["Decrypt"], Name="console-test"
    )["GrantId"]
    _open(browser, server, f"/console/keys/{ACCOUNT}/{REGION}/{key_id}")
    row = browser.find_element(_by("CSS_SELECTOR"), "#grants-table tbody tr")
    assert grant_id in row.text and grantee in row.text and "Decrypt" in row.text
    _shot(browser, artifacts, "key")


def test_boto3_requests_appear_in_the_live_table_without_reload(
    browser: Any, server: RunningServer, kms: Any, artifacts: Path
) -> None:
    key_id = kms.create_key(Description="live")["KeyMetadata"]["KeyId"]
    _open(browser, server, "/console/requests")
    browser.execute_script("window.consoleMarker = 'same page';")
    kms.encrypt(KeyId=key_id, Plaintext=b"never shown")
    kms.disable_key(KeyId=key_id)
    with pytest.raises(kms.exceptions.DisabledException):
        kms.encrypt(KeyId=key_id, Plaintext=b"refused")

    def rows_for_key(b: Any) -> list[Any]:
        rows = b.find_elements(_by("CSS_SELECTOR"), "#requests-table tbody tr")
        return [r for r in rows if key_id in r.text]

    _wait(browser, lambda b: len(rows_for_key(b)) >= 4)
    assert browser.execute_script("return window.consoleMarker;") == "same page"
    texts = [r.text for r in rows_for_key(browser)]
    assert any("Encrypt" in t and "OK" in t for t in texts)
    refused = [r for r in rows_for_key(browser) if "refused" in (r.get_attribute("class") or "")]
    assert refused and "DisabledException" in refused[0].text
    assert "never shown" not in browser.page_source
    _shot(browser, artifacts, "requests")
    # A row opens the full audit record, which names context keys but never plaintexts.
    refused[0].find_element(_by("TAG_NAME"), "a").click()
    record = _wait(browser, lambda b: b.find_element(_by("ID"), "audit-record")).text
    assert '"errorCode": "DisabledException"' in record
    assert '"eventName": "Encrypt"' in record
    assert "cmVmdXNlZA" not in record and "refused" not in record  # the plaintext, b64 or not
    _shot(browser, artifacts, "request")


def test_each_of_the_five_mechanisms_is_named_with_its_key_and_version(
    browser: Any, server: RunningServer, kms: Any, s3: Any, artifacts: Path
) -> None:
    bucket = f"console-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    sse_key = kms.create_key(Description="SSE-KMS key")["KeyMetadata"]["KeyId"]
    cse_key = kms.create_key(Description="CSE-KMS key")["KeyMetadata"]["KeyId"]
    customer_key = os.urandom(32)
    s3.put_object(Bucket=bucket, Key="sse-s3.txt", Body=b"one")
    s3.put_object(
        Bucket=bucket,
        Key="sse-kms-v1.txt",
        Body=b"two",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=sse_key,
    )
    first_version = kms.describe_key(KeyId=sse_key)["KeyMetadata"]["CurrentKeyMaterialId"]
    kms.rotate_key_on_demand(KeyId=sse_key)
    second_version = kms.describe_key(KeyId=sse_key)["KeyMetadata"]["CurrentKeyMaterialId"]
    s3.put_object(
        Bucket=bucket,
        Key="sse-kms-v2.txt",
        Body=b"three",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=sse_key,
    )
    s3.put_object(
        Bucket=bucket, Key="sse-c.txt", Body=b"four", SSECustomerAlgorithm="AES256",
        SSECustomerKey=customer_key,
    )  # fmt: skip
    thin = KmsClient(endpoint_url=server.endpoint, region_name=REGION, **CREDENTIALS)
    EncryptingS3Client(s3, KmsKeyring(thin, cse_key)).put_object(
        Bucket=bucket, Key="cse-kms.txt", Body=b"five"
    )
    cse_version = kms.describe_key(KeyId=cse_key)["KeyMetadata"]["CurrentKeyMaterialId"]
    EncryptingS3Client(s3, AesGcmKeyring(os.urandom(32))).put_object(
        Bucket=bucket, Key="cse-c.txt", Body=b"six"
    )
    # Envelopes kept in instruction files (<key>.instruction), V2 and V3.
    for version in (FormatVersion.V2, FormatVersion.V3):
        EncryptingS3Client(
            s3,
            KmsKeyring(thin, cse_key),
            format_version=version,
            metadata_storage=MetadataStorage.INSTRUCTION_FILE,
        ).put_object(Bucket=bucket, Key=f"cse-kms-{version.name}-file.txt", Body=b"seven")
    _open(browser, server, "/console/s3")
    assert bucket in browser.find_element(_by("ID"), "buckets-table").text
    _shot(browser, artifacts, "s3")
    _open(browser, server, f"/console/s3/{bucket}")
    seen = {}
    for row in browser.find_elements(_by("CSS_SELECTOR"), "#objects-table tbody tr"):
        seen[row.get_attribute("data-object-key")] = (
            row.get_attribute("data-mechanism"),
            row.find_element(_by("CSS_SELECTOR"), ".key-ref").text,
            row.find_element(_by("CSS_SELECTOR"), ".key-version").text,
        )
    _shot(browser, artifacts, "bucket")
    assert seen["sse-s3.txt"] == ("SSE-S3", "", "")
    assert seen["sse-kms-v1.txt"] == ("SSE-KMS", sse_key, first_version)
    assert seen["sse-kms-v2.txt"] == ("SSE-KMS", sse_key, second_version)
    assert first_version != second_version
    mechanism, fingerprint, version = seen["sse-c.txt"]
    assert mechanism == "SSE-C" and version == ""
    assert fingerprint.startswith("HMAC ") and len(fingerprint) == len("HMAC ") + 16
    assert customer_key.hex()[:16] not in browser.page_source
    assert seen["cse-kms.txt"] == ("CSE-KMS", cse_key, cse_version)
    assert seen["cse-c.txt"][0] == "CSE-C"
    for version in ("V2", "V3"):
        assert seen[f"cse-kms-{version}-file.txt"] == ("CSE-KMS", cse_key, cse_version)
        assert seen[f"cse-kms-{version}-file.txt.instruction"][0] == "SSE-S3"
    # The envelope of the object written before the rotation names the older version.
    _open(browser, server, f"/console/s3/{bucket}/object?key=sse-kms-v1.txt")
    assert first_version in browser.find_element(_by("ID"), "kms-version").text
    assert "older version" in browser.find_element(_by("ID"), "kms-version").text
    boxes = browser.find_elements(_by("CSS_SELECTOR"), "#envelope > li")
    assert [b.find_element(_by("TAG_NAME"), "strong").text for b in boxes] == [
        "Object data",
        "Data key",
        "KMS key",
    ]
    assert "software keystore" in boxes[2].text
    _shot(browser, artifacts, "object-sse-kms")
    _open(browser, server, f"/console/s3/{bucket}/object?key=cse-kms.txt")
    assert browser.find_element(_by("ID"), "mechanism").text == "CSE-KMS"
    assert cse_version in browser.find_element(_by("ID"), "kms-version").text
    _shot(browser, artifacts, "object-cse-kms")
    _open(browser, server, f"/console/s3/{bucket}/object?key=cse-kms-V2-file.txt")
    assert "instruction file" in browser.find_element(_by("ID"), "envelope").text
    _open(browser, server, f"/console/s3/{bucket}/object?key=cse-c.txt")
    assert "with the client only" in browser.find_element(_by("ID"), "envelope").text
    _shot(browser, artifacts, "object-cse-c")


def test_clock_advance_from_the_page_shows_the_offset_everywhere(
    browser: Any, server: RunningServer, kms: Any, artifacts: Path
) -> None:
    key_id = kms.create_key(Description="rotates with the clock")["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    _open(browser, server, "/console/keys")
    field = browser.find_element(_by("ID"), "dev-duration")
    field.clear()
    field.send_keys("91d")
    browser.find_element(_by("CSS_SELECTOR"), ".dev form button").click()
    _wait(browser, lambda b: b.find_element(_by("ID"), "confirm")).click()
    _wait(browser, lambda b: "Clock advanced" in _flash(b))
    assert "+91.00 days" in browser.find_element(_by("ID"), "clock-offset").text
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"]
    _open(browser, server, "/console/requests")
    assert "+91.00 days" in browser.find_element(_by("ID"), "clock-offset").text
    browser.find_element(_by("XPATH"), "//footer//button[text()='Reset the clock']").click()
    _wait(browser, lambda b: b.find_element(_by("ID"), "confirm")).click()
    _wait(browser, lambda b: "real time" in b.find_element(_by("ID"), "clock-offset").text)


PAGES = ("/console/keys", "/console/keys/new", "/console/requests", "/console/s3")


def test_every_control_has_a_label_and_pages_fit_a_phone(
    browser: Any, server: RunningServer, kms: Any, artifacts: Path
) -> None:
    key_id = kms.create_key(Description="labels")["KeyMetadata"]["KeyId"]
    unlabelled_script = """
        return Array.from(document.querySelectorAll(
            'input:not([type=hidden]), select, textarea, button'))
          .filter(e => e.tagName === 'BUTTON'
              ? !(e.textContent.trim() || e.getAttribute('aria-label'))
              : !((e.labels && e.labels.length) || e.getAttribute('aria-label')))
          .map(e => e.outerHTML);
    """
    pages = [*PAGES, f"/console/keys/{ACCOUNT}/{REGION}/{key_id}"]
    for path in pages:
        _open(browser, server, path)
        assert browser.execute_script(unlabelled_script) == [], path
    browser.set_window_size(390, 844)
    try:
        for path in pages:
            _open(browser, server, path)
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth;"
            )
            assert overflow <= 1, (path, overflow)
        _open(browser, server, "/console/keys")
        _shot(browser, artifacts, "keys-phone")
    finally:
        browser.set_window_size(1400, 1000)
    # Keyboard: the skip link is the first stop, and Tab reaches the navigation.
    from selenium.webdriver.common.keys import Keys

    _open(browser, server, "/console/keys")
    body = browser.find_element(_by("TAG_NAME"), "body")
    body.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    browser.switch_to.active_element.send_keys(Keys.TAB)
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Requests"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    _wait(browser, lambda b: b.current_url.endswith("/console/requests"))


def test_pages_send_a_strict_policy_and_load_no_inline_script(
    browser: Any, server: RunningServer
) -> None:
    import urllib.request

    for path in PAGES:
        with urllib.request.urlopen(server.endpoint + path, timeout=10) as response:
            policy = response.headers["Content-Security-Policy"]
            html = response.read().decode()
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["X-Frame-Options"] == "DENY"
        assert (
            "<script>" not in html
            and "style=" not in html
            and "http://" not in html.replace(server.endpoint, "")
        )
    # The browser reports no CSP violation on the live page (its script is a static file).
    _open(browser, server, "/console/requests")
    time.sleep(1.5)
    logs = browser.get_log("browser")
    assert not [entry for entry in logs if "Content Security Policy" in entry.get("message", "")]


def test_readme_screenshots(browser: Any, server: RunningServer, artifacts: Path) -> None:
    """The pictures in the README: a realistic account on the Keys page."""
    account = "444455556666"
    kms = boto3.client(
        "kms",
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=account,
        aws_secret_access_key="any",
    )
    made = {}
    for name, description in (
        ("orders", "Order database column encryption"),
        ("uploads", "S3 uploads (SSE-KMS)"),
        ("legacy-batch", "Old batch jobs"),
        ("session-tokens", "Session token sealing"),
    ):
        key_id = kms.create_key(
            Description=description, Tags=[{"TagKey": "team", "TagValue": "payments"}]
        )["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=f"alias/{name}", TargetKeyId=key_id)
        made[name] = key_id
    kms.enable_key_rotation(KeyId=made["orders"], RotationPeriodInDays=365)
    kms.enable_key_rotation(KeyId=made["uploads"], RotationPeriodInDays=90)
    kms.rotate_key_on_demand(KeyId=made["uploads"])
    kms.disable_key(KeyId=made["session-tokens"])
    kms.schedule_key_deletion(KeyId=made["legacy-batch"], PendingWindowInDays=7)
    _open(browser, server, f"/console/keys?account={account}&region={REGION}&sort=alias")
    rows = browser.find_elements(_by("CSS_SELECTOR"), "#keys-table tbody tr[data-key-id]")
    assert len(rows) == 4
    states = {r.get_attribute("data-key-id"): r.text for r in rows}
    assert "PendingDeletion" in states[made["legacy-batch"]]
    assert "Disabled" in states[made["session-tokens"]]
    _shot(browser, artifacts, "readme-keys")
    _open(browser, server, f"/console/keys?account={ACCOUNT}&region={REGION}")
