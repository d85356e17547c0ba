"""The store's batched write (issue 18 part 4) judges a batch's windows exactly as if each were written alone, in
order: overlaps with stored windows and with the batch's own earlier ones, redeliveries within the batch and of
stored windows, zones, the quota and the sequence accounting. Random streams of real windows (through the wire's
millisecond times) go into two real SQLite stores, one batch at a time and one window at a time; every table and
every count must come out the same. Also on PostgreSQL when its server binaries are here (tests/postgres.py)."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3

import pytest
from postgres import PostgresUnavailable, ThrowawayPostgres

from emo7ion.aggregator.quota import WindowQuota
from emo7ion.aggregator.store import Store
from emo7ion.aggregator.zones import Zones
from emo7ion.core import emotions, messages

NOW = 1_750_000_000.0
MODEL = {"sha256": "cd" * 32}
VENUES = {"declared": {"cam-0": "front", "cam-1": ""}}  # "open": no [venues] table, a camera's first zone sticks


def random_stream(rng: random.Random, size: int) -> list[messages.Window]:
    """Windows of a few cameras in two venues: mostly back to back, some overlapping, some redelivered (same seq and
    start, sometimes another end), seqs that skip or go back, zones right and wrong, v1 and v2."""
    stream: list[messages.Window] = []
    ends: dict[tuple[str, str], float] = {}
    seqs: dict[tuple[str, str], int] = {}
    for _ in range(size):
        venue = rng.choice(["declared", "open"])
        camera = f"cam-{rng.randrange(3)}"
        key = (venue, camera)
        if stream and rng.random() < 0.15:  # a redelivery, now or later
            again = rng.choice(stream)
            if rng.random() < 0.3:
                again = messages.Window(**{**again.__dict__, "end": again.end + dt.timedelta(seconds=1)})
            stream.append(again)
            continue
        length = rng.choice([1.0, 5.0, 10.0])
        end = ends.get(key, NOW - 3600) + length + rng.choice([0.0, 0.0, 0.0, 2.0, -3.0, -0.001, 0.001])
        ends[key] = max(ends.get(key, 0.0), end)
        seqs[key] = seqs.get(key, 0) + rng.choice([1, 1, 1, 2, -1, 5])
        faces = rng.randrange(5)
        counts = {label: 0 for label in emotions.LABELS} | {"happy": faces}
        window = messages.Window(venue=venue, camera=camera, seq=max(0, seqs[key]), zone=rng.choice(
            [None, None, "front", "back"]), start=dt.datetime.fromtimestamp(end - length, dt.UTC),
            end=dt.datetime.fromtimestamp(end, dt.UTC), frames=int(length), faces=faces, counts=counts,
            mean_confidence=0.7, model=MODEL)
        if rng.random() < 0.3:
            window = messages.Window(**{**window.__dict__, "people": min(faces, 2), "entered": min(faces, 1),
                                        "votes": {label: 0 for label in emotions.LABELS} | {"sad": min(faces, 2)},
                                        "in_view": 1.5, "dwell_s": None, "ended": 0})
        payload = messages.window_payload(window)  # as the aggregator receives it: times in milliseconds
        stream.append(messages.parse(messages.camera_topic(venue, camera, "counts"), payload))
    return stream


def known_cameras(store: Store) -> None:
    """Every camera's row made first (its status): a batch advances the seq accounting of the cameras that have a
    row, and a row made by the batch's own first stored window would count the windows judged before it too."""
    for venue in ("declared", "open"):
        for camera in ("cam-0", "cam-1", "cam-2"):
            store.set_status(messages.Status(venue=venue, camera=camera, state="online", agent=None, model=None,
                                             ts=dt.datetime.fromtimestamp(NOW - 7200, dt.UTC)), Zones(VENUES))


def write(store: Store, batches: list[list[messages.Window]], quota: WindowQuota) -> tuple[int, int, list, list, dict]:
    zones = Zones(VENUES)
    stored = duplicates = 0
    overlapping: list = []
    judged: list = []
    resets: dict = {}
    for i, batch in enumerate(batches):
        result = store.add_windows(batch, received=NOW + i, zones=zones, quota=quota)
        stored, duplicates = stored + result.stored, duplicates + result.duplicates
        overlapping += [(w.camera, w.seq) for w in result.overlapping]
        judged += [(w.camera, w.seq, reason) for w, reason in result.refused]
        for key, n in result.resets.items():
            resets[key] = resets.get(key, 0) + n
    return stored, duplicates, overlapping, judged, resets


def tables(url: str) -> dict[str, list]:
    if url.startswith("postgresql://"):
        import psycopg

        connect = psycopg.connect(url)
    else:
        connect = sqlite3.connect(url)
    try:
        return {table: sorted(map(tuple, connect.execute(query).fetchall())) for table, query in {
            "windows": "SELECT venue, camera, seq, start_ts, end_ts, zone, frames, faces, happy, sad FROM windows",
            "window_people": "SELECT venue, camera, seq, start_ts, people, votes_sad FROM window_people",
            "cameras": "SELECT venue, camera, zone, last_seen, max_seq, last_end, missing FROM cameras"}.items()}
    finally:
        connect.close()


