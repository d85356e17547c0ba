"""Where windows and camera states live: SQLite by default (WAL, batched transactions, retention),
PostgreSQL (psycopg 3) for a central server shared by several aggregators.

A window is identified by (venue, camera, seq, start): a QoS 1 redelivery is stored once, while a
device whose outbox was reset (seq from 0 again) is still recorded. The same SQL serves both engines.

A v2 window's people figures (issue 17) go to a side table, ``window_people``, keyed like ``windows``; it is
created when the first v2 window is stored, so a database that only ever received v1 windows keeps exactly the
tables and columns it always had (tests/test_v1_replay.py compares every table).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from emo7ion.aggregator.quota import QuotaBatch, WindowQuota
from emo7ion.aggregator.zones import UNDECLARED, Zones
from emo7ion.core import emotions, messages

log = logging.getLogger(__name__)

LABEL_COLUMNS = ", ".join(emotions.LABELS)

SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS windows (
        venue TEXT NOT NULL, camera TEXT NOT NULL, seq BIGINT NOT NULL, start_ts DOUBLE PRECISION NOT NULL,
        end_ts DOUBLE PRECISION NOT NULL, zone TEXT, frames INTEGER NOT NULL, faces INTEGER NOT NULL,
        withheld INTEGER NOT NULL, {", ".join(f"{label} INTEGER" for label in emotions.LABELS)},
        mean_confidence DOUBLE PRECISION, model_sha256 TEXT NOT NULL, model_version TEXT,
        received_ts DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (venue, camera, seq, start_ts))""",
    "CREATE INDEX IF NOT EXISTS windows_by_venue_time ON windows (venue, end_ts)",
    "CREATE INDEX IF NOT EXISTS windows_by_camera_time ON windows (venue, camera, end_ts)",
    """CREATE TABLE IF NOT EXISTS cameras (
        venue TEXT NOT NULL, camera TEXT NOT NULL, zone TEXT, state TEXT NOT NULL, last_seen DOUBLE PRECISION,
        state_ts DOUBLE PRECISION, agent TEXT, model TEXT, health TEXT, PRIMARY KEY (venue, camera))""",
]

CAMERA_COLUMNS = {"max_seq": "BIGINT", "last_end": "DOUBLE PRECISION", "missing": "BIGINT NOT NULL DEFAULT 0"}
"""Sequence accounting per camera (added to databases made before it): the highest seq seen, the end of
the latest window, and how many seqs were skipped and never arrived (what the broker dropped)."""

OVERLAPPING = ("SELECT 1 FROM windows WHERE venue = ? AND camera = ? AND end_ts > ? AND end_ts < ? "
               "AND start_ts < ? AND NOT (seq = ? AND start_ts = ?) LIMIT 1")
"""Another window of the camera that shares any time with [start, end) (more than ``OVERLAP_TOLERANCE_S``);
``end_ts < end + MAX_WINDOW_SECONDS`` bounds the index range (no window is longer)."""
QUESTION_ROWS = 500
"""Windows (or cameras) asked about in one statement: 7 parameters each stays under SQLite's and PostgreSQL's
limits on parameters per statement whatever ``batch_size`` is."""
OVERLAP_TOLERANCE_S = 0.0005
"""Times travel as milliseconds: windows that touch share at most a float's rounding error, and windows that share
one millisecond or more overlap (issue 20: stacked 10 ms windows once passed under a 10 ms tolerance)."""

MIN_SEQ_WINDOW_S = 0.001
"""Floor on a window's length where the seq accounting divides by it (stored windows are at least min_window_s)."""

SCHEMA_LOCK = 0x656D6F37  # PostgreSQL advisory lock key ("emo7") held while creating the schema

