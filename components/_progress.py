"""Progress lines a task prints while it works: epochs with their metrics and an ETA, waits with their budget.

A progress line is one line on the task's stdout starting with :data:`MARK`. On a cluster, stdout is the
task's log in the KFP UI and Vertex console, so users watching a run see it move; ``kfpc run`` picks the
marked lines out of the subprocess output and shows them in the terminal (as one updating line there, as
plain lines in CI logs). Plain Python, no kfp import.
"""

from __future__ import annotations

import math
import sys
from typing import TextIO

#: what starts a progress line (``kfpc run`` forwards the lines that start with it)
MARK = "[kfpc] "


def eta_text(seconds: float | None) -> str:
    """``ETA 1:05`` style text; empty when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"ETA {hours}:{minutes:02d}:{secs:02d}" if hours else f"ETA {minutes}:{secs:02d}"


def remaining(done: float, total: float, elapsed: float) -> float | None:
    """Seconds left when ``done`` of ``total`` units took ``elapsed`` seconds (the rest at the same pace)."""
    if not done or not total or done >= total or elapsed < 0:
        return None
    return elapsed / done * (total - done)


def line(step: str, message: str, eta_s: float | None = None) -> str:
    """One progress line (without the newline): ``[kfpc] <step>: <message> (ETA m:ss)``."""
    text = f"{MARK}{step}: {message}"
    eta = eta_text(eta_s)
    return f"{text} ({eta})" if eta else text


def emit(step: str, message: str, eta_s: float | None = None, stream: TextIO | None = None) -> str:
    """Print a progress line to ``stream`` (default stdout) and flush it at once; returns the line."""
    text = line(step, message, eta_s)
    out = stream or sys.stdout
    out.write(text + "\n")
    out.flush()
    return text