def same_as_one_by_one(batched_url: str, single_url: str, seed: int) -> None:
    rng = random.Random(seed)
    stream = random_stream(rng, 400)
    batches, i = [], 0
    while i < len(stream):
        size = rng.choice([1, 7, 50, 200])
        batches.append(stream[i:i + size])
        i += size
    batched, single = Store(batched_url), Store(single_url)
    known_cameras(batched)
    known_cameras(single)
    try:
        by_batch = write(batched, batches, WindowQuota(backlog_s=300.0, per_day=150))
        # one window per batch, each at its batch's receive time (the quota refills by the clock)
        one_by_one = [[w] for batch in batches for w in batch]
        received = [i for i, batch in enumerate(batches) for _ in batch]
        quota = WindowQuota(backlog_s=300.0, per_day=150)
        totals = [0, 0, [], [], {}]
        zones = Zones(VENUES)
        for at, batch in zip(received, one_by_one):
            result = single.add_windows(batch, received=NOW + at, zones=zones, quota=quota)
            totals[0] += result.stored
            totals[1] += result.duplicates
            totals[2] += [(x.camera, x.seq) for x in result.overlapping]
            totals[3] += [(x.camera, x.seq, reason) for x, reason in result.refused]
            for key, n in result.resets.items():
                totals[4][key] = totals[4].get(key, 0) + n
    finally:
        batched.close()
        single.close()
    assert by_batch[0] > 50 and by_batch[1] > 10 and by_batch[2] and by_batch[3], "the stream exercises every rule"
    assert by_batch == tuple(totals)
    assert tables(batched_url) == tables(single_url)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_batch_is_judged_as_its_windows_one_by_one_sqlite(tmp_path, seed):
    same_as_one_by_one(str(tmp_path / "batched.sqlite"), str(tmp_path / "single.sqlite"), seed)


def test_a_batch_is_judged_as_its_windows_one_by_one_postgresql():
    try:
        server = ThrowawayPostgres()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    with server:
        same_as_one_by_one(server.create_database("batched"), server.create_database("single"), 4)


@pytest.mark.parametrize("seed", [5, 6])
def test_two_writers_taking_turns_on_one_file_judge_as_one(tmp_path, seed):
    """Each writer remembers its cameras' rows between batches (SQLite), and must notice the other's commits: the
    sequence accounting, zones and overlaps of two aggregators taking turns on one file equal one writer's."""
    rng = random.Random(seed)
    stream = random_stream(rng, 300)
    batches = [stream[i:i + 25] for i in range(0, len(stream), 25)]
    shared, alone = str(tmp_path / "shared.sqlite"), str(tmp_path / "alone.sqlite")
    first, second, single = Store(shared), Store(shared), Store(alone)
    known_cameras(first)
    known_cameras(single)
    zones = Zones(VENUES)
    try:
        for i, batch in enumerate(batches):  # one quota each (per process), too large to refuse anything here
            (first if i % 2 == 0 else second).add_windows(batch, received=NOW + i, zones=zones, quota=None)
            single.add_windows(batch, received=NOW + i, zones=zones, quota=None)
            if i == 5:  # a status between batches moves no declared camera; an open one's zone sticks
                for store in (second, single):
                    store.set_status(messages.Status(venue="open", camera="cam-2", state="online", agent=None,
                                                     model=None, zone="back",
                                                     ts=dt.datetime.fromtimestamp(NOW + i, dt.UTC)), zones)
    finally:
        for store in (first, second, single):
            store.close()
    assert tables(shared) == tables(alone)


def test_a_status_between_batches_is_seen_by_the_next_batch(tmp_path):
    """A camera's row remembered by the writer is forgotten when a status writes it: the zone a status gave an
    open venue's camera holds against the next window naming another."""
    store, zones = Store(str(tmp_path / "store.sqlite")), Zones(VENUES)

    def window(seq: int, zone: str | None) -> messages.Window:
        return messages.Window(venue="open", camera="cam-1", seq=seq, zone=zone, frames=5, faces=0,
                               start=dt.datetime.fromtimestamp(NOW + 5 * seq, dt.UTC),
                               end=dt.datetime.fromtimestamp(NOW + 5 * seq + 5, dt.UTC),
                               counts=dict.fromkeys(emotions.LABELS, 0), mean_confidence=None, model=MODEL)
    try:
        assert store.add_windows([window(1, None)], received=NOW, zones=zones).stored == 1  # remembered, no zone
        store.set_status(messages.Status(venue="open", camera="cam-1", state="online", agent=None, model=None,
                                         zone="back", ts=dt.datetime.fromtimestamp(NOW + 6, dt.UTC)), zones)
        result = store.add_windows([window(2, "front")], received=NOW + 11, zones=zones)
    finally:
        store.close()
    assert result.stored == 0 and [reason for _, reason in result.refused] == ["zone"]
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        assert db.execute("SELECT zone FROM cameras").fetchall() == [("back",)]
