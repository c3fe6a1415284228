"""``make bench``: mock-kms side by side with moto and the ceiling, on this machine, now.

    python -m bench [--quick] [--duration S] [--repeats N] [--systems a,b] [--no-cse]

Prints the tables, writes ``bench/results/latest.json`` and ``bench/results/latest.png``.
Every server runs on a loopback port for the length of the run and is stopped by PID.

Hygiene on a small shared machine: all systems run at once and the runs are interleaved
(repeat → operation → concurrency → system), so a burst of someone else's load hits every
system alike; each figure is the median of its repeats; the load average before and after is
recorded; and each run also records the server's CPU time per request, which other load
barely changes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cse, procs, report, systems, workload
from bench.chart import draw_chart
from bench.postgres import BenchPostgres, LockSampler, round_trip_row
from bench.wrk import run_wrk, wrk_path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MIB = 1024 * 1024
CSE_SIZES = (MIB, 64 * MIB, 1024 * MIB)


def _log(message: str) -> None:
    print(message, flush=True)


def _version(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    text = (completed.stdout or completed.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def measure_cold_start(work_dir: Path, runs: int) -> dict[str, Any]:
    """``mock-kms serve`` to its first successful KMS request, on a fresh data dir each time
    (the worst case: root key, database and schema are created) and on an existing one."""
    fresh: list[float] = []
    warm: list[float] = []
    for index in range(runs):
        for kind, samples in (("fresh", fresh), ("existing", warm)):
            data_dir = work_dir / f"cold-start-{index}"
            port = procs.free_port()
            launch = systems.launch_spec("mock-kms", port, data_dir)
            samples.append(systems.first_success_seconds(launch.command, launch.env, port))
            _log(f"  cold start ({kind} data dir): {samples[-1]:.2f} s")
    return {
        "fresh_data_dir_s": statistics.median(fresh),
        "existing_data_dir_s": statistics.median(warm),
        "runs_fresh_s": fresh,
        "runs_existing_s": warm,
    }


def run_kms_matrix(
    running: dict[str, systems.RunningSystem],
    operations: list[workload.Operation],
    concurrencies: list[int],
    duration: int,
    repeats: int,
    other_repeats: int,
    postgres: BenchPostgres | None = None,
) -> tuple[list[report.Cell], list[dict[str, Any]]]:
    """Every (system, operation, concurrency) that :func:`systems.measures` admits,
    interleaved; returns the median cells and, for the PostgreSQL systems, the database
    round trips of each operation (summed over its runs)."""
    params: dict[str, dict[str, dict[str, Any]]] = {}
    for name, system in running.items():
        params[name] = {}
        for operation in operations:
            if not any(
                systems.measures(name, operation, c, report.TARGET_CONCURRENCY)
                for c in concurrencies
            ):
                continue
            try:
                params[name].update(
                    workload.request_params(
                        system.client, system.key_id, (operation,),
                        creates_keys=system.creates_keys,
                    )
                )  # fmt: skip
            except workload.KmsCallError as exc:
                _log(f"  {name} cannot do {operation.key}, left out: {exc}")
    for name, system in running.items():
        # Warm-up: first requests pay imports, connections, caches.
        for first in operations:
            if first.key in params[name] and not first.writes:
                request = workload.signed_request(system.client, first, params[name][first.key])
                run_wrk(system.endpoints, request, 16, 1)
                break
    runs: dict[tuple[str, str, int], list[report.Run]] = {}
    # (system, operation) -> [requests, seconds, statement counts] over its runs
    trips: dict[tuple[str, str], list[Any]] = {}
    # Seeded: the same order on every run of the bench (not cryptography).
    shuffler = random.Random(6)  # noqa: S311
    generator_cpu: list[float] = []
    for repeat in range(max(repeats, other_repeats)):
        for operation in operations:
            for concurrency in concurrencies:
                wanted = repeats if concurrency == report.TARGET_CONCURRENCY else other_repeats
                if repeat >= wanted:
                    continue
                # A different system order each time: whoever runs right after a burst of
                # someone else's load is a matter of chance, not of position.
                order = list(running.items())
                shuffler.shuffle(order)
                for name, system in order:
                    if operation.key not in params[name] or not systems.measures(
                        name, operation, concurrency, report.TARGET_CONCURRENCY
                    ):
                        continue
                    # Signed now: valid five minutes, far longer than one run.
                    requests = workload.signed_requests(
                        system.client, operation, params[name][operation.key]
                    )
                    counting = postgres is not None and name in systems.POSTGRES_HOSTS
                    counts_before = postgres.counts(name) if postgres and counting else None
                    sampler = (
                        LockSampler(postgres, name).start()
                        if postgres and counting and operation.writes
                        else None
                    )
                    cpu_before = procs.trees_cpu_seconds(system.cpu_pids)
                    result = run_wrk(system.endpoints, requests, concurrency, duration)
                    cpu_used = procs.trees_cpu_seconds(system.cpu_pids) - cpu_before
                    held = sampler.stop() if sampler is not None else None
                    if postgres is not None and counts_before is not None:
                        delta = postgres.counts(name).minus(counts_before)
                        total = trips.setdefault((name, operation.key), [0, 0.0, None, []])
                        total[0] += result.requests
                        total[1] += result.seconds
                        total[2] = delta if total[2] is None else total[2].plus(delta)
                        if held is not None:
                            total[3].append(held)
                    run = report.Run(
                        result.requests_per_second,
                        result.p50_ms,
                        result.p99_ms,
                        result.errors,
                        cpu_used / max(1, result.requests) * 1e6,
                    )
                    runs.setdefault((name, operation.key, concurrency), []).append(run)
                    generator_cpu.append(result.generator_cpu_seconds / result.seconds)
                    _log(
                        f"  [{repeat + 1}] {operation.key:<20} c{concurrency:<3} {name:<24}"
                        f" {result.requests_per_second:>8.0f} req/s  p50 {result.p50_ms:6.2f}"
                        f"  p99 {result.p99_ms:6.1f} ms  server CPU"
                        f" {run.server_cpu_us:5.0f} us/req"
                        + (f"  ERRORS {result.errors}" if result.errors else "")
                    )
    cells = [
        report.median_cell(name, operation, concurrency, samples)
        for (name, operation, concurrency), samples in runs.items()
    ]
    if generator_cpu:
        _log(f"  load generator (wrk) CPU: median {statistics.median(generator_cpu):.0%} of a core")
    round_trips = [
        round_trip_row(
            name, operation, requests, seconds, delta, statistics.mean(held) if held else None
        )
        for (name, operation), (requests, seconds, delta, held) in trips.items()
    ]
    return cells, round_trips


def run_cse(
    kms: systems.RunningSystem, s3: systems.RunningSystem | None, sizes: list[int]
) -> dict[str, Any]:
    """CSE throughput per size into the null sink and (if given) moto's S3."""
    results: list[dict[str, Any]] = []
    for size in sizes:
        for sink in [None, s3.endpoint] if s3 is not None else [None]:
            measured = cse.measure(kms.endpoint, kms.key_id, sink, size)
            row = asdict(measured)
            row["put_mb_per_s"] = measured.put_mb_per_s
            row["get_mb_per_s"] = measured.get_mb_per_s
            results.append(row)
            get = (
                f", get+decrypt {measured.get_mb_per_s:7.0f} MB/s"
                if measured.get_mb_per_s is not None
                else ""
            )
            _log(
                f"  CSE {size // MIB:>5} MiB -> {measured.sink:<4}: encrypt+put"
                f" {measured.put_mb_per_s:7.0f} MB/s{get}, peak RSS"
                f" {measured.peak_rss_kib / 1024:.0f} MiB"
            )
    # Diagnostic: the largest object again with glibc told to keep freed part buffers. The
    # difference is what per-part allocation (fresh pages faulted in) costs the pipeline.
    tuned = cse.measure(kms.endpoint, kms.key_id, None, max(sizes), extra_env=cse.MALLOC_TUNED_ENV)
    row = asdict(tuned)
    row["put_mb_per_s"], row["get_mb_per_s"] = tuned.put_mb_per_s, None
    results.append(row)
    _log(
        f"  CSE {max(sizes) // MIB:>5} MiB -> null, glibc malloc tuned (diagnostic):"
        f" encrypt+put {tuned.put_mb_per_s:7.0f} MB/s"
    )
    openssl = cse.openssl_speed_bytes_per_second()
    if openssl is not None:
        _log(f"  openssl speed -evp aes-256-gcm (1 core, 16 KiB): {openssl / 1e6:.0f} MB/s")
    return {"transfers": results, "openssl_bytes_per_s": openssl}


