"""Retries, backoff, timeouts and connection reuse, against a real loopback HTTP server."""

from __future__ import annotations

import socket
import threading

import pytest

from clients.kms import KmsClient, RetryPolicy, errors
from clients.kms.retry import is_retryable
from tests.unit.test_kms_client_fakeserver import Reply, ScriptedServer, error_reply

OK = Reply(body={"Keys": [], "Truncated": False})


class Recorder:
    """Stands in for ``random.uniform`` (always the upper bound) and ``time.sleep``."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def policy(self, max_attempts: int = 3, base: float = 0.1, cap: float = 20.0) -> RetryPolicy:
        return RetryPolicy(
            max_attempts, base, cap, random=lambda low, high: high, sleep=self.sleeps.append
        )


def test_5xx_is_retried_until_success() -> None:
    recorder = Recorder()
    script = [error_reply(500, "KMSInternalException", "x"), Reply(status=503, body=b""), OK]
    with ScriptedServer(script) as server:
        result = server.client(retry_policy=recorder.policy()).list_keys()
    assert len(server.requests) == 3
    assert result["Keys"] == []
    assert result["ResponseMetadata"]["RetryAttempts"] == 2
    assert result["ResponseMetadata"]["RequestId"] == "req-3"
    assert recorder.sleeps == pytest.approx([0.1, 0.2])


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    recorder = Recorder()
    with ScriptedServer([error_reply(500, "KMSInternalException", "still broken")]) as server:
        client = server.client(retry_policy=recorder.policy(max_attempts=3))
        with pytest.raises(errors.KMSInternalException) as caught:
            client.encrypt(KeyId="k", Plaintext=b"x")
    assert len(server.requests) == 3
    assert len(recorder.sleeps) == 2
    error = caught.value
    assert (error.status, error.message, error.request_id) == (500, "still broken", "req-3")
    assert error.retry_attempts == 2
    assert "(reached max retries: 2)" in str(error)


@pytest.mark.parametrize(
    "reply",
    [
        error_reply(400, "ThrottlingException", "You have exceeded the rate"),
        error_reply(400, "Throttling"),
        error_reply(400, "RequestLimitExceeded"),
        Reply(status=429, body=b""),
        Reply(status=502, body=b"<html>Bad Gateway</html>"),
    ],
    ids=["ThrottlingException", "Throttling", "RequestLimitExceeded", "429", "502-html"],
)
def test_throttling_and_gateway_errors_are_retried(reply: Reply) -> None:
    with ScriptedServer([reply, OK]) as server:
        result = server.client().list_keys()
    assert len(server.requests) == 2
    assert result["ResponseMetadata"]["RetryAttempts"] == 1


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("NotFoundException", errors.NotFoundException),
        ("ValidationException", errors.ValidationException),
        ("LimitExceededException", errors.LimitExceededException),
        ("InvalidSignatureException", errors.InvalidSignatureException),
    ],
)
def test_4xx_is_not_retried(code: str, cls: type[errors.KmsClientError]) -> None:
    recorder = Recorder()
    with (
        ScriptedServer([error_reply(400, code, "no"), OK]) as server,
        pytest.raises(cls) as caught,
    ):
        server.client(retry_policy=recorder.policy()).describe_key(KeyId="k")
    assert len(server.requests) == 1
    assert recorder.sleeps == []
    assert caught.value.retry_attempts == 0
    assert "reached max retries" not in str(caught.value)


def test_max_attempts_one_disables_retries() -> None:
    with (
        ScriptedServer([error_reply(500, "KMSInternalException"), OK]) as server,
        pytest.raises(errors.KMSInternalException),
    ):
        server.client(max_attempts=1, retry_policy=None).list_keys()
    assert len(server.requests) == 1


def test_retries_keep_the_invocation_id_and_count_attempts() -> None:
    with ScriptedServer([error_reply(500, "KMSInternalException"), OK]) as server:
        server.client().list_keys()
    first, second = server.requests
    assert first.headers["amz-sdk-invocation-id"] == second.headers["amz-sdk-invocation-id"]
    assert first.headers["amz-sdk-request"] == "attempt=1; max=3"
    assert second.headers["amz-sdk-request"] == "attempt=2; max=3"


def test_backoff_is_exponential_capped_and_fully_jittered() -> None:
    upper = RetryPolicy(10, base_delay=0.5, max_delay=3.0, random=lambda low, high: high)
    assert [upper.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    lower = RetryPolicy(10, base_delay=0.5, max_delay=3.0, random=lambda low, high: low)
    assert {lower.delay(n) for n in range(1, 7)} == {0.0}
    real = RetryPolicy(10, base_delay=0.5, max_delay=3.0)
    draws = [real.delay(4) for _ in range(200)]
    assert all(0.0 <= d <= 3.0 for d in draws)
    assert len(set(draws)) > 150  # jittered, not a constant


def test_retry_classification() -> None:
    def error(code: str, status: int) -> errors.KmsClientError:
        return errors.error_class(code)(code, status=status)

    assert is_retryable(error("KMSInternalException", 500))
    assert is_retryable(error("DependencyTimeoutException", 503))
    assert is_retryable(error("ThrottlingException", 400))
    assert is_retryable(error("429", 429))
    assert is_retryable(errors.ConnectionClosedError("reset"))
    assert not is_retryable(error("NotFoundException", 400))
    assert not is_retryable(error("LimitExceededException", 400))
    assert not is_retryable(ValueError("local bug"))
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# --- transport failures ------------------------------------------------------------------
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_retried_then_raised() -> None:
    recorder = Recorder()
    client = KmsClient(
        f"http://127.0.0.1:{closed_port()}",
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
        retry_policy=recorder.policy(max_attempts=4),
    )
    with pytest.raises(errors.EndpointConnectionError) as caught:
        client.list_keys()
    assert len(recorder.sleeps) == 3
    assert "127.0.0.1" in str(caught.value)
    assert isinstance(caught.value, errors.KmsLocalError)


def test_hang_up_without_answer_is_retried() -> None:
    with ScriptedServer([Reply(hang_up=True), Reply(hang_up=True), OK]) as server:
        result = server.client().list_keys()
    assert len(server.requests) == 3
    assert result["ResponseMetadata"]["RetryAttempts"] == 2


def test_read_timeout_is_raised_after_the_attempts() -> None:
    with ScriptedServer([Reply(delay=1.0)]) as server:
        client = server.client(
            timeout=(1.0, 0.2), retry_policy=RetryPolicy(2, sleep=lambda _: None)
        )
        with pytest.raises(errors.ReadTimeoutError):
            client.list_keys()
    assert len(server.requests) == 2


def test_connect_timeout_is_its_own_error() -> None:
    # A listener with backlog 0 that never accepts: once one connection fills its queue,
    # Linux drops further SYNs, so the next connect hangs until the connect timeout.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            client = KmsClient(
                f"http://127.0.0.1:{port}",
                region_name="us-east-1",
                aws_access_key_id="a",
                aws_secret_access_key="b",
                timeout=(0.3, 30.0),
                max_attempts=1,
            )
            with pytest.raises(errors.ConnectTimeoutError):
                client.list_keys()


# --- connection reuse ----------------------------------------------------------------------
def test_one_connection_is_reused_for_sequential_calls() -> None:
    with ScriptedServer([OK]) as server:
        client = server.client()
        for _ in range(5):
            client.list_keys()
        client.close()
    assert len(server.requests) == 5
    assert len(server.connections) == 1


def test_each_thread_gets_its_own_connection() -> None:
    barrier = threading.Barrier(3)
    failures: list[BaseException] = []
    with ScriptedServer([OK]) as server:
        client = server.client()

        def work() -> None:
            try:
                barrier.wait(timeout=5)
                for _ in range(4):
                    client.list_keys()
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        client.close()
    assert failures == []
    assert len(server.requests) == 12
    assert len(server.connections) == 3


def test_connection_closed_by_the_server_while_idle_is_replaced_without_a_retry() -> None:
    # The first answer closes the connection without saying so (an idle timeout); the next
    # call must still succeed even with retries disabled, on a new connection.
    with ScriptedServer([Reply(body={}, close_after=True), OK]) as server:
        client = server.client(max_attempts=1, retry_policy=None)
        client.list_keys()
        result = client.list_keys()
    assert result["ResponseMetadata"]["RetryAttempts"] == 0
    assert len(server.requests) == 2
    assert len(server.connections) == 2


def test_connection_close_header_is_honoured() -> None:
    with ScriptedServer([Reply(body={}, headers={"Connection": "close"})]) as server:
        client = server.client()
        for _ in range(3):
            client.list_keys()
    assert len(server.connections) == 3
