"""Several mock-kms hosts as one KMS: deploy/docker-compose.hosts.yml, deploy/haproxy/haproxy.cfg
and deploy/kubernetes/.

Docker and Kubernetes do not run here, so the compose file and the manifests are parsed and
checked for what makes several hosts one KMS (the same database, root key and S3 directory on
every host, probes on /healthz, the load balancer in front of every host, no secret in plain
sight). The load balancer itself runs for real: Debian's ``haproxy`` with the committed
configuration, only its addresses changed, in front of two real ``mock-kms serve`` hosts
sharing one data directory (a third, dead, host stands for a lost machine), driven by boto3
with SigV4 on.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import kubernetes_validate
import pytest
import yaml
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from compose_spec import PyCompose

from local_secrets.root_key import load_root_key
from s3_service.wire import bucket_from_host
from tests.conftest import require_in_ci
from tests.support.admin import metric, metrics_text
from tests.support.server import RunningServer, free_port, start_server

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.hosts.yml"
HAPROXY_CFG = DEPLOY / "haproxy" / "haproxy.cfg"
KUBERNETES = DEPLOY / "kubernetes"
HOSTS = ("kms-1", "kms-2", "kms-3")
#: The port the image listens on (deploy/Dockerfile: MOCK_KMS_BIND=0.0.0.0:8080).
IMAGE_PORT = 8080
REGION = "us-east-1"
ACCESS_KEY = ("AKIDLBTEST0000001", "load-balancer-test-secret")
HAPROXY_MISSING = "HAProxy is not installed (Debian package haproxy; .ci/run installs it)"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def host_services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the project's image."""
    return {
        name: service
        for name, service in document["services"].items()
        if service.get("image", "").startswith("mock-kms")
    }


def volume_at(service: dict[str, Any], target: str) -> str:
    """The source of the one volume ``service`` mounts at ``target``."""
    (source,) = [
        entry.split(":")[0] for entry in service["volumes"] if entry.split(":")[1] == target
    ]
    return str(source)


def host_script(service: dict[str, Any]) -> str:
    """The shell script a host runs (``sh -c SCRIPT``), with compose's ``$$`` unescaped."""
    command = service["command"]
    assert command[:2] == ["sh", "-c"] and len(command) == 3
    return str(command[2]).replace("$$", "$")


def dockerfile_uid() -> int:
    match = re.search(r"useradd [^\n]*--uid (\d+)", (DEPLOY / "Dockerfile").read_text())
    assert match
    return int(match.group(1))


# --- the compose file ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["docker-compose.hosts.yml", "docker-compose.yml"])
def test_compose_files_follow_the_compose_specification(name: str) -> None:
    # compose_spec (a Rust parser of the Compose specification, strict about unknown keys,
    # values and references) reads what YAML gives once its merge keys (`<<: *anchor`) are
    # applied, as Compose applies them.
    document = yaml.safe_load((DEPLOY / name).read_text())
    parsed = PyCompose.from_json(json.dumps(document))
    parsed.validate()
    assert sorted(parsed.service_names()) == sorted(document["services"])


def test_compose_runs_postgres_three_hosts_and_a_load_balancer() -> None:
    document = compose()
    services = document["services"]
    assert set(services) == {"postgres", *HOSTS, "lb"}
    assert set(host_services(document)) == set(HOSTS)

    postgres = services["postgres"]
    assert re.fullmatch(r"postgres:\d+", postgres["image"])  # the official image, pinned
    assert volume_at(postgres, "/var/lib/postgresql/data") in document["volumes"]
    check = postgres["healthcheck"]["test"]
    assert check[:2] == ["CMD", "pg_isready"] and "127.0.0.1" in check
    env = postgres["environment"]
    assert env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "POSTGRES_PASSWORD" not in env and "postgres_password" in postgres["secrets"]

    lb = services["lb"]
    assert re.fullmatch(r"haproxy:\d+\.\d+", lb["image"])
    assert f"{IMAGE_PORT}:8080" in lb["ports"]
    (config,) = lb["volumes"]
    source, target, mode = config.split(":")
    assert (DEPLOY / source).resolve() == HAPROXY_CFG
    assert (target, mode) == ("/usr/local/etc/haproxy/haproxy.cfg", "ro")
    assert set(lb["depends_on"]) == set(HOSTS)

    for secret in document["secrets"].values():  # files the user writes, never committed
        path = DEPLOY / secret["file"]
        assert path.parent == DEPLOY / "secrets"
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False
        ).returncode
        assert ignored == 0, f"{path} is not ignored by git"


