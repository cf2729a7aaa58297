"""Time-series exports: CSV, InfluxDB line protocol (escaping, ns timestamps), the InfluxDB writer."""

from __future__ import annotations

import csv
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from mcp_exec_telemetry.history import scan, write_session
from mcp_exec_telemetry.timeseries import (
    CSV_COLUMNS,
    InfluxWriteError,
    InfluxWriter,
    escape_measurement,
    escape_tag,
    format_field_value,
    to_csv,
    to_line_protocol,
)
from tests.servers import InfluxDBServer, refused_endpoint, require_binary
from tests.test_history import make_summary

NOV8_1030_NS = 1731061800 * 10**9  # 2024-11-08T10:30:00Z


def test_csv_has_a_stable_header_and_one_row_per_session(tmp_path: Path) -> None:
    write_session(make_summary(queries=10, hits=9), tmp_path)
    write_session(make_summary("2024-11-08T11:00:00Z", "2024-11-08T11:30:00Z", queries=4, hits=1, service="agent,b"), tmp_path)
    text = to_csv(scan(tmp_path).sessions)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert CSV_COLUMNS[:8] == ("date", "session", "start_time", "end_time", "service_name", "session_duration_ms", "discovery_total_queries", "discovery_successful_queries")
    assert len(CSV_COLUMNS) == 46
    assert [(r["session"], r["service_name"], r["discovery_total_queries"], r["discovery_hit_rate"]) for r in rows] == [
        ("1", "agent-a", "10", "0.9"),
        ("2", "agent,b", "4", "0.25"),
    ]
    assert rows[0]["execution_avg_duration_ms"] == "850.0"
    assert rows[0]["filtering_estimated_tokens_saved"] == "6500"
    assert rows[1]["end_time"] == "2024-11-08T11:30:00Z"


def test_csv_of_no_sessions_is_just_the_header() -> None:
    assert to_csv([]) == ",".join(CSV_COLUMNS) + "\n"


@pytest.mark.parametrize(
    "func, raw, escaped",
    [
        (escape_measurement, "cpu load,avg", r"cpu\ load\,avg"),
        (escape_measurement, "a=b", "a=b"),
        (escape_tag, "my agent,v=2", r"my\ agent\,v\=2"),
        (escape_tag, r"C:\path", r"C:\path"),
    ],
)
def test_escaping_follows_line_protocol_rules(func: Any, raw: str, escaped: str) -> None:
    assert func(raw) == escaped


@pytest.mark.parametrize("bad", ["two\nlines", "ends with\\"])
def test_values_line_protocol_cannot_carry_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        escape_tag(bad)