PEOPLE_TABLE = "window_people"
VOTE_COLUMNS = tuple(f"votes_{label}" for label in emotions.LABELS)
PEOPLE_SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {PEOPLE_TABLE} (
        venue TEXT NOT NULL, camera TEXT NOT NULL, seq BIGINT NOT NULL, start_ts DOUBLE PRECISION NOT NULL,
        end_ts DOUBLE PRECISION NOT NULL, zone TEXT, people INTEGER NOT NULL, entered INTEGER NOT NULL,
        in_view DOUBLE PRECISION NOT NULL, dwell_s DOUBLE PRECISION, ended INTEGER NOT NULL,
        {", ".join(f"{column} INTEGER" for column in VOTE_COLUMNS)},
        PRIMARY KEY (venue, camera, seq, start_ts))""",
    f"CREATE INDEX IF NOT EXISTS {PEOPLE_TABLE}_by_venue_time ON {PEOPLE_TABLE} (venue, end_ts)",
]
"""The people figures of v2 windows, one row per stored v2 window (same key as its ``windows`` row; the end and
zone repeated so that reads need no join). Created with the first v2 window, never for a v1-only stream."""

_PEOPLE_COLUMNS = ("venue", "camera", "seq", "start_ts", "end_ts", "zone", "people", "entered", "in_view", "dwell_s",
                   "ended", *VOTE_COLUMNS)
INSERT_PEOPLE = (f"INSERT INTO {PEOPLE_TABLE} ({', '.join(_PEOPLE_COLUMNS)}) VALUES {{values}} ON CONFLICT DO NOTHING",
                 "(" + ", ".join(["?"] * len(_PEOPLE_COLUMNS)) + ")")

_WINDOW_COLUMNS = ("venue", "camera", "seq", "start_ts", "end_ts", "zone", "frames", "faces", "withheld",
                   *emotions.LABELS, "mean_confidence", "model_sha256", "model_version", "received_ts")
INSERT_WINDOWS = (f"INSERT INTO windows ({', '.join(_WINDOW_COLUMNS)}) VALUES {{values}} ON CONFLICT DO NOTHING",
                  "(" + ", ".join(["?"] * len(_WINDOW_COLUMNS)) + ")")
"""A statement for many rows (``{values}``: one row's placeholders, repeated) and one row's placeholders: a batch's
rows go in one statement, not one each (:meth:`Store._insert`)."""

ZONE_UPDATE = "zone = CASE WHEN ? = 1 THEN excluded.zone ELSE COALESCE(cameras.zone, excluded.zone) END"
"""A camera row's zone: the declared one (parameter 1), else the first it reported (aggregator/zones.py)."""

UPSERT_CAMERAS = (
    "INSERT INTO cameras (venue, camera, zone, state, last_seen, max_seq, last_end, missing) VALUES {values} "
    "ON CONFLICT (venue, camera) DO UPDATE SET zone = excluded.zone, last_seen = CASE WHEN excluded.last_seen IS NOT "
    "NULL AND (cameras.last_seen IS NULL OR excluded.last_seen > cameras.last_seen) THEN excluded.last_seen ELSE "
    "cameras.last_seen END, max_seq = excluded.max_seq, last_end = excluded.last_end, missing = excluded.missing",
    "(?, ?, ?, 'online', ?, ?, ?, ?)")
"""What a batch leaves in the rows of the cameras it touched (read under its lock): zone as judged, last seen
(None: unchanged), sequence accounting. A new camera's row is made first by :data:`UPSERT_SEEN`."""

UPSERT_SEEN = ("INSERT INTO cameras (venue, camera, zone, state, last_seen) VALUES (?, ?, ?, 'online', ?) "
               "ON CONFLICT (venue, camera) DO UPDATE SET last_seen = "
               "CASE WHEN cameras.last_seen IS NULL OR excluded.last_seen > cameras.last_seen "
               f"THEN excluded.last_seen ELSE cameras.last_seen END, {ZONE_UPDATE}")


def in_zone(totals: list[tuple[str | None, CameraTotals]], zone: str | None) -> list[CameraTotals]:
    """A venue's per-camera totals (``zone`` None: every zone's summed per camera) or a zone's, by camera, from
    :meth:`Store.camera_totals_by_venue`'s rows of one venue."""
    if zone:
        return [row for row_zone, row in totals if row_zone == zone]
    merged: dict[str, CameraTotals] = {}
    for _, row in totals:  # by camera: a camera's zones follow each other
        before = merged.get(row.camera)
        merged[row.camera] = row if before is None else CameraTotals(
            camera=row.camera, counts={label: before.counts[label] + row.counts[label] for label in emotions.LABELS},
            windows=before.windows + row.windows, withheld=before.withheld + row.withheld)
    return list(merged.values())


def people_in_zone(windows: list[tuple[str | None, PeopleWindow]], zone: str | None) -> list[PeopleWindow]:
    """A venue's v2 windows (``zone`` None: all) or a zone's, from :meth:`Store.people_windows_by_venue`'s rows."""
    return [window for window_zone, window in windows if not zone or window_zone == zone]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _overlaps(stored, seq: int, start: float, end: float) -> bool:
    """Whether a window [start, end) of ``seq`` shares time with one of ``stored`` (seq, start, end) of its camera,
    the condition of :data:`OVERLAPPING`."""
    return any(start + OVERLAP_TOLERANCE_S < other_end < end + messages.MAX_WINDOW_SECONDS
               and other_start < end - OVERLAP_TOLERANCE_S and not (other_seq == seq and other_start == start)
               for other_seq, other_start, other_end in stored)


class WriteResult(NamedTuple):
    stored: int
    duplicates: int
    overlapping: list
    refused: list = []
    """(window, reason) refused by the write's judgement besides overlaps: "zone", "rate", "day_cap"."""
    resets: dict = {}
    """(venue, camera) -> sequence restarts seen in this batch (:class:`SeqState`)."""


@dataclass
class SeqState:
    """One camera's sequence accounting while a batch is written."""

    max_seq: int | None
    last_end: float | None
    missing: int
    resets: int = 0

    def account(self, seq: int, start: float, end: float, dated: bool = True) -> None:
        """Count the seqs skipped before ``seq``, or one fewer missing when a late one fills a gap.

        Skipped seqs count as missing only as far as the camera could have made them: windows of this one's
        length back to back since the end of its latest, ``(start - last_end) / length + 1``. A seq that goes back
        while time goes on (an outbox reset) or jumps further than that starts a new run: counted in ``resets``,
        never as missing, so one camera cannot inflate the missing figure everyone alerts on (issue 20: seq S
        dated 29 days ago, then S + 2,000,000 now). ``dated`` False: the window's times are not to be believed
        (refused)."""
        if self.max_seq is None or self.last_end is None:
            self.max_seq, self.last_end = seq, end if dated else None
            return
        later = start >= self.last_end - 1e-3
        if seq > self.max_seq:
            gap = seq - self.max_seq - 1
            if dated and later:
                if gap <= (start - self.last_end) / max(end - start, MIN_SEQ_WINDOW_S) + 1:
                    self.missing += gap
                else:
                    self.resets += 1
            self.max_seq = seq
        elif seq < self.max_seq:
            if later and dated:
                self.max_seq = seq  # an outbox reset: seq from 0 again
                self.resets += 1
            elif self.missing:
                self.missing -= 1
        if dated:
            self.last_end = max(self.last_end, end)


@dataclass(frozen=True)
class VenueRow:
    venue: str
    cameras: int
    last_seen: float | None
    zones: list[str]
    last_window_end: float | None


@dataclass(frozen=True)
class CameraRow:
    """A camera as stored: its last status (``state`` None before any), when it was last heard from (epoch s)."""

    venue: str
    camera: str
    zone: str | None
    state: str | None
    last_seen: float | None
    agent: str | None
    model: dict | None
    health: dict | None
    missing: int


@dataclass(frozen=True)
class CameraTotals:
    """One camera's windows that ended in a period: face-frame counts summed, windows, withheld windows."""

    camera: str
    counts: dict[str, int]
    windows: int
    withheld: int


@dataclass(frozen=True)
class PeopleWindow:
    """The people figures of one stored v2 window (``votes`` None when it was withheld)."""

    camera: str
    start: float
    end: float
    people: int
    entered: int
    in_view: float
    dwell_s: float | None
    ended: int
    votes: dict[str, int] | None


@dataclass(frozen=True)
class CameraBucket:
    """One camera's face-frame counts (and people's votes, None without v2 windows with votes) in one time step."""

    t: float
    camera: str
    counts: dict[str, int]
    votes: dict[str, int] | None
    people: bool


class Store:
    """Thread-safe facade; two connections, each under its own lock: one writes (the ingest's batches, statuses,
    retention), one reads (the API, the mood publisher), so that neither waits for the other. An in-memory SQLite
    database has one connection for both (a second would open another, empty, database)."""

    def __init__(self, url: str):
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self._lock = threading.RLock()
        self._db = self._connect()
        self._shared_reader = not self.postgres and (url in ("", ":memory:") or "mode=memory" in url)
        self._read_lock = self._lock if self._shared_reader else threading.RLock()
        self._reader = self._db if self._shared_reader else None  # connected on the first read
        self._camera_cache: dict[tuple[str, str], tuple] = {}  # SQLite: see _remember
        self._data_version = None
        with self._lock:
            if self.postgres:  # concurrent CREATE ... IF NOT EXISTS can collide: one replica at a time
                self._execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
            else:  # likewise two processes' "no such column yet, add it" on one file
                self._begin()
            for statement in SCHEMA:
                self._execute(statement)
            self._add_camera_columns()
            self._commit()
        self._people_table = self._has_people_table()

    def _add_camera_columns(self) -> None:
        if self.postgres:
            for name, kind in CAMERA_COLUMNS.items():
                self._execute(f"ALTER TABLE cameras ADD COLUMN IF NOT EXISTS {name} {kind}")
            return
        present = {row[1] for row in self._execute("PRAGMA table_info(cameras)").fetchall()}
        for name, kind in CAMERA_COLUMNS.items():
            if name not in present:
                self._execute(f"ALTER TABLE cameras ADD COLUMN {name} {kind}")

    def _has_people_table(self) -> bool:
        """Whether ``window_people`` exists (another replica may have created it since we looked)."""
        if self.postgres:
            query = f"SELECT to_regclass('{PEOPLE_TABLE}') IS NOT NULL"
        else:
            query = f"SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '{PEOPLE_TABLE}'"
        with self._read_lock:
            return bool(self._query(query)[0][0])

    def _people_known(self) -> bool:
        """For reads: the side table exists (checked again until it does; it never goes away)."""
        if not self._people_table:
            self._people_table = self._has_people_table()
        return self._people_table

    def _create_people_table(self) -> None:
        """Inside a write's transaction, before its first v2 row: on PostgreSQL under the schema lock (concurrent
        CREATE ... IF NOT EXISTS can collide), released when the batch commits."""
        if self.postgres:
            self._execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
        for statement in PEOPLE_SCHEMA:
            self._execute(statement)

    # -- engine differences, kept here

    def _connect(self, reading: bool = False):
        """The writer's connection, or (``reading``) the reads' own: reads then never wait for a batch's write to
        finish, nor a batch for a mood's reads (they took turns on one connection under one lock, and the mood
        publisher's queries held back ingest: issue 18 part 4). SQLite's WAL lets readers run beside the writer;
        a PostgreSQL reader is in autocommit, so it never sits idle in a transaction."""
        if self.postgres:
            try:
                import psycopg
            except ImportError as error:
                raise RuntimeError("PostgreSQL needs psycopg 3: pip install 'psycopg[binary]'") from error
            return psycopg.connect(self.url, autocommit=reading)
        db = sqlite3.connect(self.url, check_same_thread=False, timeout=30.0)
        db.create_function("floor", 1, math.floor, deterministic=True)  # not every SQLite build has it
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
        return db

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.postgres else statement

    def _execute(self, statement: str, params: Sequence = ()):
        return self._db.execute(self._sql(statement), params)

    def _executemany(self, statement: str, rows: list) -> int:
        """One statement for many rows (PostgreSQL: pipelined); the rows it changed, in all."""
        if not rows:
            return 0
        if self.postgres:
            with self._db.cursor() as cursor:
                cursor.executemany(self._sql(statement), rows)
                return max(cursor.rowcount, 0)
        return max(self._db.executemany(statement, rows).rowcount, 0)

    def _commit(self) -> None:
        self._db.commit()

    @contextlib.contextmanager
    def _writing(self):
        """One write transaction under the writer's lock: committed, or rolled back on any error, which also
        replaces a PostgreSQL connection the server closed (a restart), so the next try can succeed."""
        with self._lock:
            try:
                yield
                self._commit()
            except Exception:
                self._rollback()
                raise

    def _rollback(self) -> None:
        if self.postgres and self._db.closed:  # server restarted or failed over: the next try gets a new one
            log.warning("PostgreSQL connection lost; reconnecting")
            self._db = self._connect()
            return
        self._db.rollback()

    def _query(self, statement: str, params: Sequence = ()) -> list:
        """A read's rows, on the reads' connection (under ``_read_lock``). In autocommit on PostgreSQL, so a
        read holds no locks after it; a connection the server closed (restart, fail-over) is opened again on the
        next read."""
        if self._shared_reader:
            try:
                return self._execute(statement, params).fetchall()
            except Exception:
                self._rollback()
                raise
        for attempt in (1, 2):
            if self._reader is None or (self.postgres and self._reader.closed):
                if self._reader is not None:
                    log.warning("PostgreSQL read connection lost; reconnecting")
                self._reader = self._connect(reading=True)
            try:
                return self._reader.execute(self._sql(statement), params).fetchall()
            except Exception:
                # A server restart is seen only by the next statement on the old connection: try once more on a
                # new one, instead of answering that read (an API request, /metrics) with an error.
                if attempt == 2 or not (self.postgres and self._reader.closed):
                    raise
        raise AssertionError("unreachable")

    # -- writing

    def add_windows(self, windows: Sequence[messages.Window], received: float | None = None, *,
                    refuse_overlaps: bool = True, refused: Sequence[messages.Window] = (),
                    zones: Zones | None = None, quota: WindowQuota | None = None) -> WriteResult:
        """Store a batch in one transaction: new windows are stored, redeliveries (same seq and start) skipped
        as duplicates and, with ``refuse_overlaps``, a window sharing time with another of its camera's is
        refused (returned in ``overlapping``), so a camera counts once for any moment. A window naming a zone that
        is not its camera's (``zones``: declared, else the first it reported) and, with a ``quota``, a window
        beyond its camera's budget of window time or day's cap are refused too (``refused``, with the reason).
        ``refused`` (the argument): windows judged unbelievable elsewhere, whose seqs are accounted for (not
        missing) but not stored. The quota is spent only once the batch has committed.

        The windows are judged in order, each against what is stored and what this batch stored before it, as if
        stored one by one; the database is asked a fixed number of questions per batch (the cameras' rows, the
        stored windows each window could collide with), not several per window (issue 18 part 4)."""
        if not windows and not refused:
            return WriteResult(0, 0, [])
        received = time.time() if received is None else received
        zones = zones if zones is not None else Zones()
        timed = [(w, w.start.timestamp(), w.end.timestamp()) for w in windows]
        with self._lock:
            for _attempt in range(3):
                admissions = quota.batch(received) if quota is not None else None
                try:
                    result = self._write_batch(timed, received, refuse_overlaps, refused, zones, admissions)
                except Exception:
                    self._rollback()
                    raise
                if result is not None:
                    break
            else:
                raise RuntimeError("windows were stored concurrently by another writer three times in a row")
        if admissions is not None:
            admissions.commit()
        return result

    def _write_batch(self, timed: list[tuple[messages.Window, float, float]], received: float,
                     refuse_overlaps: bool, refused: Sequence[messages.Window], zones: Zones,
                     admissions: QuotaBatch | None) -> WriteResult | None:
        """One try of :meth:`add_windows` under the lock, committed; None (rolled back) when another writer stored
        one of the windows between the question and the insert (PostgreSQL: a new camera's first windows, whose
        row there was nothing to lock yet), so the caller asks again."""
        stored, duplicates, overlapping, judged, accounted = 0, 0, [], [], []
        seen: dict[tuple[str, str], tuple[str | None, float, bool]] = {}
        self._begin()
        cameras = sorted({(w.venue, w.camera) for w, _, _ in timed} | {(w.venue, w.camera) for w in refused})
        rows = self._camera_rows(cameras)
        camera_zones = {key: row[0] for key, row in rows.items()}
        stored_before = self._colliding(timed) if timed else {}
        batch_stored: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
        new_rows, people_rows = [], []
        for w, start, end in timed:
            key = (w.venue, w.camera)
            zone = zones.judge(w.venue, w.camera, w.zone, camera_zones.get(key))
            if zone.refuse:
                judged.append((w, "zone"))
                accounted.append((w, start, end, True))
                continue
            before = stored_before.get(key, ())
            mine = batch_stored.get(key, ())
            if refuse_overlaps and (_overlaps(before, w.seq, start, end) or _overlaps(mine, w.seq, start, end)):
                overlapping.append(w)
                accounted.append((w, start, end, True))
                continue
            reason = admissions.admit(w) if admissions is not None else None
            if reason is not None:
                judged.append((w, reason))
                accounted.append((w, start, end, True))
                continue
            if any(seq == w.seq and first == start for seq, first, _ in before) \
                    or any(seq == w.seq and first == start for seq, first, _ in mine):
                duplicates += 1
                if admissions is not None:
                    admissions.refund(w)
                continue
            new_rows.append((w.venue, w.camera, w.seq, start, end, zone.zone, w.frames, w.faces, int(w.withheld),
                             *[None if w.counts is None else w.counts[label] for label in emotions.LABELS],
                             w.mean_confidence, w.model.get("sha256", ""), w.model.get("version"), received))
            if w.has_people:
                people_rows.append((w.venue, w.camera, w.seq, start, end, zone.zone, w.people, w.entered,
                                    w.in_view, w.dwell_s, w.ended,
                                    *[None if w.votes is None else w.votes[label] for label in emotions.LABELS]))
            batch_stored.setdefault(key, []).append((w.seq, start, end))
            stored += 1
            accounted.append((w, start, end, True))
            if zone.force or camera_zones.get(key) is None:
                camera_zones[key] = zone.zone  # declared, or the first zone it reported
            seen[key] = (camera_zones[key], max(seen.get(key, (None, 0.0))[1], end), zone.force)
        if new_rows and self._insert(INSERT_WINDOWS, new_rows) != len(new_rows):
            self._rollback()  # another writer stored one of them since we asked: ask again
            return None
        if people_rows:
            if not self._people_table:
                self._create_people_table()
            self._insert(INSERT_PEOPLE, people_rows)
        made = sorted(key for key in seen if key not in rows)  # cameras without a row yet
        if made:  # their rows are made the way a status makes one (another writer may make it meanwhile) and read
            self._executemany(UPSERT_SEEN, [(*key, seen[key][0], seen[key][1], int(seen[key][2])) for key in made])
            rows.update(self._camera_rows(made, cached=False))
            seen.update({key: (rows[key][0], *seen[key][1:]) for key in made if key in rows})
        states, resets = self._account(rows, accounted + [(w, w.start.timestamp(), w.end.timestamp(), False)
                                                          for w in refused])
        written = {key: (seen[key][0] if key in seen else rows[key][0], *state) for key, state in states.items()}
        self._insert(UPSERT_CAMERAS, [(*key, zone, seen[key][1] if key in seen else None, max_seq, last_end, missing)
                                      for key, (zone, max_seq, last_end, missing) in sorted(written.items())])
        self._commit()
        self._remember(written)
        if people_rows:
            self._people_table = True
        return WriteResult(stored, duplicates, overlapping, judged, resets)

    def _begin(self) -> None:
        """SQLite: take the write lock before the batch's first question, so that what it reads stays true until it
        commits (another aggregator on the same file waits, as it would for the commit); then forget the camera
        rows remembered if another connection has committed since. PostgreSQL: the camera rows are locked by
        :meth:`_camera_rows` instead."""
        if not self.postgres and not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._camera_cache.clear()
                self._data_version = version

    def _remember(self, written: dict[tuple[str, str], tuple]) -> None:
        """SQLite: the camera rows a committed batch left, for the next batch to read here instead of in the file.
        Each row read in the file costs the writer a turn of the GIL (the sqlite3 module lets it go for every
        step), and while the network thread holds it, each turn waits for it (up to 5 ms: issue 18 part 4)."""
        if not self.postgres:
            self._camera_cache.update(written)

    def _insert(self, statement: tuple[str, str], rows: list[tuple]) -> int:
        """``rows`` through one of the ``VALUES {values}`` statements (:data:`INSERT_WINDOWS`), as few statements
        as the engines' limits on parameters allow (one per 500 rows); the rows it changed, in all."""
        text, one = statement
        changed = 0
        for part in _chunks(rows, QUESTION_ROWS):
            changed += max(self._execute(text.format(values=", ".join([one] * len(part))),
                                         [value for row in part for value in row]).rowcount, 0)
        return changed

    def _camera_rows(self, cameras: list[tuple[str, str]], cached: bool = True) -> dict[tuple[str, str], tuple]:
        """(zone, max_seq, last_end, missing) of those of ``cameras`` (sorted) that have a row (SQLite: those this
        writer remembers, unless ``cached`` is False, are not read again); on PostgreSQL the rows are locked until
        the batch commits, in one order for every writer (no deadlock between replicas)."""
        lock = " FOR UPDATE OF c" if self.postgres else ""
        rows: dict[tuple[str, str], tuple] = {}
        if cached and self._camera_cache:
            rows = {key: self._camera_cache[key] for key in cameras if key in self._camera_cache}
            cameras = [key for key in cameras if key not in rows]
        for part in _chunks(cameras, QUESTION_ROWS):
            values = ", ".join(["(?, ?)"] * len(part))
            for venue, camera, *row in self._execute(
                    f"WITH b (venue, camera) AS (VALUES {values}) SELECT c.venue, c.camera, c.zone, c.max_seq, "
                    f"c.last_end, c.missing FROM b CROSS JOIN cameras c WHERE c.venue = b.venue AND "
                    f"c.camera = b.camera ORDER BY c.venue, c.camera{lock}",
                    [value for key in part for value in key]).fetchall():
                rows[venue, camera] = tuple(row)
        return rows

    def _colliding(self, timed: list[tuple[messages.Window, float, float]]
                   ) -> dict[tuple[str, str], list[tuple[int, float, float]]]:
        """Per camera, the stored windows (seq, start, end) that share time with a window of the batch or have its
        seq and start (the store's key): what :data:`OVERLAPPING` asks window by window, in a few statements."""
        found: dict[tuple[str, str], set[tuple[int, float, float]]] = {}
        for part in _chunks(timed, QUESTION_ROWS):
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(part))
            params = [value for w, start, end in part
                      for value in (w.venue, w.camera, w.seq, start, start + OVERLAP_TOLERANCE_S,
                                    end + messages.MAX_WINDOW_SECONDS, end - OVERLAP_TOLERANCE_S)]
            for venue, camera, seq, start, end in self._execute(
                    f"WITH b (venue, camera, seq, start_ts, low, high, top) AS (VALUES {values}) "
                    "SELECT w.venue, w.camera, w.seq, w.start_ts, w.end_ts FROM b CROSS JOIN windows w "
                    "WHERE w.venue = b.venue AND w.camera = b.camera AND w.end_ts > b.low AND w.end_ts < b.high "
                    "AND (w.start_ts < b.top OR (w.seq = b.seq AND w.start_ts = b.start_ts))", params).fetchall():
                found.setdefault((venue, camera), set()).add((int(seq), float(start), float(end)))
        return {key: list(windows) for key, windows in found.items()}

    @staticmethod
    def _account(rows: dict[tuple[str, str], tuple], windows: list[tuple[messages.Window, float, float, bool]]
                 ) -> tuple[dict[tuple[str, str], tuple], dict[tuple[str, str], int]]:
        """Advance each camera's sequence accounting (cameras with a row, ``rows`` as read under the batch's lock):
        per camera, (max_seq, last_end, missing) after the batch, and the sequence restarts seen (only cameras with
        any)."""
        by_camera: dict[tuple[str, str], list[tuple[messages.Window, float, float, bool]]] = {}
        for item in windows:
            by_camera.setdefault((item[0].venue, item[0].camera), []).append(item)
        resets: dict[tuple[str, str], int] = {}
        states: dict[tuple[str, str], tuple] = {}
        for key, items in by_camera.items():
            row = rows.get(key)
            if row is None:
                continue
            state = SeqState(row[1], row[2], int(row[3] or 0))
            for window, start, end, dated in items:
                state.account(window.seq, start, end, dated)
            states[key] = (state.max_seq, state.last_end, state.missing)
            if state.resets:
                resets[key] = state.resets
        return states, resets

    def set_status(self, status: messages.Status, zones: Zones | None = None) -> None:
        """A camera's status. Its zone is the camera's declared one (``zones``), else it becomes the camera's zone
        only while the row has none: a status cannot move a camera to another zone either."""
        declared = (zones or Zones()).declared(status.venue, status.camera)
        force = declared is not UNDECLARED
        zone = declared if force else status.zone
        with self._writing():
            self._camera_cache.pop((status.venue, status.camera), None)  # its zone may change
            self._execute(
                "INSERT INTO cameras (venue, camera, zone, state, last_seen, state_ts, agent, model) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (venue, camera) DO UPDATE SET "
                "state = excluded.state, state_ts = excluded.state_ts, "
                "agent = COALESCE(excluded.agent, cameras.agent), "
                f"model = COALESCE(excluded.model, cameras.model), {ZONE_UPDATE}, "
                "last_seen = CASE WHEN cameras.last_seen IS NULL OR excluded.last_seen > cameras.last_seen "
                "THEN excluded.last_seen ELSE cameras.last_seen END "
                "WHERE cameras.state_ts IS NULL OR excluded.state_ts >= cameras.state_ts",
                (status.venue, status.camera, zone, status.state, status.ts.timestamp(), status.ts.timestamp(),
                 status.agent, json.dumps(status.model) if status.model else None, int(force)))

    def set_health(self, health: messages.Health) -> None:
        body = {k: getattr(health, k) for k in ("fps", "inference_ms", "skipped_frames", "outbox_depth",
                                                 "outbox_dropped", "uptime_s", "source_ok")}
        with self._writing():
            self._execute(
                "INSERT INTO cameras (venue, camera, state, last_seen, health) VALUES (?, ?, 'online', ?, ?) "
                "ON CONFLICT (venue, camera) DO UPDATE SET health = excluded.health, last_seen = "
                "CASE WHEN cameras.last_seen IS NULL OR excluded.last_seen > cameras.last_seen "
                "THEN excluded.last_seen ELSE cameras.last_seen END",
                (health.venue, health.camera, health.ts.timestamp(), json.dumps(body)))

    def prune(self, older_than: float) -> int:
        people = self._people_known()
        with self._writing():
            removed = self._execute("DELETE FROM windows WHERE end_ts < ?", (older_than,)).rowcount
            if people:
                self._execute(f"DELETE FROM {PEOPLE_TABLE} WHERE end_ts < ?", (older_than,))
        return removed

    # -- reading

    def venues(self) -> list[VenueRow]:
        with self._read_lock:
            rows = self._query(
                "SELECT venue, COUNT(*), MAX(last_seen) FROM cameras GROUP BY venue ORDER BY venue")
            zones = self._query("SELECT DISTINCT venue, zone FROM cameras WHERE zone IS NOT NULL "
                                "ORDER BY venue, zone")
            # each venue's latest end found in the index (a seek per venue), not by reading every window's entry: the
            # mood publisher asks every tick, and the GROUP BY scan grew with the windows stored (12 ms at 100,000)
            ends = dict(self._query("SELECT c.venue, (SELECT MAX(w.end_ts) FROM windows w WHERE w.venue = c.venue) "
                                    "FROM (SELECT DISTINCT venue FROM cameras) c"))
        return [VenueRow(venue=venue, cameras=count, last_seen=last, zones=[z for v, z in zones if v == venue],
                         last_window_end=ends.get(venue)) for venue, count, last in rows]

    def cameras(self, venue: str | None = None) -> list[CameraRow]:
        query = "SELECT venue, camera, zone, state, last_seen, agent, model, health, missing FROM cameras"
        params: tuple = ()
        if venue:
            query += " WHERE venue = ?"
            params = (venue,)
        with self._read_lock:
            rows = self._query(query + " ORDER BY venue, camera", params)
        return [CameraRow(venue=v, camera=c, zone=z, state=s, last_seen=seen, agent=agent,
                          model=json.loads(model) if model else None, health=json.loads(health) if health else None,
                          missing=int(missing or 0))
                for v, c, z, s, seen, agent, model, health, missing in rows]

    def camera_totals(self, venue: str, since: float, until: float, zone: str | None = None
                      ) -> list[CameraTotals]:
        """Per camera, the windows of ``venue`` (and zone) that ended in (since, until]: counts summed."""
        return in_zone(self.camera_totals_by_venue([venue], since, until).get(venue, []), zone)

    def camera_totals_by_venue(self, venues: Sequence[str], since: float, until: float
                               ) -> dict[str, list[tuple[str | None, CameraTotals]]]:
        """Per venue of ``venues``, per zone and camera: the windows that ended in (since, until], counts summed,
        by camera (:func:`in_zone` makes a venue's or a zone's totals of them). A few questions for any number of
        venues: the mood publisher asked five per venue each tick, 2,500 a tick over 500 venues (issue 18 part 4)."""
        sums = ", ".join(f"COALESCE(SUM({label}), 0)" for label in emotions.LABELS)
        found: dict[str, list[tuple[str | None, CameraTotals]]] = {}
        for part in _chunks(list(venues), QUESTION_ROWS):
            with self._read_lock:
                rows = self._query(f"SELECT venue, zone, camera, {sums}, COUNT(*), COALESCE(SUM(withheld), 0) "
                                   f"FROM windows WHERE venue IN ({', '.join(['?'] * len(part))}) AND end_ts > ? "
                                   f"AND end_ts <= ? GROUP BY venue, camera, zone ORDER BY venue, camera, zone",
                                   (*part, since, until))
            for venue, zone, camera, *sums_row, windows, withheld in rows:
                found.setdefault(venue, []).append((zone, CameraTotals(
                    camera=camera, counts={label: int(v) for label, v in zip(emotions.LABELS, sums_row)},
                    windows=int(windows), withheld=int(withheld))))
        return found

    def people_windows(self, venue: str, since: float, until: float, zone: str | None = None
                       ) -> list[PeopleWindow]:
        """The v2 windows of ``venue`` (and zone) that ended in (since, until], by camera and start; [] while no
        v2 window was ever stored."""
        return people_in_zone(self.people_windows_by_venue([venue], since, until).get(venue, []), zone)

    def people_windows_by_venue(self, venues: Sequence[str], since: float, until: float
                                ) -> dict[str, list[tuple[str | None, PeopleWindow]]]:
        """Per venue of ``venues``, its v2 windows that ended in (since, until] with their zones, by camera and
        start; {} while no v2 window was ever stored."""
        if not self._people_known():
            return {}
        found: dict[str, list[tuple[str | None, PeopleWindow]]] = {}
        for part in _chunks(list(venues), QUESTION_ROWS):
            with self._read_lock:
                rows = self._query(f"SELECT venue, zone, camera, start_ts, end_ts, people, entered, in_view, dwell_s, "
                                   f"ended, {', '.join(VOTE_COLUMNS)} FROM {PEOPLE_TABLE} WHERE venue IN "
                                   f"({', '.join(['?'] * len(part))}) AND end_ts > ? AND end_ts <= ? "
                                   f"ORDER BY venue, camera, start_ts", (*part, since, until))
            for venue, zone, camera, start, end, people, entered, in_view, dwell, ended, *votes in rows:
                found.setdefault(venue, []).append((zone, PeopleWindow(
                    camera=camera, start=float(start), end=float(end), people=int(people), entered=int(entered),
                    in_view=float(in_view), dwell_s=None if dwell is None else float(dwell), ended=int(ended),
                    votes=None if votes[0] is None else {label: int(v) for label, v in zip(emotions.LABELS, votes)})))
        return found

    def series(self, venue: str, since: float, until: float, step: float, zone: str | None = None
               ) -> list[CameraBucket]:
        """Counts (and votes) summed per camera and ``step``-second bucket of window end time, by bucket."""
        where, params = self._where(venue, since, until, zone)
        sums = ", ".join(f"COALESCE(SUM({label}), 0)" for label in emotions.LABELS)
        bucket = "FLOOR(end_ts / ?) * ?"
        with self._read_lock:
            rows = self._query(f"SELECT {bucket} AS bucket, camera, {sums} FROM windows WHERE {where} "
                               f"GROUP BY bucket, camera ORDER BY bucket, camera", (step, step, *params))
        votes: dict[tuple[float, str], dict[str, int] | None] = {}
        if self._people_known():
            vote_sums = ", ".join(f"SUM({column})" for column in VOTE_COLUMNS)
            with self._read_lock:
                people_rows = self._query(f"SELECT {bucket} AS bucket, camera, {vote_sums} FROM {PEOPLE_TABLE} "
                                          f"WHERE {where} GROUP BY bucket, camera", (step, step, *params))
            for t, camera, *sums_row in people_rows:  # SUM of only NULLs (every window withheld) is NULL
                votes[float(t), camera] = None if sums_row[0] is None else {
                    label: int(v) for label, v in zip(emotions.LABELS, sums_row)}
        return [CameraBucket(t=float(t), camera=camera,
                             counts={label: int(v) for label, v in zip(emotions.LABELS, sums_row)},
                             votes=votes.get((float(t), camera)), people=(float(t), camera) in votes)
                for t, camera, *sums_row in rows]

    @staticmethod
    def _where(venue: str, since: float, until: float, zone: str | None) -> tuple[str, tuple]:
        where = "venue = ? AND end_ts > ? AND end_ts <= ?"
        params: tuple = (venue, since, until)
        if zone:
            where += " AND zone = ?"
            params += (zone,)
        return where, params

    def is_transient(self, error: BaseException) -> bool:
        """A locked, full, unreachable or restarting database (retry later), as opposed to data it refuses."""
        if isinstance(error, sqlite3.OperationalError):
            return True
        if self.postgres:
            import psycopg

            return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
        return False

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._read_lock:
            if self._reader is not None and not self._shared_reader:
                self._reader.close()
