"""The pure parts of the benchmark harness: medians, ratios, targets, tables, wrk glue."""

from __future__ import annotations

import io
import json

import pytest

from bench import report
from bench.cse import RepeatingStream, parse_openssl_speed
from bench.report import Cell, Run, TargetCheck
from bench.wrk import RESULT_PREFIX, HttpRequest, lua_script, lua_string, parse_output


def cell(
    system: str, rps: float, *, op: str = "GenerateDataKey", conc: int = 16, p99=5.0, cpu=100.0
):
    return Cell(system, op, conc, rps, 1.0, p99, 0, (rps,), cpu)


def test_median_cell_takes_each_metric_median_and_sums_errors() -> None:
    runs = [Run(100, 1.0, 9.0, 0, 300), Run(300, 3.0, 7.0, 2, 100), Run(200, 2.0, 8.0, 1, 200)]
    result = report.median_cell("mock-kms", "Encrypt-32B", 16, runs)
    assert result.requests_per_second == 200
    assert result.p50_ms == 2.0
    assert result.p99_ms == 8.0
    assert result.errors == 3
    assert result.runs == (100, 300, 200)
    assert result.server_cpu_us_per_request == 200


def test_median_cell_without_cpu_figures_has_none() -> None:
    result = report.median_cell("moto", "Decrypt-32B", 1, [Run(10, 1, 2)])
    assert result.server_cpu_us_per_request is None


def test_median_cell_refuses_no_runs() -> None:
    with pytest.raises(ValueError, match="no runs"):
        report.median_cell("moto", "Decrypt-32B", 1, [])


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(4, 2, 2.0), (None, 2, None), (4, None, None), (4, 0, None)],
)
def test_ratio(numerator, denominator, expected) -> None:
    assert report.ratio(numerator, denominator) == expected


def test_ratios_per_operation_and_concurrency() -> None:
    cells = [
        cell("mock-kms", 4000),
        cell("mock-kms-sigv4", 3600, cpu=125.0),
        cell("mock-kms-pkcs11", 2000),
        cell("moto", 500),
        cell("ceiling", 5000),
        cell("mock-kms", 1000, conc=1),
    ]
    rows = report.ratios(cells)
    assert [(r["operation"], r["concurrency"]) for r in rows] == [
        ("GenerateDataKey", 1),
        ("GenerateDataKey", 16),
    ]
    c16 = rows[1]
    assert c16["mock_vs_moto"] == 8.0
    assert c16["mock_vs_ceiling"] == 0.8
    assert c16["sigv4_cost"] == pytest.approx(0.1)
    assert c16["pkcs11_vs_software"] == 0.5
    assert c16["mock_vs_ceiling_cpu"] == 1.0
    assert c16["sigv4_cost_cpu"] == pytest.approx(0.2)  # 100 us/request open, 125 with sigv4
    assert rows[0]["mock_vs_moto"] is None


def test_ratios_order_operations_as_in_the_issue() -> None:
    cells = [cell("mock-kms", 1, op=op) for op in ("Decrypt-32B", "Encrypt-4KiB", "Zzz")]
    assert [r["operation"] for r in report.ratios(cells)] == ["Encrypt-4KiB", "Decrypt-32B", "Zzz"]


def _targets(cells, **kwargs) -> dict[str, TargetCheck]:
    options = {
        "cold_start_seconds": 0.5,
        "cse_rate": 3e9,
        "openssl_rate": 5e9,
        "cse_peak_rss_kib": {64: 100_000, 1024: 110_000},
    }
    options.update(kwargs)
    return {c.target: c for c in report.check_targets(cells, **options)}


def test_targets_met_and_missed_use_the_worst_operation() -> None:
    cells = [
        cell("mock-kms", 4000),
        cell("mock-kms-sigv4", 3800),
        cell("mock-kms-pkcs11", 2500),
        cell("moto", 500),
        cell("ceiling", 5000),
        cell("mock-kms", 3000, op="Decrypt-32B", p99=20.0),
        cell("moto", 1000, op="Decrypt-32B"),
        cell("ceiling", 3000, op="Decrypt-32B"),
    ]
    checks = _targets(cells)
    assert checks["c16: mock-kms >= 4x moto (worst op)"].met is False
    assert checks["c16: mock-kms >= 4x moto (worst op)"].measured == "3.0x"
    assert checks["c16: mock-kms >= 75% of ceiling (worst op)"].measured == "80%"
    assert checks["c16: mock-kms >= 75% of ceiling (worst op)"].met is True
    assert checks["c16: mock-kms p99 < 15 ms (worst op)"].met is False
    assert checks["c16: signature checking costs < 15% (worst op)"].measured == "5%"
    assert checks["c16: pkcs11 >= 50% of software (worst op)"].met is True
    assert checks["CSE 1 GiB >= 50% of openssl speed"].measured == "60%"
    assert checks["CSE peak memory independent of size"].met is True
    assert checks["cold start < 2 s"].met is True


