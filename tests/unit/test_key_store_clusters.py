"""MOCK_KMS_PKCS11_CLUSTERS: which PKCS#11 token a CloudHsmClusterId names
(docs/custom-key-stores.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kms_service.domain.errors import ConfigurationError
from kms_service.key_stores.clusters import ClusterToken, load_clusters
from kms_service.key_stores.connection import CLUSTER_NOT_FOUND, check_connection
from kms_service.settings import Settings

MODULE = "/opt/hsm/libvendor.so"


def settings(clusters: str | None) -> Settings:
    return Settings(pkcs11_module=MODULE, pkcs11_clusters=clusters)


def test_inline_json_with_labels_and_modules() -> None:
    clusters = load_clusters(
        settings(
            json.dumps(
                {
                    "cluster-234567abcdefg": "team-a",
                    "cluster-765432gfedcba": {"token_label": "team-b", "module": "/other.so"},
                }
            )
        )
    )
    assert clusters == {
        "cluster-234567abcdefg": ClusterToken("cluster-234567abcdefg", MODULE, "team-a"),
        "cluster-765432gfedcba": ClusterToken("cluster-765432gfedcba", "/other.so", "team-b"),
    }


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "clusters.json"
    path.write_text(json.dumps({"cluster-abcdefghijkl": "t"}), encoding="utf-8")
    assert load_clusters(settings(str(path)))["cluster-abcdefghijkl"].token_label == "t"


def test_none_configured() -> None:
    assert load_clusters(settings(None)) == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "MOCK_KMS_PKCS11_CLUSTERS is not valid JSON"),
        ('["cluster-abcdefghijkl"]', "must be a JSON object"),
        ('{"cluster-1": "t"}', "'cluster-1' is not a CloudHsmClusterId"),
        (
            '{"cluster-abcdefghijkl": {"module": "/x.so"}}',
            "cluster-abcdefghijkl needs a token_label",
        ),
        (
            "/no/such/clusters.json",
            "cannot read MOCK_KMS_PKCS11_CLUSTERS file /no/such/clusters.json",
        ),
    ],
)
def test_bad_configuration_is_one_line(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_clusters(settings(value))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unconfigured_cluster_is_cluster_not_found(tmp_path: Path) -> None:
    assert check_connection("cks-00000000000000000", None, "pin-pin", tmp_path) == (
        CLUSTER_NOT_FOUND
    )
