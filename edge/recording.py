"""When a recording happened: the rule that turns its video time into the UTC times of its windows.

A live camera dates each frame by the wall clock. A recording is analysed faster (or slower) than it was filmed,
so its frames are dated by their own time in the video, from a chosen moment of its first frame (the origin):

- ``source.recorded_at`` (``--recorded-at``) set: the first frame is at that moment, as the user says.
- unset: the clip is taken to have ENDED at the moment its analysis starts, so its first frame is at that moment
  minus the clip's length.

Why this default: the aggregator (aggregator/plausibility.py) refuses a window that ends more than
``max_clock_skew_s`` (300 s) ahead of its clock and one older than its retention (30 days). A clip that ends
when its analysis starts is never in the future and as fresh as a clip can be, whatever its length, and a
report of it shows it just before its analysis. A ``recorded_at`` that puts the clip's end in the future is
refused here for the same reason, before any frame is analysed.

Windows are counted from the first frame (``WindowCounter.restart``), not aligned to the wall-clock grid as a
live camera's are: ``--window 60`` over a 20 s clip is one window, ``--window 5`` four.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from emo7ion.core import messages
from emo7ion.core.service.errors import UserError

if TYPE_CHECKING:
    from emo7ion.edge.config import EdgeConfig
    from emo7ion.edge.sinks import WindowSink

log = logging.getLogger(__name__)

RETENTION_DAYS = 30.0
"""The aggregator's default retention: older windows are refused as stale (a warning, not an error: the
aggregator's retention is its own setting, and a file report has no aggregator)."""


def origin(duration_s: float, recorded_at: float | None, now: float) -> float:
    """The epoch time of the recording's first frame (the rule above); ``now`` is when its analysis starts."""
    if recorded_at is None:
        return now - duration_s
    ends = recorded_at + duration_s
    if ends > now + 1.0:
        raise UserError(f"--recorded-at {iso(recorded_at)} puts the end of this {duration_s:.0f} s clip "
                        f"{ends - now:.0f} s in the future ({iso(ends)}); the aggregator refuses windows dated "
                        f"ahead of its clock. Give the time of the first frame, in UTC (…Z) or with its offset")
    if now - recorded_at > RETENTION_DAYS * 86400:
        log.warning("recorded at %s, more than %g days ago: an aggregator with the default retention refuses "
                    "windows this old as stale", iso(recorded_at), RETENTION_DAYS)
    return recorded_at


def iso(epoch: float) -> str:
    """An epoch time as the payloads write it, to the second."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def analyse(config: EdgeConfig, stop: threading.Event | None = None,
            sinks: Sequence[WindowSink] = ()) -> list[messages.Window]:
    """Run the agent over the recording ``config.source`` names, to its end, from Python (``emo7ion bench people``):
    the windows it produced, in order, each read back from its payload. It also publishes when ``config.broker.url``
    is set (load the config with ``{"broker": {"url": ""}}``, or with ``out``, for none) and writes ``config.out``
    when that is."""
    from emo7ion.edge.agent import Agent
    from emo7ion.edge.sinks import WindowList

    if config.source.kind != "video" or config.source.loops:
        raise UserError(f"{config.source.kind} source {config.source.path!r} is not a recording; analyse() reads a "
                        f"video file to its end (source.kind = 'video', loop unset)")
    collected = WindowList()
    agent = Agent(config, stop, sinks=[collected, *sinks])
    agent.run()
    return collected.windows