def _cse_summary(cse_results: dict[str, Any]) -> tuple[float | None, dict[int, int]]:
    """(null-sink rate of the largest object in bytes/s, peak RSS by size for that sink)."""
    null_rows = [r for r in cse_results.get("transfers", []) if r["sink"] == "null"]
    if not null_rows:
        return None, {}
    largest = max(null_rows, key=lambda r: r["size_bytes"])
    rate = largest["size_bytes"] / largest["put_seconds"]
    return rate, {r["size_bytes"]: r["peak_rss_kib"] for r in null_rows}


def format_cse(cse_results: dict[str, Any]) -> str:
    """The CSE table."""
    lines = [
        f"{'object':>8} {'sink':<11} {'encrypt+put MB/s':>17} {'get+decrypt MB/s':>17}"
        f" {'peak RSS':>9}"
    ]
    for row in cse_results.get("transfers", []):
        get = "-" if row["get_mb_per_s"] is None else f"{row['get_mb_per_s']:.0f}"
        lines.append(
            f"{row['size_bytes'] // MIB:>4} MiB {row['sink']:<11} {row['put_mb_per_s']:>17.0f}"
            f" {get:>17} {report.mib(row['peak_rss_kib']):>9}"
        )
    openssl = cse_results.get("openssl_bytes_per_s")
    if openssl:
        lines.append(f"openssl speed -evp aes-256-gcm, one core: {openssl / 1e6:.0f} MB/s")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=2, help="seconds per run (default 2)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per cell at concurrency 16 (default 3)"
    )
    parser.add_argument(
        "--other-repeats", type=int, default=2, help="runs per cell at other concurrencies"
    )
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--systems", default=",".join(systems.SYSTEMS))
    parser.add_argument("--operations", default=",".join(op.key for op in workload.OPERATIONS))
    parser.add_argument("--no-cse", action="store_true", help="skip client-side encryption")
    parser.add_argument("--cse-sizes-mib", default="1,64,1024")
    # At least one: the report always has a cold start figure (0 crashed on an empty median).
    parser.add_argument(
        "--cold-start-runs", type=int, default=3, choices=range(1, 101), metavar="1..100"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 s runs, one repeat, c16 only, CSE up to 64 MiB"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.repeats, args.other_repeats = 1, 1, 1
        args.concurrency, args.cse_sizes_mib, args.cold_start_runs = "16", "1,64", 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if wrk_path() is None:
        _log("wrk is not installed: apt-get install -y wrk (make bench does it)")
        return 2
    started = time.monotonic()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    names = [n for n in args.systems.split(",") if n]
    operations = [op for op in workload.OPERATIONS if op.key in args.operations.split(",")]
    load_before = os.getloadavg()
    _log(
        f"mock-kms bench: {os.cpu_count()} CPUs, load average {load_before[0]:.2f}"
        f" (1 min), {args.duration} s runs, {args.repeats} repeats at c16,"
        f" {args.other_repeats} at other concurrencies"
    )
    work_dir = Path(tempfile.mkdtemp(prefix="mock-kms-bench-"))
    running: dict[str, systems.RunningSystem] = {}
    samplers: dict[str, procs.RssSampler] = {}
    document: dict[str, Any] = {}
    postgres = BenchPostgres()
    left_out: dict[str, str] = {}
    try:
        _log("cold start:")
        cold = measure_cold_start(work_dir, args.cold_start_runs)
        for name in names:
            try:
                running[name] = systems.start_system(name, work_dir, postgres=postgres)
            except Exception as exc:  # noqa: BLE001 - a system that cannot run is reported, not fatal
                left_out[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                _log(f"  {name}: cannot start, left out: {exc}")
                continue
            samplers[name] = procs.RssSampler(running[name].host_pids).start()
            _log(f"  started {systems.describe(running[name])}")
        _log("KMS operations:")
        cells, round_trips = run_kms_matrix(
            running,
            operations,
            concurrencies,
            args.duration,
            args.repeats,
            args.other_repeats,
            postgres,
        )
        peak_rss = {name: sampler.stop() for name, sampler in samplers.items()}
        for name in list(running):
            if name not in ("mock-kms", "moto"):
                running.pop(name).stop()
        postgres.close()
        cse_results: dict[str, Any] = {}
        if not args.no_cse and "mock-kms" in running:
            _log("client-side encryption (KMS: mock-kms; S3: moto_server):")
            sizes = [int(s) * MIB for s in args.cse_sizes_mib.split(",")]
            cse_results = run_cse(running["mock-kms"], running.get("moto"), sizes)
        cse_rate, cse_rss = _cse_summary(cse_results)
        checks = report.check_targets(
            cells,
            cold["fresh_data_dir_s"],
            cse_rate,
            cse_results.get("openssl_bytes_per_s"),
            cse_rss,
        )
        ratio_rows = report.ratios(cells)
        load_after = os.getloadavg()
        document = {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_before": load_before,
                "load_average_after": load_after,
                "wrk": _version(["wrk", "-v"]),
                "openssl": _version(["openssl", "version"]),
            },
            "settings": {
                "duration_s": args.duration,
                "repeats_c16": args.repeats,
                "repeats_other": args.other_repeats,
                "concurrencies": concurrencies,
                "systems": {name: systems.LABELS.get(name, name) for name in running | peak_rss},
            },
            "kms": [cell.to_json() for cell in cells],
            "ratios": ratio_rows,
            "server_peak_rss_kib": peak_rss,
            "left_out": left_out,
            "postgres_round_trips": round_trips,
            "cold_start": cold,
            "cse": cse_results,
            "targets": [asdict(check) for check in checks],
            "elapsed_s": round(time.monotonic() - started, 1),
        }
        _print_report(document, cells, concurrencies, ratio_rows, cse_results, checks)
        args.out.mkdir(parents=True, exist_ok=True)
        json_path = args.out / "latest.json"
        json_path.write_text(json.dumps(document, indent=2) + "\n")
        png_path = args.out / "latest.png"
        draw_chart(
            cells,
            concurrencies,
            png_path,
            f"mock-kms vs moto_server vs ceiling\n{os.cpu_count()} CPUs,"
            f" {document['generated_at']}, median of {args.repeats} runs at c16",
        )
        _log(f"\nwrote {json_path} and {png_path} in {document['elapsed_s']:.0f} s")
    finally:
        for system in running.values():
            system.stop()
        postgres.close()
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


def _print_report(
    document: dict[str, Any],
    cells: list[report.Cell],
    concurrencies: list[int],
    ratio_rows: list[dict[str, Any]],
    cse_results: dict[str, Any],
    checks: list[report.TargetCheck],
) -> None:
    peak_rss: dict[str, int] = document["server_peak_rss_kib"]
    cold: dict[str, Any] = document["cold_start"]
    _log("\nKMS: requests/s (median), p50 and p99 latency in ms ('!' = errors in a run)")
    _log(report.format_kms_table(cells, concurrencies))
    _log("\nRatios (requests/s)")
    _log(report.format_ratio_table(ratio_rows))
    store_rows = report.store_comparison(cells)
    if store_rows:
        _log(
            "\nStore: SQLite (mock-kms) vs PostgreSQL, 1 and 2 hosts, at c16 (req/s, p99 ms,"
            " server CPU us/req incl. the database; vs SQLite on req/s and on CPU)"
        )
        _log(report.format_store_table(store_rows))
    if document["postgres_round_trips"]:
        _log("\nPostgreSQL round trips (pg_stat_statements calls / requests, over all runs)")
        _log(report.format_round_trips(document["postgres_round_trips"]))
    for name, reason in document["left_out"].items():
        _log(f"\n{name} left out: {reason}")
    _log("\nServer peak RSS (all processes of the server, summed)")
    for name, kib in peak_rss.items():
        _log(f"  {name:<24} {report.mib(kib)}")
    _log(
        f"\nCold start (mock-kms serve -> first successful request): fresh data dir"
        f" {cold['fresh_data_dir_s']:.2f} s, existing data dir {cold['existing_data_dir_s']:.2f} s"
    )
    if cse_results:
        _log("\nClient-side encryption (null = S3 stand-in that discards bodies)")
        _log(format_cse(cse_results))
    _log("\nPerformance targets")
    _log(report.format_targets(checks))
    machine = document["machine"]
    before, after = machine["load_average_before"], machine["load_average_after"]
    _log(f"\nload average before {before[0]:.2f}, after {after[0]:.2f} (1 min)")


if __name__ == "__main__":
    sys.exit(main())
