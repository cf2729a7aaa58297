"""``python -m mcp_exec_telemetry``: the same command line as the ``mcp-exec-telemetry`` script."""

import sys

from .cli import main

sys.exit(main())
