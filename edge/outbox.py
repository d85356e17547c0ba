"""Store-and-forward: every window is written here before it is sent and deleted only when it is safe, so a
broker outage, a broker crash, a power cut or ``kill -9`` loses nothing that was accepted.

A window is *pending* (never acknowledged by the broker), then *sent* (the broker's PUBACK came; it waits for
an aggregator to say it stored it, and is sent again when its re-send time comes, backing off), then gone (an
aggregator acknowledged its seq). Whether a PUBACK alone may release a window is the delivery mode:
``puback`` (always, the old rule), ``ack`` (never) or ``auto`` (until this outbox has seen its first
aggregator ack, so an agent served by an aggregator that never acknowledges still drains). Sent windows are
bounded by ``max_unacked``: beyond it the oldest are released, logged and counted with the drops.

One SQLite file in WAL mode. Sequence numbers are allocated here, per camera, and survive restarts.
The outbox is bounded by count and age; what it drops is counted and reported in the next health
record. A full disk is survived (the window is counted as dropped and the agent keeps classifying).
Only a file SQLite calls corrupt is moved aside (with a clear log line instead of crash-looping the
agent), after every pending window it still can read was copied, in order, into the fresh outbox; one that
is merely locked, read-only or on a full disk keeps its pending windows: opening is retried with backoff and
then fails with an ``OutboxError`` that says what to check.

Seq stays monotonic across a lost outbox: a recreated one continues from the highest of the old file's
readable next seq, its last readable window + 1, and a floor from the clock, the Unix time in milliseconds.
An agent makes at most one window a second (``window_s`` >= 1), or a few hundred a second replaying a
recording, so no earlier outbox of this camera can have reached the floor of a later time, and the floor,
about 1.8e12 today, stays far below ``MAX_SEQ`` (2**53 - 1, 9e15) for thousands of years. A first-ever
outbox starts at 0 (a new camera has nothing to stay above); the aggregator counts the jump as a restart,
never as missing windows.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emo7ion.core.messages import MAX_SEQ
from emo7ion.core.service.errors import UserError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, created REAL NOT NULL, topic TEXT NOT NULL,
                                   payload BLOB NOT NULL, state INTEGER NOT NULL DEFAULT 0,
                                   tries INTEGER NOT NULL DEFAULT 0, resend_at REAL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 0), ('dropped', 0), ('acks_seen', 0);
"""

STATE_COLUMNS = (("state", "INTEGER NOT NULL DEFAULT 0"), ("tries", "INTEGER NOT NULL DEFAULT 0"),
                 ("resend_at", "REAL"))
"""Added to an outbox written before acknowledged delivery (its rows are all pending: state 0)."""

INDEXES = "CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (state, resend_at);"

PENDING, SENT = 0, 1
"""``state``: never PUBACKed; PUBACKed and waiting for an aggregator's ack. An acked window is deleted."""

DELIVERY_MODES = ("auto", "ack", "puback")
"""When a PUBACK releases a window: before the first aggregator ack (auto), never (ack), always (puback)."""

SEQ_FLOOR_PER_S = 1000
"""A recreated outbox's next seq is at least the Unix time times this (milliseconds): see the module's docstring."""

MAX_SALVAGE_SKIPS = 100_000
"""How many seqs past a damaged page the salvage seeks before giving up when the old file's end is unknown."""

BUSY_TIMEOUT_S = 5.0
"""How long one statement waits for another connection's lock before SQLite reports the file locked."""


class OutboxError(UserError):
    """The outbox file cannot be opened now (locked, read-only, no space), though it is not corrupt: the
    command says so in one line (a supervisor starts the agent again later)."""


@dataclass(frozen=True)
class Entry:
    seq: int
    created: float
    topic: str
    payload: bytes


