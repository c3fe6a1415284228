"""Endpoint, region and credentials are found where AWS users expect them, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.kms import KmsClient
from clients.kms.config import resolve_credentials, resolve_endpoint, resolve_region
from clients.kms.errors import ConfigurationError, NoCredentialsError, NoRegionError
from clients.kms.signing import Credentials

VARIABLES = [
    "MOCK_KMS_ENDPOINT",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AWS settings leak in from the machine; HOME is an empty temporary directory."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write_credentials(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- endpoint -----------------------------------------------------------------------------
ENDPOINT_ENV = {
    "MOCK_KMS_ENDPOINT": "http://mock:1",
    "AWS_ENDPOINT_URL_KMS": "http://service:2",
    "AWS_ENDPOINT_URL": "http://global:3",
}


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (["MOCK_KMS_ENDPOINT", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"], "http://mock:1"),
        (["AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"], "http://service:2"),
        (["AWS_ENDPOINT_URL"], "http://global:3"),
        ([], "https://kms.eu-west-3.amazonaws.com"),
    ],
)
def test_endpoint_precedence(present: list[str], expected: str) -> None:
    environ = {name: ENDPOINT_ENV[name] for name in present}
    assert resolve_endpoint(None, "eu-west-3", environ) == expected


def test_explicit_endpoint_beats_every_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENDPOINT_ENV.items():
        monkeypatch.setenv(name, value)
    client = KmsClient("http://explicit:9/", region_name="us-east-1", unsigned=True)
    assert client.endpoint_url == client.meta.endpoint_url == "http://explicit:9"


def test_client_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "http://service:2")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://global:3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    client = KmsClient(unsigned=True)
    assert (client.endpoint_url, client.region_name) == ("http://service:2", "ap-south-1")


def test_empty_variables_count_as_unset() -> None:
    environ = {"MOCK_KMS_ENDPOINT": "", "AWS_ENDPOINT_URL_KMS": " ", "AWS_ENDPOINT_URL": "http://g"}
    assert resolve_endpoint(None, "us-east-1", environ) == "http://g"


def test_china_regions_use_the_china_domain() -> None:
    assert resolve_endpoint(None, "cn-north-1", {}) == "https://kms.cn-north-1.amazonaws.com.cn"


def test_endpoint_path_is_kept_without_trailing_slash() -> None:
    assert resolve_endpoint("http://h:1/kms/v1/", "us-east-1", {}) == "http://h:1/kms/v1"


@pytest.mark.parametrize(
    "bad", ["localhost:8080", "ftp://h", "http://", "http://h:99999", "http://h/?a=1"]
)
def test_unusable_endpoints_name_their_source(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="AWS_ENDPOINT_URL_KMS"):
        resolve_endpoint(None, "us-east-1", {"AWS_ENDPOINT_URL_KMS": bad})


# --- region -------------------------------------------------------------------------------
def test_region_precedence() -> None:
    both = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"}
    assert resolve_region("ap-east-1", both) == "ap-east-1"
    assert resolve_region(None, both) == "eu-west-1"
    assert resolve_region(None, {"AWS_DEFAULT_REGION": "us-west-2"}) == "us-west-2"


def test_missing_region_is_an_error() -> None:
    with pytest.raises(NoRegionError, match="AWS_REGION"):
        resolve_region(None, {})
    with pytest.raises(NoRegionError):
        KmsClient("http://127.0.0.1:1", unsigned=True)


def test_region_from_the_shared_config_profile(tmp_path: Path) -> None:
    config = write_credentials(
        tmp_path / "config", "[default]\nregion = us-west-1\n[profile dev]\nregion = sa-east-1\n"
    )
    assert resolve_region(None, {"AWS_CONFIG_FILE": str(config)}) == "us-west-1"
    dev = {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "dev"}
    assert resolve_region(None, dev) == "sa-east-1"
    assert resolve_region(None, {**dev, "AWS_REGION": "eu-north-1"}) == "eu-north-1"


# --- credentials --------------------------------------------------------------------------
CREDENTIALS_FILE = """\
[default]
aws_access_key_id = AKIDFILEDEFAULT
aws_secret_access_key = file/default%secret