def test_targets_not_measured_are_not_judged() -> None:
    checks = _targets(
        [cell("mock-kms", 4000)],
        cold_start_seconds=None,
        cse_rate=None,
        cse_peak_rss_kib={64: 1},
    )
    assert checks["c16: mock-kms >= 4x moto (worst op)"].met is None
    assert checks["c16: mock-kms >= 4x moto (worst op)"].measured == "not measured"
    assert checks["CSE 1 GiB >= 50% of openssl speed"].met is None
    assert checks["CSE peak memory independent of size"].met is None
    assert checks["cold start < 2 s"].met is None
    assert checks["c16: mock-kms p99 < 15 ms (worst op)"].met is True


def test_memory_growing_with_size_is_missed() -> None:
    checks = _targets([cell("mock-kms", 1)], cse_peak_rss_kib={64: 100, 1024: 1000})
    assert checks["CSE peak memory independent of size"].met is False
    assert checks["CSE peak memory independent of size"].measured == "10.00x"


def test_kms_table_has_one_row_per_operation_and_system() -> None:
    cells = [
        cell("ceiling", 5000),
        cell("mock-kms", 4000),
        Cell("moto", "GenerateDataKey", 16, 500, 30.0, 60.0, 3, (500,)),
    ]
    table = report.format_kms_table(cells, [1, 16])
    lines = table.splitlines()
    assert "c1 req/s" in lines[0] and "c16 req/s" in lines[0]
    assert [line.split()[1] for line in lines[2:]] == ["mock-kms", "moto", "ceiling"]
    assert "4000" in lines[2] and " - " in lines[2]
    assert "500!" in lines[3]  # errors are flagged


def test_ratio_table_and_targets_render() -> None:
    rows = report.ratios([cell("mock-kms", 4000), cell("moto", 500)])
    table = report.format_ratio_table(rows)
    assert "8.0x" in table and table.count(" -") >= 3
    text = report.format_targets(
        [TargetCheck("a", "1", True), TargetCheck("b", "2", False), TargetCheck("c", "-", None)]
    )
    assert text.splitlines() == ["  [   MET] a: 1", "  [MISSED] b: 2", "  [   n/a] c: -"]


def test_cell_json_round_trips() -> None:
    data = cell("mock-kms", 4000).to_json()
    assert json.loads(json.dumps(data))["runs"] == [4000]


def test_mib() -> None:
    assert report.mib(None) == "-"
    assert report.mib(2048) == "2 MiB"


def test_lua_string_escapes_everything_but_printable_ascii() -> None:
    assert lua_string('a"b\\c') == '"a\\034b\\092c"'
    assert lua_string("x\ny") == '"x\\010y"'
    assert lua_string(b"\xff") == '"\\255"'


def test_lua_script_sets_method_path_body_and_headers() -> None:
    script = lua_script(HttpRequest("POST", "/", {"X-Amz-Target": "TrentService.Encrypt"}, b"{}"))
    assert 'wrk.method = "POST"' in script
    assert 'wrk.body = "{}"' in script
    assert 'wrk.headers["X-Amz-Target"] = "TrentService.Encrypt"' in script
    assert "done = function" in script


def test_parse_output_finds_the_result_line() -> None:
    stdout = f"Running 1s test\n{RESULT_PREFIX}" + '{"requests": 5}\nmore\n'
    assert parse_output(stdout) == {"requests": 5}
    with pytest.raises(ValueError, match="no result"):
        parse_output("Running 1s test\n")


def test_parse_openssl_speed() -> None:
    output = (
        "+DT:AES-256-GCM:1:16384\n+R:304551:AES-256-GCM:0.99\n+H:16384\n"
        "+F:25:AES-256-GCM:5040165236.36\n"
    )
    assert parse_openssl_speed(output) == pytest.approx(5040165236.36)
    assert parse_openssl_speed("nothing") is None