class Outbox:
    """Thread-safe: the agent's loop adds, the publisher's thread reads and acknowledges."""

    def __init__(self, path: str | Path, max_windows: int = 50_000, max_age_s: float = 7 * 86400.0,
                 clock: Callable[[], float] = time.time, open_timeout_s: float = 60.0,
                 stop: threading.Event | None = None, delivery: str = "auto", max_unacked: int = 10_000,
                 resend_s: float = 30.0, resend_max_s: float = 600.0):
        if delivery not in DELIVERY_MODES:
            raise ValueError(f"delivery={delivery!r} must be one of {', '.join(DELIVERY_MODES)}")
        self.path = Path(path)
        self.max_windows = max_windows
        self.max_age_s = max_age_s
        self.delivery = delivery
        self.max_unacked = max_unacked
        self.resend_s, self.resend_max_s = resend_s, max(resend_s, resend_max_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._unsaved_drops = 0
        self._released_unlogged, self._release_logged_at = 0, float("-inf")
        self._db = self._open(open_timeout_s, stop or threading.Event())
        self._acks_seen = bool(self._db.execute("SELECT value FROM meta WHERE key='acks_seen'").fetchone()[0])

    # -- opening, and what to do with a damaged file

    def _open(self, timeout_s: float, stop: threading.Event) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline, delay = time.monotonic() + timeout_s, 0.25
        while True:
            try:  # SQLite's own busy wait is part of the budget, so a locked file gives up after ``timeout_s``
                return self._connect(busy_s=max(0.0, min(BUSY_TIMEOUT_S, deadline - time.monotonic())))
            except sqlite3.OperationalError as error:  # locked, read-only, full, unopenable: the data is intact
                if time.monotonic() + delay > deadline or stop.is_set():
                    raise OutboxError(
                        f"outbox {self.path} cannot be opened ({error}) after {timeout_s:g} s; its pending windows "
                        f"are kept. Check that no other process holds it (a second agent on the same file?), that "
                        f"this user may write it and its folder, and that the disk has space") from error
                log.warning("outbox %s cannot be opened (%s); retrying in %.1f s", self.path, error, delay)
                if stop.wait(delay):
                    continue  # stopping: the next pass raises
                delay = min(delay * 2, 10.0)
            except sqlite3.DatabaseError as error:  # SQLite says the file is damaged
                return self._move_aside(error)

    def _move_aside(self, error: sqlite3.DatabaseError) -> sqlite3.Connection:
        """Salvage what the damaged file still yields, move it (and its WAL) aside, and start a fresh outbox
        holding the salvaged windows, with seq above every one the old file could have handed out."""
        salvaged, old_next = salvage(self.path)
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(self._clock())}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.path) + suffix)
            if part.exists():
                os.replace(part, Path(str(aside) + suffix))
        db = self._connect()
        floor = int(self._clock() * SEQ_FLOOR_PER_S)
        next_seq = max([floor, old_next or 0, *(entry.seq + 1 for entry in salvaged)])
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO outbox (seq, created, topic, payload) VALUES (?, ?, ?, ?)",
                       [(e.seq, e.created, e.topic, e.payload) for e in salvaged])
        db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (next_seq,))
        db.execute("COMMIT")
        log.error("outbox %s is corrupt (%s): moved aside to %s; %d readable pending window(s) salvaged into a "
                  "fresh outbox, next seq %d", self.path, error, aside, len(salvaged), next_seq)
        return db

    def _connect(self, busy_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
        """Open and check the file, waiting at most ``busy_s`` on another connection's lock; once open, every
        statement waits up to ``BUSY_TIMEOUT_S``."""
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=busy_s)
        try:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("integrity check failed")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an acknowledged insert survives a power cut
            db.executescript(SCHEMA)
            _add_state_columns(db)
            db.executescript(INDEXES)
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    # -- writing

    def add(self, topic: str, make_payload: Callable[[int], bytes]) -> int | None:
        """Allocate the next sequence number, store ``make_payload(seq)`` under it; the seq, or None if the
        disk refused the write (counted as a drop)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seq = self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
                self._db.execute("INSERT INTO outbox (seq, created, topic, payload) VALUES (?, ?, ?, ?)",
                                 (seq, self._clock(), topic, make_payload(seq)))
                self._db.execute("UPDATE meta SET value=value+1 WHERE key='next_seq'")
                self._enforce_bounds()
                self._db.execute("COMMIT")
                return seq
            except sqlite3.OperationalError as error:
                self._rollback()
                self._unsaved_drops += 1
                log.error("outbox write failed (%s); window dropped, %d unsaved drop(s) so far",
                          error, self._unsaved_drops)
                return None

    def _enforce_bounds(self) -> None:
        """Inside a transaction: drop the oldest beyond the count bound and anything past the age bound."""
        dropped = self._db.execute("DELETE FROM outbox WHERE created < ?", (self._clock() - self.max_age_s,)).rowcount
        excess = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] - self.max_windows
        if excess > 0:
            dropped += self._db.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)", (excess,)).rowcount
        if dropped:
            self._db.execute("UPDATE meta SET value=value+? WHERE key='dropped'", (dropped,))
            log.warning("outbox full or stale: dropped the %d oldest window(s)", dropped)

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    # -- reading, sending and acknowledging

    def pending(self, after_seq: int = -1, limit: int = 100) -> list[Entry]:
        """The oldest windows the broker never acknowledged with seq > ``after_seq``, in order."""
        with self._lock:
            rows = self._db.execute("SELECT seq, created, topic, payload FROM outbox WHERE state=? AND seq > ? "
                                    "ORDER BY seq LIMIT ?", (PENDING, after_seq, limit)).fetchall()
        return [Entry(seq, created, topic, bytes(payload)) for seq, created, topic, payload in rows]

    def ack(self, seq: int) -> None:
        """Delete one window, whatever its state (the broker took it and the delivery mode lets it go)."""
        with self._lock:
            try:
                self._db.execute("DELETE FROM outbox WHERE seq=?", (seq,))
            except sqlite3.OperationalError as error:  # a full disk can refuse even a delete's journal
                log.warning("could not remove acknowledged window %d (%s); it may be sent again", seq, error)

    @property
    def waits_for_acks(self) -> bool:
        """Whether a PUBACK keeps the window until an aggregator acknowledges it (the delivery mode's rule)."""
        return self.delivery == "ack" or (self.delivery == "auto" and self._acks_seen)

    @property
    def acks_seen(self) -> bool:
        """An aggregator has acknowledged some window of this outbox (persisted: it survives restarts)."""
        return self._acks_seen

    def broker_took(self, seq: int, now: float | None = None) -> None:
        """The broker's PUBACK for ``seq``: released (deleted) or kept as sent, as the delivery mode says."""
        if self.waits_for_acks:
            self.mark_sent(seq, now)
        else:
            self.ack(seq)

    def mark_sent(self, seq: int, now: float | None = None) -> None:
        """``seq`` was PUBACKed: it waits for an aggregator's ack, re-sent ``resend_s`` from now unless one comes.
        A window already sent (a re-send's PUBACK) keeps the time ``take_due`` set. Beyond ``max_unacked``
        sent windows the oldest are released and counted."""
        now = self._clock() if now is None else now
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("UPDATE outbox SET state=?, tries=1, resend_at=? WHERE seq=? AND state=?",
                                 (SENT, now + self.resend_s, seq, PENDING))
                self._release_beyond_bound(now)
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as error:  # kept as pending: it is sent again, never lost
                self._rollback()
                log.warning("could not mark window %d sent (%s); it will be sent again", seq, error)

    def _release_beyond_bound(self, now: float) -> None:
        """Inside a transaction: delete the oldest sent windows beyond ``max_unacked``; counted as drops, logged
        at most once a minute with how many since the last line."""
        excess = self._db.execute("SELECT COUNT(*) FROM outbox WHERE state=?", (SENT,)).fetchone()[0] \
            - self.max_unacked
        if excess <= 0:
            return
        released = self._db.execute("DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE state=? "
                                    "ORDER BY seq LIMIT ?)", (SENT, excess)).rowcount
        self._db.execute("UPDATE meta SET value=value+? WHERE key='dropped'", (released,))
        self._released_unlogged += released
        if now - self._release_logged_at >= 60.0:
            log.warning("outbox holds %d windows the broker took but no aggregator acknowledged (max_unacked): "
                        "released the oldest %d (counted in outbox_dropped; the broker may still deliver them)",
                        self.max_unacked, self._released_unlogged)
            self._released_unlogged, self._release_logged_at = 0, now

    def take_due(self, now: float | None = None, limit: int = 100) -> list[Entry]:
        """Sent windows whose re-send time has come, the longest overdue first (then by seq: after
        ``resend_all``, in seq order), so a trickle of re-sends reaches every window in turn; each one's next
        re-send is pushed back (``resend_s`` doubling per try, at most ``resend_max_s``): a window is handed out
        once per backoff."""
        now = self._clock() if now is None else now
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                rows = self._db.execute("SELECT seq, created, topic, payload, tries FROM outbox WHERE state=? AND "
                                        "resend_at <= ? ORDER BY resend_at, seq LIMIT ?", (SENT, now, limit)).fetchall()
                self._db.executemany("UPDATE outbox SET tries=?, resend_at=? WHERE seq=?",
                                     [(tries + 1, now + self.backoff(tries + 1), seq)
                                      for seq, _, _, _, tries in rows])
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as error:
                self._rollback()
                log.warning("could not read the windows due for a re-send (%s); trying again later", error)
                return []
        return [Entry(seq, created, topic, bytes(payload)) for seq, created, topic, payload, _ in rows]

    def backoff(self, tries: int) -> float:
        """Seconds from a window's ``tries``-th send to its next: ``resend_s`` doubling, at most ``resend_max_s``."""
        return min(self.resend_s * 2.0 ** min(max(tries - 1, 0), 60), self.resend_max_s)

    def resend_all(self, now: float | None = None) -> int:
        """Every sent window is due now (a new broker connection: the broker may have lost what it took); their
        backoff is kept. How many."""
        now = self._clock() if now is None else now
        with self._lock:
            try:
                return self._db.execute("UPDATE outbox SET resend_at=? WHERE state=? AND resend_at > ?",
                                        (now, SENT, now)).rowcount
            except sqlite3.OperationalError as error:
                log.warning("could not make the sent windows due (%s); they are re-sent on their backoff", error)
                return 0

    def acknowledge(self, ranges) -> int:
        """An aggregator finished with the windows in ``ranges`` (inclusive (first, last) seq pairs): they are
        deleted, whatever their state. How many were here; from now on (auto mode) PUBACK no longer releases."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                removed = sum(self._db.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?",
                                               (low, high)).rowcount for low, high in ranges)
                if not self._acks_seen:
                    self._db.execute("UPDATE meta SET value=1 WHERE key='acks_seen'")
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as error:  # the windows stay; a later ack or re-send settles them
                self._rollback()
                log.warning("could not remove acknowledged windows (%s); they may be sent again", error)
                return 0
            if not self._acks_seen:
                self._acks_seen = True
                if self.delivery == "auto":
                    log.info("first aggregator acknowledgement: windows now stay in the outbox %s until an "
                             "aggregator acknowledges them (delivery auto)", self.path)
            return removed

    def depth(self) -> int:
        """Every window held: pending and sent-but-unacknowledged."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def unacked(self) -> int:
        """Windows the broker took that no aggregator has acknowledged yet."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox WHERE state=?", (SENT,)).fetchone()[0]

    def take_dropped(self) -> int:
        """Windows dropped since the last call (bounds and refused writes); resets the count."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                stored = self._db.execute("SELECT value FROM meta WHERE key='dropped'").fetchone()[0]
                self._db.execute("UPDATE meta SET value=0 WHERE key='dropped'")
                self._db.execute("COMMIT")
            except sqlite3.OperationalError:
                self._rollback()
                return 0
            total, self._unsaved_drops = stored + self._unsaved_drops, 0
            return total

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _add_state_columns(db: sqlite3.Connection) -> None:
    """Migrate an outbox written before acknowledged delivery: its rows become pending windows."""
    have = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    missing = [(name, kind) for name, kind in STATE_COLUMNS if name not in have]
    if not missing:
        return
    db.execute("BEGIN IMMEDIATE")
    for name, kind in missing:
        db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {kind}")
    db.execute("COMMIT")
    log.info("outbox migrated: added the delivery state (%s); its windows are pending",
             ", ".join(name for name, _ in missing))


def salvage(path: Path) -> tuple[list[Entry], int | None]:
    """The pending windows a damaged outbox still yields, in seq order, and its stored next seq if readable.

    Read only (the file is kept as it is for whoever looks at it later). The table is scanned in seq order; where
    a page is damaged the scan seeks again one seq further on, so the windows on readable pages after the damage
    are kept too. A row whose columns have the wrong types (a damaged record) is skipped."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error:
        return [], None
    try:
        old_next = _read_next_seq(db)
        try:
            highest = db.execute("SELECT max(seq) FROM outbox").fetchone()[0]
        except sqlite3.Error:
            highest = None
        end = max((v for v in (old_next, highest) if isinstance(v, int)), default=None)
        entries: list[Entry] = []
        after, skips = -1, 0
        while True:
            try:
                for seq, created, topic, payload in db.execute(
                        "SELECT seq, created, topic, payload FROM outbox WHERE seq > ? ORDER BY seq", (after,)):
                    if not isinstance(seq, int) or not after < seq <= MAX_SEQ:
                        continue
                    after = seq
                    if (isinstance(created, (int, float)) and isinstance(topic, str)
                            and isinstance(payload, bytes)):
                        entries.append(Entry(seq, float(created), topic, payload))
                break  # the scan reached the end
            except sqlite3.Error:  # a damaged page (or the whole table): seek past the seq that failed
                after, skips = after + 1, skips + 1
                if end is None and not entries:
                    break  # nothing readable and no end to seek towards
                if (after >= end) if end is not None else skips > MAX_SALVAGE_SKIPS:
                    break
        return entries, old_next
    except sqlite3.Error:  # not even the schema is readable
        return [], None
    finally:
        db.close()


def _read_next_seq(db: sqlite3.Connection) -> int | None:
    try:
        row = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
    except sqlite3.Error:
        return None
    value = row[0] if row else None
    return value if isinstance(value, int) and 0 <= value <= MAX_SEQ else None