def test_field_values_are_typed() -> None:
    assert format_field_value(12) == "12i"
    assert format_field_value(12, as_float=True) == "12.0"
    assert format_field_value(0.92) == "0.92"
    assert format_field_value(True) == "true"
    assert format_field_value('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    assert format_field_value(float("nan")) is None


def test_line_protocol_of_a_session_has_a_point_per_step_and_breakdowns(tmp_path: Path) -> None:
    write_session(make_summary(skills=[("filter test", 5, 5, 120.0)], languages={"python3": 5, "javascript": 3}), tmp_path)
    lines = to_line_protocol(scan(tmp_path).sessions, tags={"env": "ci"}).splitlines()
    ts = str(NOV8_1030_NS + 1)  # end time in ns + session number 1
    assert all(line.endswith(" " + ts) for line in lines)
    assert [line.split(",", 1)[0] for line in lines] == [
        "mcp_exec_session", "mcp_exec_discovery", "mcp_exec_execution", "mcp_exec_sdk", "mcp_exec_filtering", "mcp_exec_skills",
        "mcp_exec_security", "mcp_exec_execution_language", "mcp_exec_execution_language", "mcp_exec_filtering_operation",
        "mcp_exec_filtering_operation", "mcp_exec_pii", "mcp_exec_skill",
    ]
    assert lines[1] == (
        "mcp_exec_discovery,env=ci,service=agent-a total_queries=10i,successful_queries=9i,failed_queries=1i,continued_queries=1i,"
        f"hit_rate=0.8,avg_response_time_ms=45.0,total_time_ms=450.0,cache_hits=3i {ts}"
    )
    assert lines[7] == f"mcp_exec_execution_language,env=ci,language=javascript,service=agent-a executions=3i {ts}"
    assert lines[-1] == f"mcp_exec_skill,env=ci,service=agent-a,skill=filter\\ test runs=5i,successes=5i,avg_duration_ms=120.0 {ts}"


def test_skill_tags_are_bounded_per_session() -> None:
    s = make_summary(skills=[(f"skill_{i}", 10 - i, 1, 1.0) for i in range(10)])
    lines = to_line_protocol([s], max_skills=3).splitlines()
    assert [ln.split("skill=")[1].split(" ")[0] for ln in lines if ln.startswith("mcp_exec_skill,")] == ["skill_0", "skill_1", "skill_2"]


def test_a_live_summary_is_stamped_with_its_end_second() -> None:
    line = to_line_protocol([make_summary()]).splitlines()[0]
    assert line == f"mcp_exec_session,service=agent-a duration_ms=1800000.0,number=0i {NOV8_1030_NS}"


# --- the writer ------------------------------------------------------------------------------------


class _Flaky(BaseHTTPRequestHandler):
    """Answers 503 ``fail`` times, then 204; or always ``status`` with an InfluxDB-style error."""

    fail = 0
    status = 204
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        cls.bodies.append(body)
        if cls.fail > 0:
            cls.fail -= 1
            code, text = 503, b'{"error":"overloaded"}'
        else:
            code, text = cls.status, (b"" if cls.status == 204 else b'{"error":"database not found: \\"nope\\""}')
        self.send_response(code)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[tuple[str, type[_Flaky]]]:
    handler = type("Handler", (_Flaky,), {"fail": 0, "status": 204, "bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_writer_retries_server_errors_then_succeeds(flaky: Any) -> None:
    url, handler = flaky
    handler.fail = 2
    sleeps: list[float] = []
    w = InfluxWriter(url, "db", retries=3, backoff=0.5, sleep=sleeps.append)
    assert w.write("m v=1i 1\nm v=2i 2\n") == 2
    assert (w.attempts, sleeps) == (3, [0.5, 1.0])
    assert handler.bodies[-1] == b"m v=1i 1\nm v=2i 2"


def test_writer_reports_a_rejection_at_once_with_influxdbs_message(flaky: Any) -> None:
    url, handler = flaky
    handler.status = 404
    w = InfluxWriter(url, "nope", retries=5, sleep=lambda s: None)
    with pytest.raises(InfluxWriteError, match=r"rejected the write to 'nope' \(HTTP 404\): database not found: \"nope\"") as err:
        w.write("m v=1i 1")
    assert (err.value.status, w.attempts) == (404, 1)


def test_writer_gives_up_on_an_unreachable_server_after_its_retries() -> None:
    url = refused_endpoint()
    w = InfluxWriter(url, "db", retries=2, sleep=lambda s: None)
    with pytest.raises(InfluxWriteError, match=r"did not accept the write after 3 attempts: .*refused"):
        w.write("m v=1i 1")
    assert w.attempts == 3


def test_writer_refuses_a_bad_url() -> None:
    with pytest.raises(ValueError, match="http://host:8086"):
        InfluxWriter("localhost:8086", "db")


@pytest.mark.server
def test_sessions_round_trip_through_a_real_influxdb(tmp_path: Path) -> None:
    require_binary("influxd")
    write_session(make_summary("2024-11-08T10:00:00Z", "2024-11-08T10:30:00Z", queries=10, hits=8, service="agent a,1"), tmp_path)
    write_session(make_summary("2024-11-08T10:00:00Z", "2024-11-08T10:30:00Z", queries=4, hits=1, service="agent a,1"), tmp_path)
    write_session(make_summary("2024-11-09T09:00:00Z", "2024-11-09T09:10:00Z", queries=2, hits=2, service="agent a,1", skills=[("x=y z", 3, 3, 5.0)]), tmp_path)
    with InfluxDBServer() as influx:
        influx.create_database("agents")
        written = InfluxWriter(influx.url, "agents").write(to_line_protocol(scan(tmp_path).sessions))
        assert written == 13 + 13 + 12  # 7 steps + language + 2 operations + pattern + skills (2, 2, 1)
        rows = influx.rows('SELECT total_queries, hit_rate, service FROM mcp_exec_discovery ORDER BY time', db="agents")
        assert rows == [
            {"time": NOV8_1030_NS + 1, "total_queries": 10, "hit_rate": 0.8, "service": "agent a,1"},
            {"time": NOV8_1030_NS + 2, "total_queries": 4, "hit_rate": 0.25, "service": "agent a,1"},
            {"time": 1731143400 * 10**9 + 1, "total_queries": 2, "hit_rate": 1.0, "service": "agent a,1"},
        ]
        total = influx.rows("SELECT SUM(total_queries) AS q FROM mcp_exec_discovery", db="agents")
        assert total[0]["q"] == 16
        skills = influx.rows('SELECT runs, skill FROM mcp_exec_skill WHERE skill = \'x=y z\'', db="agents")
        assert [(r["skill"], r["runs"]) for r in skills] == [("x=y z", 3)]
        with pytest.raises(InfluxWriteError, match=r"HTTP 404.*database not found"):
            InfluxWriter(influx.url, "missing", retries=0).write(to_line_protocol(scan(tmp_path).sessions))
        with pytest.raises(InfluxWriteError, match=r"HTTP 400.*unable to parse"):
            InfluxWriter(influx.url, "agents", retries=0).write("bad line without fields")
