"""smolagents' CodeAgent with MCP tools, observed with one line: ``instrument_smolagents(tel)``.

Runs without network or API key: the model is scripted (three code actions, as an LLM would write
them), the tools come from a real MCP server, ``mcp-server-time`` from PyPI, started over stdio by
``ToolCollection.from_mcp``. The first action asks the server for the time in eight cities and keeps
only the ones where the working day is over (filtering in the sandbox); the second has a bug and
fails; the third answers. Prints the JSON summary and the KPI dashboard.

    pip install -e '.[smolagents]' mcp-server-time
    python examples/smolagents_code_agent.py
"""

from __future__ import annotations

import json
import sys

from mcp import StdioServerParameters
from smolagents import CodeAgent, ToolCollection
from smolagents.models import ChatMessage, MessageRole, Model

from mcp_exec_telemetry import observe
from mcp_exec_telemetry.dashboard import render
from mcp_exec_telemetry.integrations.smolagents import instrument_smolagents

CITIES = ["Europe/London", "Europe/Paris", "Asia/Tokyo", "Asia/Kolkata", "America/New_York", "America/Sao_Paulo", "Australia/Sydney", "Africa/Nairobi"]

SCRIPT = [
    "Thought: Convert 14:00 UTC to each city's time and keep the cities already past 17:00.\n<code>\n"
    "import json\n"
    f"cities = {CITIES!r}\n"
    "evening = []\n"
    "for city in cities:\n"
    '    answer = json.loads(convert_time(source_timezone="UTC", time="14:00", target_timezone=city))\n'
    '    hour = int(answer["target"]["datetime"][11:13])\n'
    "    if hour >= 17:\n"
    "        evening.append(city)\n"
    "print(evening)\n</code>",
    "Thought: Count them per continent.\n<code>\ncounts = {c.split('/')[0]: 0 for c in evening}\nfor c in evening:\n    counts[c.split('/')[0]] += 1\nprint(counts['Europe'])\n</code>",
    "Thought: No European city is there; answer with the list.\n<code>\nfinal_answer(', '.join(evening))\n</code>",
]


class ScriptedModel(Model):
    """Answers each step with the next scripted code action (what an LLM would write)."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kwargs):  # noqa: ANN001, ANN201
        return ChatMessage(role=MessageRole.ASSISTANT, content=self.replies.pop(0))


def main() -> None:
    server = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server_time", "--local-timezone", "UTC"])
    with observe(service_name="smolagents-code-agent", history=False) as tel:
        instrument_smolagents(tel)  # the one line: everything below is plain smolagents
        with ToolCollection.from_mcp(server, trust_remote_code=True, structured_output=False) as tools:
            agent = CodeAgent(tools=list(tools.tools), model=ScriptedModel(SCRIPT), additional_authorized_imports=["json"], verbosity_level=0)
            answer = agent.run("Where has the working day ended at 14:00 UTC?")
        print(f"answer: {answer}\n")
        print(json.dumps(tel.summary(), indent=2))
        print(render(tel, width=72))


if __name__ == "__main__":
    main()
