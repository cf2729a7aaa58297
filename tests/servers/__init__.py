"""Real-backend test servers: an OTLP receiver (stand-in for a Collector), and
Prometheus and InfluxDB run from their installed binaries.

All of them bind free 127.0.0.1 ports, keep their state in temporary
directories and are context managers that always clean up.
"""

from ._util import free_port, refused_endpoint, require_binary, wait_until
from .influxdb import InfluxDBError, InfluxDBServer
from .otlp import LogRecord, MetricPoint, OtlpReceiver, ReceivedRequest, Span, SpanEvent, SpanLink
from .prometheus import PrometheusServer

__all__ = [
    "InfluxDBError",
    "InfluxDBServer",
    "LogRecord",
    "MetricPoint",
    "OtlpReceiver",
    "PrometheusServer",
    "ReceivedRequest",
    "Span",
    "SpanEvent",
    "SpanLink",
    "free_port",
    "refused_endpoint",
    "require_binary",
    "wait_until",
]
