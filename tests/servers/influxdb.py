"""A real InfluxDB 1.x server (``/usr/bin/influxd``) run as a child process for tests.

The generated config (InfluxDB 1.6 format, see ``influxd config``) keeps meta,
data and WAL in a temporary directory, binds HTTP and the RPC/backup service to
free 127.0.0.1 ports, disables usage reporting, the ``_internal`` monitor
store, subscriptions and every listener that would open another port
(graphite, collectd, opentsdb, udp, ifql, unix socket). ``INFLUXDB_*``
environment variables are removed from the child's environment because influxd
lets them override the file.

Example::

    with InfluxDBServer() as influx:
        influx.create_database("t")
        influx.write("t", "cpu,host=a value=1.5 1000000000")
        assert influx.rows('SELECT value FROM cpu', db="t") == [{"time": 1000000000, "value": 1.5}]
"""

from __future__ import annotations

import json
import os
import urllib.parse
from typing import Any

from ._util import BinaryServer, ManagedProcess, free_port, http_request

_CONFIG_TEMPLATE = """\
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{dir}/meta"
  retention-autocreate = true
  logging-enabled = true

[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  index-version = "inmem"
  wal-fsync-delay = "0s"
  query-log-enabled = true

[coordinator]
  write-timeout = "10s"

[retention]
  enabled = true

[shard-precreation]
  enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = true
  suppress-write-log = false
  pprof-enabled = false
  https-enabled = false
  unix-socket-enabled = false
  flux-enabled = false

[logging]
  format = "logfmt"
  level = "info"
  suppress-logo = true

[ifql]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false

[continuous_queries]
  enabled = true
  log-enabled = true
"""


class InfluxDBError(RuntimeError):
    """InfluxDB answered a query or write with an error."""


def quote_ident(name: str) -> str:
    """Quote an InfluxQL identifier (database, measurement...)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxDBServer(BinaryServer):
    """InfluxDB 1.x on free 127.0.0.1 ports with a throwaway data dir; a context manager."""

    BINARY = "influxd"

    def __init__(
        self,
        *,
        binary: str | None = None,
        startup_timeout: float = 30.0,
        keep_dir: bool = False,
    ) -> None:
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.keep_dir = keep_dir
        self.port: int | None = None
        self.rpc_port: int | None = None
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL of the HTTP API, ``http://127.0.0.1:PORT``."""
        if self.port is None:
            raise RuntimeError("InfluxDBServer not started")
        return f"http://127.0.0.1:{self.port}"

    def _start_once(self, binary: str) -> InfluxDBServer:
        proc = ManagedProcess("influxd", keep_dir=self.keep_dir)
        self._proc = proc
        self.port = free_port()
        self.rpc_port = free_port()
        while self.rpc_port == self.port:
            self.rpc_port = free_port()
        config_path = proc.dir / "influxdb.conf"
        config_path.write_text(_CONFIG_TEMPLATE.format(dir=proc.dir, http_port=self.port, rpc_port=self.rpc_port))
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}
        proc.start([binary, "-config", str(config_path)], env=env)
        proc.wait_ready(
            lambda: http_request(f"{self.url}/ping", timeout=2)[0] == 204,
            self.startup_timeout,
            f"waiting for GET {self.url}/ping to answer 204",
        )
        return self


    # ----------------------------------------------------------------- API

    def query(
        self, influxql: str, db: str | None = None, *, epoch: str | None = "ns", raise_errors: bool = True
    ) -> dict[str, Any]:
        """Run InfluxQL via ``POST /query`` and return the parsed JSON.

        ``epoch="ns"`` (the default here) makes times integers in nanoseconds;
        pass ``epoch=None`` for RFC3339 strings. With ``raise_errors`` an error
        of the request or of any statement raises ``InfluxDBError``.
        """
        params = {"q": influxql}
        if db is not None:
            params["db"] = db
        if epoch is not None:
            params["epoch"] = epoch
        status, body = http_request(
            f"{self.url}/query",
            data=urllib.parse.urlencode(params).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            doc: dict[str, Any] = json.loads(body)
        except ValueError as err:
            raise InfluxDBError(f"query {influxql!r} -> HTTP {status}, not JSON: {body[:500]!r}") from err
        if raise_errors:
            errors = [doc["error"]] if "error" in doc else []
            errors += [r["error"] for r in doc.get("results", []) if "error" in r]
            if status != 200 or errors:
                raise InfluxDBError(f"query {influxql!r} -> HTTP {status}: {errors or body[:500]!r}")
        return doc

    def rows(self, influxql: str, db: str | None = None, *, epoch: str | None = "ns") -> list[dict[str, Any]]:
        """Run a query and flatten all series of all statements into row dicts
        (columns plus the series' tags)."""
        out: list[dict[str, Any]] = []
        for result in self.query(influxql, db, epoch=epoch).get("results", []):
            for series in result.get("series", []):
                tags = series.get("tags", {})
                for values in series.get("values", []):
                    row = dict(tags)
                    row.update(zip(series["columns"], values, strict=True))
                    out.append(row)
        return out

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE`` (idempotent)."""
        self.query(f"CREATE DATABASE {quote_ident(name)}")

    def databases(self) -> list[str]:
        """Names from ``SHOW DATABASES``."""
        return [row["name"] for row in self.rows("SHOW DATABASES")]

    def write(self, db: str, line_protocol_text: str, precision: str = "ns", rp: str | None = None) -> None:
        """Write raw line protocol via ``POST /write``; raises ``InfluxDBError`` unless 204."""
        params = {"db": db, "precision": precision}
        if rp is not None:
            params["rp"] = rp
        status, body = http_request(
            f"{self.url}/write?{urllib.parse.urlencode(params)}",
            data=line_protocol_text.encode(),
            method="POST",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        if status != 204:
            raise InfluxDBError(f"write to {db!r} -> HTTP {status}: {body[:500]!r}")
