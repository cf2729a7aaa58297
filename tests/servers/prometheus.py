"""A real Prometheus server (``/usr/bin/prometheus``) run as a child process for tests.

It scrapes the given ``127.0.0.1:PORT`` targets every ``scrape_interval`` and keeps
its TSDB, config and log in a temporary directory that is removed on exit.

Example::

    with PrometheusServer(["127.0.0.1:9464"]) as prom:
        value = prom.wait_for_value('my_counter_total{job="test"}', lambda v: v >= 3)
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from ._util import BinaryServer, ManagedProcess, free_port, http_request, wait_until


class PrometheusError(RuntimeError):
    """The Prometheus HTTP API answered with an error."""


class PrometheusServer(BinaryServer):
    """Prometheus on a free 127.0.0.1 port scraping ``targets``; a context manager."""

    BINARY = "prometheus"

    def __init__(
        self,
        targets: Sequence[str],
        *,
        metrics_path: str = "/metrics",
        scrape_interval: str = "1s",
        job_name: str = "test",
        binary: str | None = None,
        startup_timeout: float = 30.0,
        extra_args: Sequence[str] = (),
        keep_dir: bool = False,
    ) -> None:
        self.scrape_targets = list(targets)
        self.metrics_path = metrics_path
        self.scrape_interval = scrape_interval
        self.job_name = job_name
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        self.keep_dir = keep_dir
        self.port: int | None = None
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT``."""
        if self.port is None:
            raise RuntimeError("PrometheusServer not started")
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        """The prometheus.yml content (as a dict; written as JSON, which is valid YAML)."""
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": [
                {
                    "job_name": self.job_name,
                    "metrics_path": self.metrics_path,
                    "scrape_interval": self.scrape_interval,
                    "scrape_timeout": self.scrape_interval,
                    "static_configs": [{"targets": self.scrape_targets}],
                }
            ],
        }

    def _start_once(self, binary: str) -> PrometheusServer:
        proc = ManagedProcess("prometheus", keep_dir=self.keep_dir)
        self._proc = proc
        config_path = proc.dir / "prometheus.yml"
        config_path.write_text(json.dumps(self.config(), indent=2))
        (proc.dir / "data").mkdir()
        self.port = free_port()
        proc.start(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={proc.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=info",
                *self.extra_args,
            ]
        )
        proc.wait_ready(
            lambda: http_request(f"{self.url}/-/ready", timeout=2)[0] == 200,
            self.startup_timeout,
            f"waiting for GET {self.url}/-/ready to answer 200",
        )
        return self


    # ----------------------------------------------------------------- API

    def _api(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_request(url, timeout=10)
        try:
            doc = json.loads(body)
        except ValueError as err:
            raise PrometheusError(f"GET {url} -> HTTP {status}, not JSON: {body[:500]!r}") from err
        if status != 200 or doc.get("status") != "success":
            raise PrometheusError(f"GET {url} -> HTTP {status}: {doc.get('errorType')}: {doc.get('error')}")
        return doc["data"]

    def query_data(self, promql: str, time: float | None = None) -> dict[str, Any]:
        """Instant query; returns the API's ``data`` (``resultType`` and ``result``)."""
        params = {"query": promql}
        if time is not None:
            params["time"] = repr(time)
        data: dict[str, Any] = self._api("/api/v1/query", params)
        return data

    def query(self, promql: str, time: float | None = None) -> list[Any]:
        """Instant query; returns ``data.result`` (for vectors: ``[{"metric": {...}, "value": [ts, "v"]}]``)."""
        result: list[Any] = self.query_data(promql, time)["result"]
        return result

    def query_scalar(self, promql: str) -> float | None:
        """Value of a query with at most one result: None if empty, else a float.

        Raises ``ValueError`` if the query returns several series.
        """
        data = self.query_data(promql)
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return float(result[1])
        if not result:
            return None
        if len(result) > 1:
            raise ValueError(f"{promql!r} returned {len(result)} series: {[r.get('metric') for r in result]}")
        if "value" not in result[0]:
            raise ValueError(f"{promql!r} is not an instant vector: {result[0]}")
        return float(result[0]["value"][1])

    def wait_for_value(self, promql: str, predicate: Callable[[float], bool], timeout: float = 30.0) -> float:
        """Poll ``query_scalar(promql)`` until it has a value satisfying ``predicate``; return it."""
        last: list[float | None] = [None]

        def check() -> bool:
            value = self.query_scalar(promql)
            last[0] = value
            return value is not None and predicate(value)

        wait_until(
            check,
            timeout,
            lambda: f"{promql!r}: last value {last[0]!r}; targets {self._target_health()}",
            interval=0.2,
        )
        value = last[0]
        assert value is not None
        return value

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets from ``/api/v1/targets`` (each has ``health``, ``lastError``...)."""
        active: list[dict[str, Any]] = self._api("/api/v1/targets")["activeTargets"]
        return active

    def wait_for_targets_up(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every configured target has been scraped successfully (health "up")."""

        def all_up() -> list[dict[str, Any]] | None:
            active = self.targets()
            ok = len(active) >= len(self.scrape_targets) and all(t.get("health") == "up" for t in active)
            return active if ok else None

        result = wait_until(all_up, timeout, lambda: f"targets not up: {self._target_health()}", interval=0.2)
        assert result is not None
        return result

    def _target_health(self) -> str:
        try:
            return repr([(t.get("scrapeUrl"), t.get("health"), t.get("lastError")) for t in self.targets()])
        except (OSError, PrometheusError) as err:
            return f"<targets unavailable: {err}>"