[ci]
aws_access_key_id = AKIDFILECI
aws_secret_access_key = file-ci-secret
aws_session_token = file-ci-token
"""


def test_arguments_beat_environment_and_file(tmp_path: Path) -> None:
    path = write_credentials(tmp_path / "creds", CREDENTIALS_FILE)
    environ = {
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_SHARED_CREDENTIALS_FILE": str(path),
    }
    assert resolve_credentials("AKIDARG", "arg-secret", "arg-token", environ=environ) == (
        Credentials("AKIDARG", "arg-secret", "arg-token")
    )
    assert resolve_credentials(environ=environ) == Credentials("AKIDENV", "env-secret")
    del environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"]
    assert resolve_credentials(environ=environ) == Credentials(
        "AKIDFILEDEFAULT", "file/default%secret"
    )


def test_environment_session_token() -> None:
    environ = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
    assert resolve_credentials(environ=environ) == Credentials("k", "s", "t")


def test_profile_from_aws_profile(tmp_path: Path) -> None:
    path = write_credentials(tmp_path / "creds", CREDENTIALS_FILE)
    environ = {"AWS_SHARED_CREDENTIALS_FILE": str(path), "AWS_PROFILE": "ci"}
    assert resolve_credentials(environ=environ) == Credentials(
        "AKIDFILECI", "file-ci-secret", "file-ci-token"
    )


def test_profile_named_in_code_beats_environment_keys(tmp_path: Path) -> None:
    path = write_credentials(tmp_path / "creds", CREDENTIALS_FILE)
    environ = {
        "AWS_SHARED_CREDENTIALS_FILE": str(path),
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
    }
    found = resolve_credentials(profile="ci", environ=environ)
    assert found is not None and found.access_key_id == "AKIDFILECI"


def test_default_credentials_file_is_in_home(clean_environment: Path) -> None:
    write_credentials(clean_environment / ".aws" / "credentials", CREDENTIALS_FILE)
    client = KmsClient("http://127.0.0.1:1", region_name="us-east-1")
    assert client.credentials == Credentials("AKIDFILEDEFAULT", "file/default%secret")


def test_unknown_named_profile_is_an_error(tmp_path: Path) -> None:
    path = write_credentials(tmp_path / "creds", CREDENTIALS_FILE)
    environ = {"AWS_SHARED_CREDENTIALS_FILE": str(path), "AWS_PROFILE": "nope"}
    with pytest.raises(ConfigurationError, match="'nope' not found"):
        resolve_credentials(environ=environ)


@pytest.mark.parametrize(
    ("key", "secret"), [("AKIDONLY", None), (None, "secret-only")], ids=["no-secret", "no-key"]
)
def test_half_configured_credentials_are_an_error(key: str | None, secret: str | None) -> None:
    with pytest.raises(ConfigurationError, match="Incomplete credentials"):
        resolve_credentials(key, secret, environ={})
    environ = {"AWS_ACCESS_KEY_ID": key or "", "AWS_SECRET_ACCESS_KEY": secret or ""}
    with pytest.raises(ConfigurationError, match="AWS_ACCESS_KEY_ID"):
        resolve_credentials(environ=environ)


def test_malformed_credentials_file_is_an_error(tmp_path: Path) -> None:
    path = write_credentials(tmp_path / "creds", "aws_access_key_id = no section header\n")
    with pytest.raises(ConfigurationError, match="Cannot parse"):
        resolve_credentials(environ={"AWS_SHARED_CREDENTIALS_FILE": str(path)})


def test_no_credentials_anywhere_fails_at_the_first_call() -> None:
    client = KmsClient("http://127.0.0.1:1", region_name="us-east-1")
    assert client.credentials is None
    with pytest.raises(NoCredentialsError, match="AWS_ACCESS_KEY_ID"):
        client.list_keys()


def test_secrets_are_not_in_repr() -> None:
    text = repr(Credentials("AKIDVISIBLE", "hidden-secret", "hidden-token"))
    assert "AKIDVISIBLE" in text
    assert "hidden" not in text
