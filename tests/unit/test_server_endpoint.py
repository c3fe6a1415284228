"""How every ``mock-kms`` subcommand finds the running server (clients.server_endpoint), and
local-kms's variables as fallbacks in the service settings."""

from __future__ import annotations

import pytest

from clients.server_endpoint import find_server, url_from_bind
from kms_service.admin.durations import parse_duration
from kms_service.domain.errors import ConfigurationError
from kms_service.settings import Settings

EVERY_SOURCE = {
    "MOCK_KMS_ENDPOINT": "http://mock-kms-endpoint:1",
    "AWS_ENDPOINT_URL_KMS": "http://aws-endpoint-url-kms:2",
    "AWS_ENDPOINT_URL": "http://aws-endpoint-url:3",
    "MOCK_KMS_BIND": "10.0.0.4:4",
}


@pytest.mark.parametrize(
    ("dropped", "expected", "source"),
    [
        ((), "http://mock-kms-endpoint:1", "MOCK_KMS_ENDPOINT"),
        (("MOCK_KMS_ENDPOINT",), "http://aws-endpoint-url-kms:2", "AWS_ENDPOINT_URL_KMS"),
        (
            ("MOCK_KMS_ENDPOINT", "AWS_ENDPOINT_URL_KMS"),
            "http://aws-endpoint-url:3",
            "AWS_ENDPOINT_URL",
        ),
        (
            ("MOCK_KMS_ENDPOINT", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"),
            "http://10.0.0.4:4",
            "MOCK_KMS_BIND",
        ),
        (tuple(EVERY_SOURCE), "http://127.0.0.1:8080", "default"),
    ],
)
def test_precedence(dropped: tuple[str, ...], expected: str, source: str) -> None:
    env = {k: v for k, v in EVERY_SOURCE.items() if k not in dropped}
    found = find_server(None, env)
    assert (found.url, found.source) == (expected, source)


def test_the_option_wins_and_empty_variables_count_as_unset() -> None:
    assert find_server("https://given:9/", EVERY_SOURCE).url == "https://given:9"
    env = {"MOCK_KMS_ENDPOINT": " ", "AWS_ENDPOINT_URL": "http://x:1"}
    assert find_server(None, env).source == "AWS_ENDPOINT_URL"


@pytest.mark.parametrize(
    ("bind", "env", "expected"),
    [
        ("0.0.0.0:8080", {}, "http://127.0.0.1:8080"),
        ("[::]:8443", {"MOCK_KMS_TLS": "yes"}, "https://[::1]:8443"),
        ("localhost:80", {"MOCK_KMS_TLS_CERT": "/c.pem"}, "https://localhost:80"),
        ("[::1]:9", {"MOCK_KMS_TLS": "0"}, "http://[::1]:9"),
    ],
)
def test_from_the_bind_address(bind: str, env: dict[str, str], expected: str) -> None:
    assert find_server(None, {"MOCK_KMS_BIND": bind, **env}).url == expected


@pytest.mark.parametrize(
    ("explicit", "env", "names"),
    [
        ("127.0.0.1:8080", {}, "--endpoint-url"),
        (None, {"MOCK_KMS_ENDPOINT": "ftp://x"}, "MOCK_KMS_ENDPOINT"),
        (None, {"MOCK_KMS_BIND": "nowhere"}, "MOCK_KMS_BIND"),
    ],
)
def test_unusable_values_name_their_source(
    explicit: str | None, env: dict[str, str], names: str
) -> None:
    with pytest.raises(ValueError, match=names):
        find_server(explicit, env)


def test_url_from_bind_rejects_a_bind_without_port() -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        url_from_bind("localhost", tls=False)


LOCAL_KMS = {
    "KMS_ACCOUNT_ID": "444455556666",
    "KMS_REGION": "eu-west-2",
    "KMS_SEED_PATH": "/init/seed.yaml",
    "KMS_DATA_PATH": "/data",
}


def test_local_kms_variables_are_fallbacks() -> None:
    settings = Settings.from_sources(environ=LOCAL_KMS).validate()
    assert settings.account_id == "444455556666" and settings.region == "eu-west-2"
    assert str(settings.seed) == "/init/seed.yaml" and str(settings.data_dir) == "/data"


def test_mock_kms_variables_and_options_win_over_local_kms_ones() -> None:
    env = {
        **LOCAL_KMS,
        "MOCK_KMS_ACCOUNT_ID": "111122223333",
        "MOCK_KMS_REGION": "us-west-1",
        "MOCK_KMS_SEED": "/mine.yaml",
    }
    settings = Settings.from_sources({"data_dir": "/opt"}, env)
    assert (settings.account_id, settings.region) == ("111122223333", "us-west-1")
    assert (str(settings.seed), str(settings.data_dir)) == ("/mine.yaml", "/opt")


def test_a_bad_local_kms_value_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="KMS_REGION"):
        Settings.from_sources(environ={"KMS_REGION": "Mars"}).validate()


@pytest.mark.parametrize("text", ["-5d", "-1", "-0.5h", " -2w"])
def test_negative_durations_say_the_clock_only_moves_forward(text: str) -> None:
    with pytest.raises(ValueError, match="only moves forward"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["inf", "nan"])
def test_infinite_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