def test_every_host_has_the_same_database_root_key_and_s3_directory() -> None:
    document = compose()
    hosts = host_services(document)
    first = hosts[HOSTS[0]]
    build = first["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    s3_dir = first["environment"]["MOCK_KMS_S3_DIR"]
    data_volumes = set()
    for name, host in hosts.items():
        for same in ("image", "build", "environment", "command", "secrets", "healthcheck"):
            assert host[same] == first[same], f"{name}: {same} differs"
        # Shared: the S3 object directory, one named volume.
        shared = volume_at(host, s3_dir)
        assert shared == volume_at(first, s3_dir) and shared in document["volumes"]
        # Per host: /data.
        data_volumes.add(volume_at(host, "/data"))
        assert host["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert host["healthcheck"]["test"] == ["CMD", "mock-kms", "healthcheck"]
        assert host["restart"] == "unless-stopped"
    assert len(data_volumes) == len(HOSTS) and data_volumes <= set(document["volumes"])
    # The root key and the database password come from secret files, not the environment.
    env = first["environment"]
    assert "MOCK_KMS_ROOT_KEY" not in env and "MOCK_KMS_DATABASE_URL" not in env
    assert set(first["secrets"]) == {"mock_kms_root_key", "postgres_password"}


def test_host_command_exports_the_secrets_and_execs_gunicorn(tmp_path: Path) -> None:
    document = compose()
    host = host_services(document)[HOSTS[0]]
    script = host_script(host)
    assert script.rstrip().endswith("exec gunicorn -c /app/deploy/gunicorn.conf.py")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    root_key = base64.b64encode(os.urandom(32)).decode()
    (secrets / "mock_kms_root_key").write_text(root_key + "\n")  # as openssl writes it
    (secrets / "postgres_password").write_text("0123abcd" * 6 + "\n")
    runnable = script.replace("/run/secrets/", f"{secrets}/").replace(
        "exec gunicorn -c /app/deploy/gunicorn.conf.py", "exec env"
    )
    # The image's /bin/sh is dash, as here.
    result = subprocess.run(
        ["sh", "-c", runnable], capture_output=True, text=True, env={}, check=False
    )
    assert result.returncode == 0, result.stderr
    exported = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert load_root_key(tmp_path, exported["MOCK_KMS_ROOT_KEY"], create=False) == (
        base64.b64decode(root_key)
    )
    url = urlsplit(exported["MOCK_KMS_DATABASE_URL"])
    postgres_env = document["services"]["postgres"]["environment"]
    assert url.scheme == "postgresql" and (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == postgres_env["POSTGRES_USER"]
    assert url.password == "0123abcd" * 6
    assert url.path == "/" + postgres_env["POSTGRES_DB"]

    (secrets / "postgres_password").unlink()  # an unreadable secret stops the host
    result = subprocess.run(
        ["sh", "-c", runnable], capture_output=True, text=True, env={}, check=False
    )
    assert result.returncode != 0 and "MOCK_KMS_ROOT_KEY" not in result.stdout


# --- the HAProxy configuration -------------------------------------------------------------


def haproxy_lines(section: str) -> list[str]:
    """The directives of one section (``backend mock_kms_hosts``) of haproxy.cfg."""
    lines: list[str] = []
    inside = False
    for line in HAPROXY_CFG.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            inside = line.strip() == section
            continue
        if inside:
            lines.append(line.strip())
    return lines


def test_haproxy_balances_over_every_compose_host_and_probes_healthz() -> None:
    backend = haproxy_lines("backend mock_kms_hosts")
    servers = [line.split()[1:3] for line in backend if line.startswith("server ")]
    assert servers == [[name, f"{name}:{IMAGE_PORT}"] for name in HOSTS]
    assert sorted(name for name, _ in servers) == sorted(host_services(compose()))
    assert "option httpchk" in backend and "http-check expect status 200" in backend
    (send,) = [line for line in backend if line.startswith("http-check send")]
    words = send.split()
    assert words[words.index("uri") + 1] == "/healthz"
    probe_host = words[words.index("Host") + 1]
    assert bucket_from_host(probe_host) is None  # the KMS answers it, not S3
    (defaults,) = [line for line in backend if line.startswith("default-server")]
    assert " check " in f"{defaults} "
    frontend = haproxy_lines("frontend mock_kms")
    assert f"bind :{IMAGE_PORT}" in frontend
    assert "default_backend mock_kms_hosts" in frontend
    # Bodies and Host pass through: nothing that rewrites or compresses them.
    text = HAPROXY_CFG.read_text()
    for rewrite in ("compression", "set-header Host", "replace-header", "del-header", "set-uri"):
        assert rewrite not in text


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        require_in_ci(HAPROXY_MISSING)
    assert found is not None
    return found


def test_haproxy_accepts_the_configuration() -> None:
    result = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(HAPROXY_CFG)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Configuration file is valid" in output
    # The compose host names resolve only inside compose's network; nothing else is wrong.
    warnings = [line for line in output.splitlines() if "[WARNING]" in line or "[ALERT]" in line]
    assert len(warnings) == len(HOSTS)
    assert all("could not resolve address" in line for line in warnings)


# --- HAProxy for real, in front of real hosts ------------------------------------------------


@dataclass
class Balanced:
    """HAProxy on ``port`` in front of ``hosts`` (and a dead third host)."""

    process: subprocess.Popen[bytes]
    port: int
    stats_port: int
    hosts: list[RunningServer]
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def states(self) -> dict[str, str]:
        """Each backend server's state (``UP``, ``DOWN``, ...) from the stats page."""
        url = f"http://127.0.0.1:{self.stats_port}/stats;csv"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode().lstrip("# ")
        return {
            row["svname"]: row["status"]
            for row in csv.DictReader(io.StringIO(text))
            if row["pxname"] == "mock_kms_hosts" and row["svname"] not in ("BACKEND", "FRONTEND")
        }

    def wait_for(self, expected: dict[str, str], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.states()
            if all(states.get(name, "").startswith(want) for name, want in expected.items()):
                return
            time.sleep(0.2)
        raise AssertionError(f"HAProxy states {states}, expected {expected}:\n{self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def render_haproxy_config(addresses: list[str], port: int, stats_port: int) -> str:
    """haproxy.cfg with loopback addresses for its listeners and hosts; nothing else changed."""
    text = HAPROXY_CFG.read_text()
    replacements = {
        f"bind :{IMAGE_PORT}\n": f"bind 127.0.0.1:{port}\n",
        "bind :8404\n": f"bind 127.0.0.1:{stats_port}\n",
    }
    for name, address in zip(HOSTS, addresses, strict=True):
        replacements[f"server {name} {name}:{IMAGE_PORT}\n"] = f"server {name} {address}\n"
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balanced]:
    haproxy = haproxy_binary()
    root = tmp_path_factory.mktemp("balanced")
    credentials = root / "credentials"
    credentials.write_text(
        f"[tester]\naws_access_key_id = {ACCESS_KEY[0]}\naws_secret_access_key = {ACCESS_KEY[1]}\n"
    )
    env = {
        "MOCK_KMS_AUTH": "sigv4",
        "MOCK_KMS_CREDENTIALS_FILE": str(credentials),
        "MOCK_KMS_ROOT_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    # Two hosts, one state: the same data directory (SQLite) and the same root key.
    hosts: list[RunningServer] = []
    process: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(2):
            hosts.append(start_server(root / "data", workers=2, env=env))
        dead = free_port()  # a host whose machine is gone: nothing listens there
        port, stats_port = free_port(), free_port()
        config = root / "haproxy.cfg"
        addresses = [f"127.0.0.1:{host.port}" for host in hosts] + [f"127.0.0.1:{dead}"]
        config.write_text(render_haproxy_config(addresses, port, stats_port))
        log_path = root / "haproxy.log"
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                [haproxy, "-db", "-f", str(config)], stdout=log_file, stderr=subprocess.STDOUT
            )
        balanced = Balanced(process, port, stats_port, hosts, log_path)
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, balanced.log()
            try:
                balanced.states()
                break
            except (OSError, urllib.error.URLError):
                assert time.monotonic() < deadline, balanced.log()
                time.sleep(0.1)
        yield balanced
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
        for host in hosts:
            host.stop()


def client(service: str, endpoint: str, **config: Any) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY[0],
        aws_secret_access_key=ACCESS_KEY[1],
        config=Config(**{"retries": {"total_max_attempts": 1, "mode": "standard"}, **config}),
    )


def requests_served(host: RunningServer, operation: str) -> float:
    return metric(
        metrics_text(host), "mock_kms_requests_total", operation=operation, error_code="none"
    )


def test_kms_through_haproxy_reaches_every_host_and_skips_the_dead_one(balanced: Balanced) -> None:
    kms = client("kms", balanced.endpoint)
    # At once, before HAProxy's checks have found the dead host: a request sent there has its
    # connection refused and goes to a live host instead, so none fails.
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"through the load balancer")["CiphertextBlob"]
    for _ in range(20):
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"through the load balancer"
    balanced.wait_for({"kms-1": "UP", "kms-2": "UP", "kms-3": "DOWN"})
    # HAProxy starts with every host in the rotation and needs three failed checks (6 s) to
    # take the dead one out, so some of those first requests went there and were redispatched
    # (a retry count of +1 in the log line) and answered by a live host.
    redispatched = re.findall(
        r"mock_kms_hosts/kms-[12] \S+ 200 .* \d+/\d+/\d+/\d+/\+1 ", balanced.log()
    )
    assert redispatched, balanced.log()
    before = [requests_served(host, "Decrypt") for host in balanced.hosts]
    for _ in range(20):
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"through the load balancer"
    after = [requests_served(host, "Decrypt") for host in balanced.hosts]
    served = [a - b for a, b in zip(after, before, strict=True)]
    # Round robin over the two live hosts: each answered half, both with the one key.
    assert served == [10, 10], served
    # A state change through one host is seen through the other at once.
    kms.disable_key(KeyId=key_id)
    for _ in range(4):
        with pytest.raises(ClientError) as caught:
            kms.encrypt(KeyId=key_id, Plaintext=b"x")
        assert caught.value.response["Error"]["Code"] == "DisabledException"


def test_s3_through_haproxy_keeps_host_and_bodies(
    balanced: Balanced, monkeypatch: pytest.MonkeyPatch
) -> None:
    # *.localhost is loopback (RFC 6761); this machine's resolver does not know it.
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    virtual = client("s3", f"http://localhost:{balanced.port}", s3={"addressing_style": "virtual"})
    path_style = client("s3", balanced.endpoint, s3={"addressing_style": "path"})
    hosts_seen: list[str] = []
    virtual.meta.events.register(
        "before-send.s3.*", lambda request, **_: hosts_seen.append(urlsplit(request.url).netloc)
    )
    bucket = "through-haproxy"
    virtual.create_bucket(Bucket=bucket)
    body = os.urandom(3 * 1024 * 1024 + 17)
    # SigV4 signs the Host and the payload: a changed Host or body would be refused.
    virtual.put_object(Bucket=bucket, Key="one/object", Body=body, ServerSideEncryption="aws:kms")
    assert hosts_seen and all(
        netloc == f"{bucket}.localhost:{balanced.port}" for netloc in hosts_seen
    )
    got = path_style.get_object(Bucket=bucket, Key="one/object")
    assert got["ServerSideEncryption"] == "aws:kms"
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(body).digest()

    # Multipart with SSE-KMS: each part's host opens the upload's data key with a KMS Decrypt
    # of its own, so both hosts' Decrypt counts grow: the parts went through both hosts into
    # the one S3 directory, and the upload completed whole.
    large = os.urandom(11 * 1024 * 1024)
    transfer = TransferConfig(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_concurrency=2
    )
    before = [requests_served(host, "Decrypt") for host in balanced.hosts]
    virtual.upload_fileobj(
        io.BytesIO(large),
        bucket,
        "large",
        Config=transfer,
        ExtraArgs={"ServerSideEncryption": "aws:kms"},
    )
    after = [requests_served(host, "Decrypt") for host in balanced.hosts]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    copy = io.BytesIO()
    path_style.download_fileobj(bucket, "large", copy)
    assert copy.getvalue() == large
    listed = virtual.list_objects_v2(Bucket=bucket)["Contents"]
    assert {item["Key"]: item["Size"] for item in listed} == {
        "large": len(large),
        "one/object": len(body),
    }


def test_probes_with_an_address_for_host_reach_the_kms_health_check(balanced: Balanced) -> None:
    # The kubelet's httpGet probe sends the pod address as Host, HAProxy's sends "localhost":
    # both must reach the KMS's /healthz, not an S3 object of that name.
    for host_header in ("10.244.1.7:8080", "localhost"):
        connection = http.client.HTTPConnection("127.0.0.1", balanced.hosts[0].port, timeout=10)
        try:
            connection.request("GET", "/healthz", headers={"Host": host_header})
            answer = connection.getresponse()
            body = json.loads(answer.read())
        finally:
            connection.close()
        assert answer.status == 200 and body["status"] == "ok", (host_header, body)


def test_losing_a_host_mid_traffic_fails_no_request_the_sdk_retries(balanced: Balanced) -> None:
    kms = client("kms", balanced.endpoint)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"still here")["CiphertextBlob"]
    stop = threading.Event()
    outcomes: list[str] = []

    def drive() -> None:
        # The SDK's default: standard retry mode, three attempts.
        retries = {"total_max_attempts": 3, "mode": "standard"}
        sdk = client("kms", balanced.endpoint, retries=retries)
        while not stop.is_set():
            try:
                plaintext = sdk.decrypt(CiphertextBlob=blob)["Plaintext"]
                outcomes.append("ok" if plaintext == b"still here" else "wrong plaintext")
            except (ClientError, BotoCoreError) as error:
                outcomes.append(repr(error))

    threads = [threading.Thread(target=drive) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        served_before_stop = len(outcomes)
        balanced.hosts[1].stop()  # SIGTERM: gunicorn finishes what it has and closes the rest
        balanced.wait_for({"kms-1": "UP", "kms-2": "DOWN"})
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    # A request on a connection the stopping host closed comes back to the client as a closed
    # connection (HAProxy never resends a request a host may have received), and the SDK sends
    # it again: every request succeeds, before, during and after the loss.
    assert served_before_stop > 0 and len(outcomes) > served_before_stop
    assert set(outcomes) == {"ok"}, [o for o in outcomes if o != "ok"][:5]


def test_with_no_host_up_haproxy_answers_retryable_aws_errors(balanced: Balanced) -> None:
    for host in balanced.hosts:
        host.stop()
    balanced.wait_for({"kms-1": "DOWN", "kms-2": "DOWN", "kms-3": "DOWN"})
    kms = client("kms", balanced.endpoint)
    with pytest.raises(ClientError) as caught:
        kms.list_keys()
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert response["Error"]["Code"] == "DependencyTimeoutException"
    assert response["Error"]["Message"].endswith("You can retry the request.")
    s3 = client("s3", balanced.endpoint, s3={"addressing_style": "path"})
    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket="through-haproxy", Key="large")
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert response["Error"]["Code"] == "ServiceUnavailable"

    # The SDKs retry both: botocore's standard mode sends each request three times.
    for service, call in (("kms", "list_keys"), ("s3", "list_buckets")):
        retrying = boto3.client(
            service,
            endpoint_url=balanced.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY[0],
            aws_secret_access_key=ACCESS_KEY[1],
            config=Config(retries={"total_max_attempts": 3, "mode": "standard"}),
        )
        sent: list[str] = []
        retrying.meta.events.register(
            "before-send", lambda request, sent=sent, **_: sent.append(request.url)
        )
        with pytest.raises(ClientError) as caught:
            getattr(retrying, call)()
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert len(sent) == 3, (service, sent)


# --- Kubernetes ----------------------------------------------------------------------------


def kubernetes_documents() -> dict[str, dict[str, Any]]:
    """The kustomization's resources by kind."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    documents: dict[str, dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((KUBERNETES / resource).read_text()):
            assert document["kind"] not in documents
            documents[document["kind"]] = document
    return documents


def test_kubernetes_manifests_follow_the_api_schemas() -> None:
    # Strict: an unknown field (a misspelt probe, say) is an error, as kubectl's server-side
    # field validation makes it.
    version = kubernetes_validate.latest_version()
    for document in kubernetes_documents().values():
        kubernetes_validate.validate(document, version, strict=True)
    misspelt = kubernetes_documents()["Deployment"]
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, version, strict=True)


def test_kubernetes_deployment_is_several_hosts_of_one_kms() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    documents = kubernetes_documents()
    assert set(documents) == {
        "Deployment",
        "Service",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
    }
    deployment = documents["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = pod["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}

    # The root key and the database URL come from the Secrets the kustomization generates.
    generated = {
        secret["name"]: {file.split("=", 1)[0] for file in secret["files"]}
        for secret in kustomization["secretGenerator"]
    }
    for name in ("MOCK_KMS_ROOT_KEY", "MOCK_KMS_DATABASE_URL"):
        reference = env[name]["valueFrom"]["secretKeyRef"]
        assert "value" not in env[name]
        assert reference["key"] in generated[reference["name"]]
    for file in (f.split("=", 1)[1] for s in kustomization["secretGenerator"] for f in s["files"]):
        assert (KUBERNETES / file).parent == KUBERNETES / "secrets"
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(KUBERNETES / file)], cwd=ROOT, check=False
        ).returncode
        assert ignored == 0, f"{file} is not ignored by git"
    # No literal value looks like a secret: no database URL, no root key.
    for item in container["env"]:
        value = str(item.get("value", ""))
        assert "://" not in value and len(value) < 40, item["name"]

    # Every pod mounts the one ReadWriteMany claim at MOCK_KMS_S3_DIR; /data is its own.
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert set(mounts.values()) <= set(volumes)
    s3_volume = volumes[mounts[env["MOCK_KMS_S3_DIR"]["value"]]]
    claim = documents["PersistentVolumeClaim"]
    assert s3_volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "emptyDir" in volumes[mounts["/data"]]

    # Probes on /healthz, on the container's port.
    (port,) = container["ports"]
    assert port["containerPort"] == IMAGE_PORT
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/healthz" and check["port"] == port["name"], probe
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    # Out of the Service fast; restarted only after a long outage (a database outage fails
    # every pod's probe, and restarts would not end it).
    ready_after = readiness["periodSeconds"] * readiness["failureThreshold"]
    live_after = liveness["periodSeconds"] * liveness["failureThreshold"]
    assert ready_after <= 15 and live_after >= 60

    requests = container["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == security["fsGroup"] == dockerfile_uid()
    own = container["securityContext"]
    assert own["allowPrivilegeEscalation"] is False and own["capabilities"]["drop"] == ["ALL"]
    if own.get("readOnlyRootFilesystem"):
        assert "/tmp" in mounts  # gunicorn's metrics directory and temporary files
    # The image kustomize points at is the container's.
    assert container["image"] in {image["name"] for image in kustomization["images"]}

    service = documents["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"] and service_port["port"] == IMAGE_PORT
    budget = documents["PodDisruptionBudget"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1