def test_repeating_stream_reads_like_a_file() -> None:
    stream = RepeatingStream(10, b"abcd")
    assert stream.read(3) == b"abc"
    assert stream.read(4) == b"dabc"  # crosses the block boundary
    assert stream.tell() == 7
    assert stream.read() == b"dab"
    assert stream.read(5) == b""
    assert stream.seek(0, io.SEEK_END) == 10
    stream.seek(4)
    block = stream.read(4)
    assert block == b"abcd"


def test_repeating_stream_hands_out_whole_blocks_without_copying() -> None:
    block = b"0123"
    stream = RepeatingStream(8, block)
    assert stream.read(4) is block
    assert stream.read(4) is block


def test_lua_script_sends_several_requests_in_turn() -> None:
    first = HttpRequest("POST", "/", {"X-Amz-Target": "TrentService.DisableKey"}, b"{}")
    second = HttpRequest("POST", "/", {"X-Amz-Target": "TrentService.EnableKey"}, b"{}")
    script = lua_script([first, second])
    assert 'wrk.format("POST", "/", {["X-Amz-Target"] = "TrentService.DisableKey"}' in script
    assert 'wrk.format("POST", "/", {["X-Amz-Target"] = "TrentService.EnableKey"}' in script
    assert "request = function()" in script
    # One request: wrk builds it once, no Lua call per request.
    assert "request = function()" not in lua_script(first)


def test_lua_script_gives_each_thread_a_host() -> None:
    request = HttpRequest("POST", "/", {}, b"{}")
    script = lua_script(request, [("127.0.0.1", 8001), ("127.0.0.1", 8002)])
    assert 'local hosts = {{"127.0.0.1", "8001"}, {"127.0.0.1", "8002"}}' in script
    assert "thread.addr = wrk.lookup(host[1], host[2])[1]" in script
    assert "setup = function(thread)" not in lua_script(request)
    with pytest.raises(ValueError, match="no request"):
        lua_script([])


def _store_cells(sqlite: float, one_host: float, two_hosts: float, op: str) -> list[Cell]:
    return [
        cell("mock-kms", sqlite, op=op),
        cell("mock-kms-postgres", one_host, op=op),
        cell("mock-kms-postgres-2hosts", two_hosts, op=op),
    ]


def test_store_comparison_puts_postgres_beside_sqlite() -> None:
    cells = _store_cells(1000, 900, 1100, "Encrypt-32B") + _store_cells(400, 100, 90, "CreateKey")
    rows = report.store_comparison([*cells, cell("moto", 50, op="Encrypt-32B")])
    assert [row["operation"] for row in rows] == ["Encrypt-32B", "CreateKey"]
    assert rows[0]["mock-kms-postgres"]["vs_sqlite"] == pytest.approx(0.9)
    assert rows[0]["mock-kms-postgres-2hosts"]["vs_sqlite"] == pytest.approx(1.1)
    assert rows[0]["mock-kms"]["vs_sqlite"] == pytest.approx(1.0)
    assert rows[0]["mock-kms-postgres"]["vs_sqlite_cpu"] == pytest.approx(1.0)
    table = report.format_store_table(rows)
    assert "PostgreSQL 1 host" in table and "90%" in table and "25%" in table


def test_postgres_target_ignores_write_operations() -> None:
    cells = (
        _store_cells(1000, 850, 790, "Encrypt-32B")
        + _store_cells(1000, 950, 1000, "Decrypt-32B")
        + _store_cells(400, 100, 90, "CreateKey")
    )
    checks = {c.target: c for c in report.check_targets(cells, None, None, None, None)}
    one = checks["c16: PostgreSQL (1 host) >= 80% of SQLite (worst hot-path op)"]
    two = checks["c16: PostgreSQL (2 hosts) >= 80% of SQLite (worst hot-path op)"]
    assert (one.met, one.measured) == (True, "85%")
    assert (two.met, two.measured) == (False, "79%")


def test_postgres_target_not_judged_without_postgres() -> None:
    checks = report.check_targets([cell("mock-kms", 1000)], None, None, None, None)
    postgres = [c for c in checks if "PostgreSQL" in c.target]
    assert len(postgres) == 2
    assert all(c.met is None for c in postgres)


def test_sqlite_p99_target_leaves_out_write_operations() -> None:
    cells = [cell("mock-kms", 1000, p99=5.0), cell("mock-kms", 400, op="CreateKey", p99=90.0)]
    checks = {c.target: c for c in report.check_targets(cells, None, None, None, None)}
    assert checks["c16: mock-kms p99 < 15 ms (worst op)"].measured == "5.0 ms"
