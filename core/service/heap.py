"""The garbage collector's settings for a long-running service that handles thousands of messages a second.

Ingest allocates a few dozen objects per window and frees nearly all of them by reference counting, so the cyclic
collector finds almost nothing; yet with CPython's default thresholds (700, 10, 10) it runs every ~20 windows, and
its full collections walk every object the process holds (FastAPI's and pydantic's start-up objects, a backlog of
parsed windows), more often and for longer as a backlog grows. Measured with ``emo7ion bench ingest --cameras 25000
--duration 20`` (docs/benchmarks.md, with core/service/bulk_client.py): 182-266 us of aggregator CPU a window with the
defaults (8 runs, median 218), 153-223 us with these settings (29 runs, median 184).
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 50, 100)
"""Collect the youngest generation every 50,000 allocations (~1,000 windows), the older ones far less often."""


def settle_for_throughput() -> None:
    """Once, when the service has started: what exists now (modules, schemas, the app) lives as long as the process,
    so it is moved out of the collector's sight (``gc.freeze``), and the thresholds are raised. A process-wide
    setting: for a command's own process, never for a library or a test run."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
