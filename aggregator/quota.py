"""How many windows one camera may store: no more window time than real time passes, and a cap per day (issue 20).

A camera records at most one window for any moment (overlaps are refused), so its honest windows never cover more
time than has passed. Each camera has a budget of window time: it grows by one second per second of this
aggregator's clock up to ``camera_backlog_s`` (what a camera may deliver at once after a silence: its outbox's
backlog after an outage) and each stored window spends its length. A camera with 10 s windows so stores one per
10 s on average, whatever it sends; a backlog of up to ``camera_backlog_s`` of windows is stored whole however fast
it arrives. Beyond that, windows are refused ("rate").

``max_camera_windows_per_day`` caps what one camera stores per UTC day of this clock ("day_cap"): with windows no
shorter than ``min_window_s`` the budget alone still allows one window per half second, and the cap bounds the
database's growth per camera whatever the windows' lengths.

Both live in memory, per aggregator process: a restart gives every camera a full budget and a new day's count, and
aggregators splitting one stream (a shared subscription) each keep their own (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from emo7ion.core import messages

DAY_S = 86400.0


@dataclass
class _Camera:
    budget_s: float
    at: float        # when ``budget_s`` was last brought up to date (this clock)
    day: int         # the UTC day ``today`` counts
    today: int       # windows stored on ``day``


class WindowQuota:
    """Per camera (venue, camera): a budget of window time and a count of today's windows."""

    def __init__(self, backlog_s: float, per_day: int):
        self.backlog_s, self.per_day = backlog_s, per_day
        self._cameras: dict[tuple[str, str], _Camera] = {}
        self._days: dict[int, dict[tuple[str, str], int]] = {}
        """Day -> {camera: windows stored that day}, the cameras whose state counts that day: ``today`` is asked
        after every batch, and walking every camera's state for it cost ingest 5% over 25,000 cameras."""

    def _state(self, key: tuple[str, str], now: float) -> _Camera:
        state = self._cameras.get(key)
        if state is None:
            state = self._cameras[key] = _Camera(self.backlog_s, now, int(now // DAY_S), 0)
        return state

    def _count(self, key: tuple[str, str], state: _Camera, day: int, today: int) -> None:
        """Set a camera's day and count, keeping ``_days`` in step (only counts above 0, as ``today`` lists)."""
        old = self._days.get(state.day)
        if old is not None and old.pop(key, None) is not None and not old:
            del self._days[state.day]
        state.day, state.today = day, today
        if today:
            self._days.setdefault(day, {})[key] = today

    def batch(self, now: float) -> QuotaBatch:
        """A batch's admissions, applied only by :meth:`QuotaBatch.commit` (after the batch's transaction)."""
        return QuotaBatch(self, now)

    def today(self, now: float) -> dict[tuple[str, str], int]:
        """Windows stored today per camera (cameras with any)."""
        return dict(self._days.get(int(now // DAY_S), {}))


class QuotaBatch:
    """Admits windows against the quota plus what this batch admitted so far; nothing changes until ``commit``."""

    def __init__(self, quota: WindowQuota, now: float):
        self.quota, self.now = quota, now
        self._spent: dict[tuple[str, str], tuple[float, int]] = {}  # seconds, windows admitted in this batch

    def _current(self, key: tuple[str, str]) -> tuple[float, int]:
        """The camera's budget and today's count as of ``now``, before this batch."""
        state = self.quota._cameras.get(key)
        if state is None:
            return self.quota.backlog_s, 0
        budget = min(self.quota.backlog_s, state.budget_s + max(0.0, self.now - state.at))
        return budget, state.today if state.day == int(self.now // DAY_S) else 0

    def admit(self, window: messages.Window) -> str | None:
        """None (admitted, its length spent) or the reason it is refused: "day_cap" or "rate"."""
        key = (window.venue, window.camera)
        budget, today = self._current(key)
        spent, admitted = self._spent.get(key, (0.0, 0))
        length = (window.end - window.start).total_seconds()
        if today + admitted >= self.quota.per_day:
            return "day_cap"
        if length > budget - spent + 1e-6:
            return "rate"
        self._spent[key] = (spent + length, admitted + 1)
        return None

    def refund(self, window: messages.Window) -> None:
        """An admitted window that was not stored after all (a redelivery)."""
        key = (window.venue, window.camera)
        spent, admitted = self._spent[key]
        self._spent[key] = (spent - (window.end - window.start).total_seconds(), admitted - 1)

    def commit(self) -> None:
        for key, (spent, admitted) in self._spent.items():
            budget, today = self._current(key)
            state = self.quota._state(key, self.now)
            state.budget_s, state.at = budget - spent, max(state.at, self.now)
            self.quota._count(key, state, int(self.now // DAY_S), today + admitted)
