"""The package's one at-fork hook, in a module of its own so that it keeps no other module alive.

The interpreter holds an at-fork callback, and with it the callback's module globals, until the very
end of its finalization. A callback defined in ``telemetry.py`` kept that module, and through it the
OpenTelemetry SDK, alive past the point where the interpreter frees modules cheaply with the garbage
collector; freeing them one by one afterwards cost every process that imports ``observe`` 7 M
instructions at exit, 1.8 % of the SDK's import. This callback finds the sessions through ``sys.modules``.
"""

import os
import sys


def reset_sessions_in_child() -> None:
    """In a forked child: forget the parent's history connections and locks, then give every live
    session fresh providers and steps (see ``Telemetry._after_fork_in_child``); for the modules loaded."""
    history = sys.modules.get("mcp_exec_telemetry.history")
    if history is not None:
        history._after_fork_in_child()
    telemetry = sys.modules.get("mcp_exec_telemetry.telemetry")
    if telemetry is not None:
        telemetry._reset_sessions_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reset_sessions_in_child)
