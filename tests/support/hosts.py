"""Several ``mock-kms serve`` hosts behaving as one KMS, behind one endpoint.

:func:`start_hosts` starts N hosts (each a gunicorn master with its own workers, on its own
port) and a :class:`~tests.support.proxy.RoundRobinProxy` in front of them, so that each
request to the endpoint goes to the next host. The returned :class:`HostGroup` is a
:class:`~tests.support.server.RunningServer` whose ``endpoint`` and ``port`` are the proxy's:
every test written against one server runs unchanged against the group. ``hosts`` keeps the
individual servers for tests that need a specific host.

What every host of one KMS shares: the same database (``database_url``,
or on SQLite one shared data directory), the same root key, the same S3 directory. The root key
is the first host's ``root.key`` file, copied into every other host's data directory before it
starts; all hosts append to one log file, which is the group's ``log_path``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.proxy import RoundRobinProxy
from tests.support.server import RunningServer, start_server

ROOT_KEY_FILE = "root.key"


class HostGroup(RunningServer):
    """N running hosts and the proxy in front of them, usable as one :class:`RunningServer`.

    ``endpoint`` and ``port`` are the proxy's; ``data_dir`` and ``process``/``pid`` are the
    first host's (on a shared SQLite data directory, every host's); ``log_path`` is the log
    all hosts write to.
    """

    def __init__(
        self,
        hosts: list[RunningServer],
        proxy: RoundRobinProxy,
        log_path: Path,
        env: Mapping[str, str],
        *,
        database_url: str | None = None,
        s3_dir: Path | None = None,
    ) -> None:
        super().__init__(hosts[0].process, proxy.port, hosts[0].data_dir, log_path, dict(env))
        self.hosts = hosts
        self.proxy = proxy
        #: The PostgreSQL URL the hosts share (None: SQLite in the shared data directory).
        self.database_url = database_url
        self.s3_dir = s3_dir

    @property
    def pids(self) -> list[int]:
        """Every host's gunicorn master PID."""
        return [host.pid for host in self.hosts]

    def stop(self) -> None:
        """Stop the proxy, then every host by its PID: SIGTERM to all of them at once (each
        takes a moment to finish its requests), then each one waited for (SIGKILL after 15 s)."""
        self.proxy.stop()
        for host in self.hosts:
            if host.process.poll() is None:
                host.process.send_signal(signal.SIGTERM)
        for host in self.hosts:
            try:
                host.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                host.stop()


def start_hosts(
    base_dir: Path,
    *,
    count: int = 2,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    shared_data_dir: bool = False,
    database_url: str | None = None,
    s3_dir: Path | None = None,
    extra_args: list[str] | None = None,
    timeout: float = 30.0,
) -> HostGroup:
    """Start ``count`` hosts under ``base_dir`` and a round-robin proxy in front of them.

    ``shared_data_dir``: every host uses ``base_dir/data`` (SQLite there is shared across
    processes); else host *i* has its own ``base_dir/host<i>``. ``database_url`` and
    ``s3_dir`` are passed to every host as ``--database-url`` and ``--s3-dir``. Hosts start
    one after the other, each healthy before the next, the first one creating the root key.

    Raises RuntimeError (with the log) when a host does not start; the ones started are
    stopped.
    """
    if count < 1:
        raise ValueError("a group needs at least one host")
    base_dir.mkdir(parents=True, exist_ok=True)
    log_path = base_dir / "hosts.log"
    args = list(extra_args or [])
    if database_url is not None:
        args += ["--database-url", database_url]
    if s3_dir is not None:
        s3_dir.mkdir(parents=True, exist_ok=True)
        args += ["--s3-dir", str(s3_dir)]
    hosts: list[RunningServer] = []
    try:
        for index in range(count):
            data_dir = base_dir / ("data" if shared_data_dir else f"host{index}")
            if hosts and not shared_data_dir:
                _copy_root_key(hosts[0].data_dir, data_dir)
            hosts.append(
                start_server(
                    data_dir,
                    workers=workers,
                    env=env,
                    extra_args=args,
                    log_path=log_path,
                    timeout=timeout,
                )
            )
        proxy = RoundRobinProxy([("127.0.0.1", host.port) for host in hosts]).start()
    except BaseException:
        for host in hosts:
            with suppress(Exception):
                host.stop()
        raise
    return HostGroup(hosts, proxy, log_path, env or {}, database_url=database_url, s3_dir=s3_dir)


def _copy_root_key(source_dir: Path, data_dir: Path) -> None:
    """Give ``data_dir`` the root key file of ``source_dir`` (0600), if it has one (a group
    started with ``MOCK_KMS_ROOT_KEY`` in ``env`` has none: every host reads that)."""
    source = source_dir / ROOT_KEY_FILE
    if not source.exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / ROOT_KEY_FILE
    shutil.copyfile(source, target)
    target.chmod(0o600)


@contextmanager
def running_hosts(base_dir: Path, **kwargs: object) -> Iterator[HostGroup]:
    """Context manager form of :func:`start_hosts`."""
    group = start_hosts(base_dir, **kwargs)  # type: ignore[arg-type]
    try:
        yield group
    finally:
        group.stop()
