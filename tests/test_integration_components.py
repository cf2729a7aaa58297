"""Discovery, SDK generation, filtering, skills and PII tokenization of tool results, each reporting
through its step; generated SDKs and skills run in real child processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcp_exec_telemetry.integrations.demo_server import customers, orders
from mcp_exec_telemetry.integrations.discovery import ToolDiscovery
from mcp_exec_telemetry.integrations.executor import CodeExecutor
from mcp_exec_telemetry.integrations.filtering import filter_records, json_size, map_records, reduce_records, select_fields
from mcp_exec_telemetry.integrations.sdkgen import JS_IPC_HANDLER, PYTHON_IPC_HANDLER, SdkGenerator
from mcp_exec_telemetry.integrations.skills import SkillManager
from mcp_exec_telemetry.pii import PiiTokenizer
from mcp_exec_telemetry.testing import capture

TOOLS: list[dict[str, Any]] = [
    {"name": "read_file", "description": "Read a file from the workspace", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
    {"name": "write_file", "description": "Write text to a file", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}, "required": ["path", "content"]}},
    {"name": "search_files", "description": "Search files by glob pattern", "inputSchema": {"type": "object", "properties": {"pattern": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["pattern"]}},
    {"name": "send_email", "description": "Send an email message", "inputSchema": {"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}}, "required": ["to", "body"]}},
]


# --- discovery -------------------------------------------------------------------------------


def test_discovery_ranks_by_relevance_at_each_detail_level() -> None:
    with capture() as cap:
        d = ToolDiscovery(TOOLS, cap.telemetry)
        assert d.search("file", "name-only") == [{"name": "read_file"}, {"name": "write_file"}, {"name": "search_files"}]
        assert d.search("send_email", "name-and-description") == [{"name": "send_email", "description": "Send an email message"}]
        assert d.search("glob", "full") == [{"name": "search_files", "description": "Search files by glob pattern", "input_schema": TOOLS[2]["inputSchema"]}]
        assert d.search("calendar", "name-only") == []
        assert [d.score(t, "file") for t in d.tools] == [23, 23, 10, 0]
        s = cap.summary()["discovery"]
        assert (s["total_queries"], s["successful_queries"], s["cache_hits"]) == (4, 3, 0)
        assert s["detail_levels"] == {"full": 1, "name-and-description": 1, "name-only": 2}
        counts = [sp.attributes["mcp_exec.discovery.result_count"] for sp in cap.spans("discovery.search")]
        assert counts == [3, 1, 1, 0]


def test_a_repeated_query_is_a_cache_hit() -> None:
    with capture() as cap:
        d = ToolDiscovery(TOOLS, cap.telemetry)
        first = d.search("file", "name-only", limit=2)
        second = d.search("file", "name-only", limit=2)
        assert first == second == [{"name": "read_file"}, {"name": "write_file"}]
        assert cap.summary()["discovery"]["cache_hits"] == 1
    with pytest.raises(ValueError):
        ToolDiscovery(TOOLS).search("file", "everything")


# --- SDK generation --------------------------------------------------------------------------


def test_generated_sdks_call_tools_through_the_executor(tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def handler(name: str, arguments: dict[str, Any]) -> Any:
        calls.append((name, arguments))
        if name == "send_email":
            raise RuntimeError("mail is down")
        return {"read_file": "hello", "search_files": ["a.py", "b.py"]}.get(name)

    with capture() as cap:
        gen = SdkGenerator(tmp_path / "sdk", cap.telemetry)
        sdk = gen.generate(TOOLS)
        again = gen.generate(TOOLS)
        assert (sdk.cache_hit, again.cache_hit, sdk.tools) == (False, True, [t["name"] for t in TOOLS])
        python = sdk.python_path.read_text()
        assert "def write_file(path, content):" in python and "def search_files(pattern, limit=None):" in python
        ex = CodeExecutor(cap.telemetry, sdk_dir=sdk.directory, tool_handler=handler)
        py = ex.execute(
            "import mcp_tools as t\nprint(t.read_file(path='x.txt'))\nprint(t.search_files('*.py'))\n"
            "try:\n    t.send_email(to='a', body='b')\nexcept t.ToolError as e:\n    print('error:', e)\n",
            "python3",
        )
        assert (py.exit_code, py.stdout, py.tool_calls) == (0, "hello\n['a.py', 'b.py']\nerror: mail is down\n", 3)
        js = ex.execute("const t = require('mcp_tools');\nt.searchFiles({pattern: '*.js', limit: 1}).then(r => console.log(JSON.stringify(r)));", "javascript")
        assert (js.exit_code, js.stdout) == (0, '["a.py","b.py"]\n')
        assert calls == [
            ("read_file", {"path": "x.txt"}),
            ("search_files", {"pattern": "*.py"}),
            ("send_email", {"to": "a", "body": "b"}),
            ("search_files", {"pattern": "*.js", "limit": 1}),
        ]
        s = cap.summary()["sdk"]
        handler_bytes = len(PYTHON_IPC_HANDLER.encode()) + len(JS_IPC_HANDLER.encode())
        assert (s["total_generations"], s["cache_hits"], s["tools_included"], s["ipc_handler_size_bytes"]) == (2, 1, 8, 2 * handler_bytes)


# --- filtering -------------------------------------------------------------------------------


def test_filtering_helpers_measure_input_and_output_bytes() -> None:
    records = [{"id": 1, "tier": "gold", "note": "x" * 20}, {"id": 2, "tier": "basic", "note": "y" * 20}]
    with capture() as cap:
        tel = cap.telemetry
        gold = filter_records(tel, records, lambda r: r["tier"] == "gold")
        ids = map_records(tel, records, lambda r: r["id"])
        total = reduce_records(tel, ids, lambda a, b: a + b, 0)
        slim = select_fields(tel, records, ["id"])
        assert (gold, ids, total, slim) == ([records[0]], [1, 2], 3, [{"id": 1}, {"id": 2}])
        s = cap.summary()["filtering"]
        size = json_size(records)
        assert size == len(json.dumps(records, separators=(",", ":")))
        assert s["operations"] == {"filter": 1, "map": 1, "reduce": 1, "select": 1}
        assert s["total_input_bytes"] == 3 * size + json_size([1, 2])
        assert s["total_output_bytes"] == json_size(gold) + json_size([1, 2]) + json_size(3) + json_size(slim)


def test_filtering_inside_executed_code_is_reported_under_the_execution_span(tmp_path: Path) -> None:
    data = [{"n": i, "pad": "z" * 50} for i in range(10)]
    with capture() as cap:
        sdk = SdkGenerator(tmp_path, cap.telemetry).generate(TOOLS)
        code = f"import mcp_tools as t\nevens = t.filter_data('filter', {data!r}, lambda rs: [r['n'] for r in rs if r['n'] % 2 == 0])\nprint(evens)\n"
        result = CodeExecutor(cap.telemetry, sdk_dir=sdk.directory).execute(code, "python3")
        assert result.stdout == "[0, 2, 4, 6, 8]\n"
        (op,) = cap.spans("filtering.operation")
        (execution,) = cap.spans("execution.run")
        assert op.parent.span_id == execution.context.span_id
        s = cap.summary()["filtering"]
        assert (s["total_input_bytes"], s["total_output_bytes"]) == (json_size(data), json_size([0, 2, 4, 6, 8]))


# --- skills ----------------------------------------------------------------------------------


def test_skills_are_saved_searched_run_and_deleted_on_disk(tmp_path: Path) -> None:
    with capture() as cap:
        tel = cap.telemetry
        skills = SkillManager(tmp_path / "skills", tel, CodeExecutor(tel))
        skills.save("sum_numbers", "print(sum(range(10)))", "python3", description="Add numbers", tags=["math"])
        skills.save("greet", "console.log('hi')", "javascript", description="Say hello")
        skills.save("broken", "raise SystemExit(2)", "python3", description="Always fails")
        assert [s.name for s in skills.list()] == ["broken", "greet", "sum_numbers"]
        assert [s.name for s in skills.search("math numbers")] == ["sum_numbers"]
        loaded = skills.load("greet")
        assert (loaded.language, loaded.code, loaded.description) == ("javascript", "console.log('hi')", "Say hello")
        assert (skills.run("sum_numbers").stdout, skills.run("sum_numbers").success) == ("45\n", True)
        assert skills.run("greet").stdout == "hi\n"
        assert skills.run("broken").success is False
        meta = json.loads((tmp_path / "skills" / "sum_numbers" / "skill.json").read_text())
        assert (meta["run_count"], meta["success_count"], meta["tags"]) == (2, 2, ["math"])
        assert skills.delete("broken") is True and skills.delete("broken") is False
        assert not (tmp_path / "skills" / "broken").exists()
        s = cap.summary()["skills"]
        assert (s["total_skills"], s["active_skills"], s["deleted_skills"], s["executions"], s["successful_executions"]) == (3, 2, 1, 4, 3)
        run_span = cap.spans("skills.run")[0]
        assert cap.spans("execution.run")[0].parent.span_id == run_span.context.span_id
    with pytest.raises(ValueError):
        SkillManager(tmp_path).save("../escape", "x")


# --- PII in tool results -----------------------------------------------------------------------


def test_pii_in_tool_results_is_tokenized_with_exact_detections() -> None:
    corpus = {
        "customers": customers(2),
        "orders": orders("C0001", 4),
        "not_cards": ["4111 1111 1111 1112", "5555 5555 5555 4445", "order 1234 5678 9012 3456"],
    }
    with capture() as cap:
        tokenizer = PiiTokenizer(telemetry=cap.telemetry)
        safe, mapping = tokenizer.tokenize_json(corpus)
        assert sorted(mapping.values()) == sorted(
            ["ada.lovelace0@example.com", "grace.lovelace1@example.com", "+1-555-100-1000", "+1-555-101-1001"]
            + sorted({o["card"] for o in corpus["orders"]})
        )
        assert safe["customers"][0]["email"] == "[EMAIL_1]"
        assert safe["not_cards"] == corpus["not_cards"]  # Luhn-invalid numbers are left alone
        assert all(o["card"].startswith("[CREDIT_CARD_") for o in safe["orders"])
        assert tokenizer.detokenize(safe) == corpus
        s = cap.summary()["security"]
        assert s["patterns"] == {"credit_card": 4, "email": 2, "phone_number": 2}
        assert (s["pii_detected"], s["tokens_created"]) == (8, 4 + len({o["card"] for o in corpus["orders"]}))
        # Only types and counts reach telemetry, never a value.
        recorded = json.dumps([dict(sp.attributes) for sp in cap.spans()] + [[dict(e.attributes) for e in sp.events] for sp in cap.spans()])
        assert "@example.com" not in recorded and "4111" not in recorded and "+1-555" not in recorded
