"""People in the aggregator (issue 17) and a camera's bounded weight (issue 20 part 1), on a real SQLite store read
through the real views: v1 and v2 windows mixed in one venue, the people figures and how they are counted, the
payload keys present only with people data, and the side table that a v1-only stream never creates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3

import pytest

from emo7ion.aggregator import plausibility
from emo7ion.aggregator.config import load
from emo7ion.aggregator.mood import CameraTally, CameraWeighting, combine, shares
from emo7ion.aggregator.store import PEOPLE_TABLE, CameraTotals, Store, in_zone
from emo7ion.aggregator.views import Views
from emo7ion.core import emotions, messages

NOW = 1_750_000_000.0
MODEL = {"sha256": "ab" * 32}
V1_KEYS = ["v", "type", "venue", "zone", "ts", "window_s", "faces", "cameras_online", "shares", "dominant",
           "positivity", "trend", "withheld_windows"]


def full(counts: dict[str, int]) -> dict[str, int]:
    return {label: counts.get(label, 0) for label in emotions.LABELS}


def window(camera: str, seq: int, end: float, counts: dict[str, int] | None, *, venue: str = "hall-a",
           zone: str | None = None, length: float = 10.0, frames: int = 20, people: dict | None = None
           ) -> messages.Window:
    """A v1 window, or with ``people`` (people, entered, votes, in_view, dwell_s, ended) a v2 one; ``counts``
    None: withheld."""
    counted = None if counts is None else full(counts)
    made = messages.Window(venue=venue, camera=camera, seq=seq, start=dt.datetime.fromtimestamp(end - length, dt.UTC),
                           end=dt.datetime.fromtimestamp(end, dt.UTC), frames=frames,
                           faces=sum(counted.values()) if counted else 3, counts=counted,
                           mean_confidence=None if counts is None else 0.8, model=MODEL, zone=zone)
    if people is None:
        return made
    votes = people.get("votes")
    v2 = dataclasses.replace(made, **{**people, "votes": None if votes is None else full(votes)})
    # Through the wire format and back: the aggregator stores only what parse accepts.
    return messages.parse(messages.camera_topic(venue, camera, "counts"), messages.window_payload(v2))


def tables(path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {name: [d[0] for d in db.execute(f'SELECT * FROM "{name}"').description] for name in names}


def online(store: Store, camera: str, state: str = "online", zone: str | None = None, venue: str = "hall-a") -> None:
    store.set_status(messages.Status(venue=venue, camera=camera, state=state,
                                     ts=dt.datetime.fromtimestamp(NOW - 100, dt.UTC), agent="x", model=MODEL,
                                     zone=zone))


@pytest.fixture
def mixed(tmp_path):
    """hall-a: cam-1 an old v1 agent (front), cam-2 a v2 agent (front), cam-3 a v2 agent (back) whose window in the
    period was withheld; hall-b: v1 cameras only."""
    path = tmp_path / "agg.sqlite"
    store = Store(str(path))
    assert PEOPLE_TABLE not in tables(path)
    store.add_windows([window("cam-1", 0, NOW - 400, {"sad": 5}, venue="hall-b"),
                       window("cam-1", 1, NOW - 20, {"happy": 4}, venue="hall-b")], received=NOW)
    assert PEOPLE_TABLE not in tables(path), "v1 windows alone must leave the schema as it always was"
    store.add_windows([
        window("cam-1", 0, NOW - 60, {"happy": 30, "neutral": 10}, zone="front"),
        window("cam-1", 1, NOW - 30, {"happy": 30, "neutral": 10}, zone="front"),
        window("cam-2", 0, NOW - 60, {"angry": 20, "happy": 20}, zone="front",
               people={"people": 4, "entered": 4, "votes": {"angry": 2, "happy": 2}, "in_view": 3.5,
                       "dwell_s": None, "ended": 0}),
        window("cam-2", 1, NOW - 30, {"angry": 30, "happy": 20}, zone="front",
               people={"people": 5, "entered": 1, "votes": {"angry": 3, "happy": 2}, "in_view": 4.0,
                       "dwell_s": 12.0, "ended": 2}),
        window("cam-3", 0, NOW - 400, {"sad": 6}, zone="back",
               people={"people": 3, "entered": 3, "votes": {"sad": 3}, "in_view": 2.0, "dwell_s": None,
                       "ended": 0}),
        window("cam-3", 1, NOW - 40, None, zone="back",
               people={"people": 2, "entered": 0, "votes": None, "in_view": 1.5, "dwell_s": 30.0, "ended": 1}),
    ], received=NOW)
    online(store, "cam-1", zone="front")
    online(store, "cam-2", zone="front")
    online(store, "cam-3", "offline", zone="back")
    yield store, Views(store, offline_after_s=3600.0, mood_window_s=300.0), path
    store.close()


def test_a_venue_mixing_v1_and_v2_cameras_gets_people_figures_and_a_per_camera_mood(mixed):
    store, views, path = mixed
    assert tables(path)[PEOPLE_TABLE][:11] == ["venue", "camera", "seq", "start_ts", "end_ts", "zone", "people",
                                               "entered", "in_view", "dwell_s", "ended"]
    venue = views.mood("hall-a", now=NOW)
    # Face detections stay what they were: every face-frame of every window in the period.
    assert venue.faces == 80 + 90 and venue.withheld_windows == 1
    # Equal weight per camera: cam-1's face shares (v1) and cam-2's people's votes, half each; cam-3 (withheld)
    # counted nothing, so it does not report.
    own_1, own_2 = {"happy": 0.75, "neutral": 0.25}, {"angry": 5 / 9, "happy": 4 / 9}
    for label in emotions.LABELS:
        assert venue.shares[label] == pytest.approx((own_1.get(label, 0) + own_2.get(label, 0)) / 2, abs=1e-4)
    assert venue.dominant == "happy"
    # In view now: the online cameras' latest windows (cam-2's 4.0; cam-3 is offline, cam-1 has no people).
    assert venue.people_in_view == 4.0
    # Seen: cam-2's first window brought 4 new people, its second 1 more; cam-3's 2 were counted before the
    # period began (its first window in the period: people 2, entered 0), so they count once here.
    assert venue.people_seen == 5 + 2
    assert venue.votes == 9  # cam-2's votes; the withheld window votes nothing
    assert venue.dwell_s == pytest.approx((12.0 * 2 + 30.0 * 1) / 3, abs=0.05)

    front, back = views.mood("hall-a", "front", now=NOW), views.mood("hall-a", "back", now=NOW)
    assert front.shares == venue.shares and front.people_seen == 5 and front.dwell_s == 12.0
    assert (back.faces, back.shares, back.dominant, back.positivity) == (0, None, None, None)
    assert (back.people_seen, back.people_in_view, back.votes, back.dwell_s) == (2, 0.0, 0, 30.0)

    for mood in (venue, front, back):  # the payload carries the people keys and reads back the same
        payload = messages.mood_payload(mood)
        assert list(json.loads(payload)) == V1_KEYS + ["people_in_view", "people_seen", "votes", "dwell_s"]
        read = messages.parse_mood(messages.mood_topic(mood.venue, mood.zone), payload)
        assert read.same_as(mood) and messages.mood_payload(read) == payload

    old = views.mood("hall-b", now=NOW)  # v1 cameras only: the v1 payload, no people key at all
    assert not old.has_people and list(json.loads(messages.mood_payload(old))) == V1_KEYS
    assert old.faces == 4 and old.trend == pytest.approx(1.0 - (-1.0))


def test_the_timeseries_combines_cameras_like_the_mood(mixed):
    _, views, _ = mixed
    series = views.timeseries("hall-a", minutes=5, step_s=3600, now=NOW)  # one bucket: the mood's period
    [point] = [p for p in series["points"] if p["faces"]]
    assert point["faces"] == 170 and sum(point["counts"].values()) == 170  # face-frames, unweighted
    assert point["shares"] == views.mood("hall-a", now=NOW).shares


def test_people_rows_are_pruned_with_their_windows(mixed):
    store, views, path = mixed
    store.prune(NOW - 100)
    with sqlite3.connect(path) as db:
        assert db.execute(f"SELECT COUNT(*) FROM {PEOPLE_TABLE} WHERE end_ts < ?", (NOW - 100,)).fetchone() == (0,)
        assert db.execute(f"SELECT COUNT(*) FROM {PEOPLE_TABLE}").fetchone() == (3,)


def test_parse_mood_reads_people_keys_all_or_none(mixed):
    _, views, _ = mixed
    payload = messages.mood_payload(views.mood("hall-a", now=NOW))
    body = json.loads(payload)
    del body["dwell_s"]
    with pytest.raises(messages.MessageError, match="dwell_s"):
        messages.parse_mood(messages.mood_topic("hall-a"), json.dumps(body).encode())
    for field, bad in (("people_seen", -1), ("people_seen", 1.5), ("people_in_view", -0.5), ("votes", "9"),
                       ("dwell_s", -3)):
        body = {**json.loads(payload), field: bad}
        with pytest.raises(messages.MessageError, match=field):
            messages.parse_mood(messages.mood_topic("hall-a"), json.dumps(body).encode())


# ---- the rule, as arithmetic ------------------------------------------------------------------------------------

def test_v1_venues_sum_faces_exactly_unless_a_camera_exceeds_the_cap():
    """No cap binds: the very integers v1 summed (so the v1 replay's moods stay byte-identical). A camera beyond
    cap x the median camera counts as cap x median."""
    cams = [CameraTally("a", full({"happy": 40, "sad": 26})), CameraTally("b", full({"angry": 92})),
            CameraTally("c", full({"neutral": 114}))]
    summed = combine(cams, CameraWeighting())
    assert summed == {label: sum(c.faces[label] for c in cams) for label in emotions.LABELS}
    assert all(type(v) is int for v in summed.values())
    loud = [*cams[:2], CameraTally("c", full({"neutral": 1000}))]
    capped = combine(loud, CameraWeighting(cap=2.0))
    assert capped["neutral"] == pytest.approx(2.0 * 92) and capped["angry"] == 92


def test_people_venues_weigh_each_camera_equally_or_capped():
    honest = [CameraTally(f"h{n}", full({"happy": 30}), full({"happy": 10 + 10 * n}), True) for n in range(3)]
    attacker = CameraTally("x", full({"angry": 30000}), full({"angry": 30000}), True)
    assert shares(combine([*honest, attacker], CameraWeighting("equal")))["angry"] == 0.25
    # capped at 1 x the median: the attacker weighs as much as the median camera (25 of 10+20+30+25 here)
    capped = shares(combine([*honest, attacker], CameraWeighting("capped", cap=1.0)))
    assert capped["angry"] == pytest.approx(25 / (10 + 20 + 25 + 25), abs=1e-4)
    v1_attacker = CameraTally("x", full({"angry": 30000}))  # v1 windows in a people venue: the median camera
    assert shares(combine([*honest, v1_attacker], CameraWeighting("capped", cap=4.0)))["angry"] == 0.25


def test_the_weighting_is_configurable_and_a_bad_value_is_named(tmp_path):
    assert load(None, {}, environ={}).weighting == CameraWeighting("equal", 2.0)
    assert load(None, {"mood_camera_weight": "capped", "mood_camera_cap": 3}, environ={}).weighting == \
        CameraWeighting("capped", 3.0)
    from emo7ion.core.service.settings import ConfigError

    for overrides, key in (({"mood_camera_weight": "faces"}, "mood_camera_weight"),
                           ({"mood_camera_cap": 0.5}, "mood_camera_cap")):
        with pytest.raises(ConfigError, match=key):
            load(None, overrides, environ={})


# ---- issue 20, must-show 1's shape, in process ------------------------------------------------------------------

def _stream(camera: str, counts, people, count: int, length: float = 10.0, frames: int = 20, first_seq: int = 0):
    return [window(camera, first_seq + i, NOW - (count - 1 - i) * length, counts(i), length=length, frames=frames,
                   people=None if people is None else people(i)) for i in range(count)]


@pytest.mark.parametrize("attacker_kind", ["v2", "v1", "both"])
def test_an_attacker_camera_moves_a_people_venue_by_at_most_its_share(tmp_path, attacker_kind):
    """Three honest v2 cameras (crowds of 12, 30 and 55 people, nobody angry) against one camera with stolen
    credentials sending the most a window may plausibly claim (30 fps x 100 faces, every face and person angry),
    as v2, v1 or both, plus 2,000 stacked 10 ms windows: the venue's angry share stays within 1/4 + 0.02."""
    store = Store(str(tmp_path / "agg.sqlite"))
    config = load(None, {"min_window_s": 0.0}, environ={})  # 10 ms windows are refused since issue 20 part 2
    # ("short"); judged without that check, so the bound on one camera's weight is shown to hold on its own
    views = Views(store, offline_after_s=3600.0, mood_window_s=300.0, weighting=config.weighting)
    for n, crowd in enumerate((12, 30, 55)):
        votes = {"happy": crowd * 2 // 3, "neutral": crowd - crowd * 2 // 3}
        store.add_windows(_stream(f"cam-{n + 2}", lambda i, v=votes: {k: 3 * x for k, x in v.items()},
                                  lambda i, v=votes, c=crowd: {"people": c, "entered": 2, "votes": v,
                                                               "in_view": c / 2, "dwell_s": None, "ended": 0},
                                  count=29), received=NOW)
    honest = views.mood("hall-a", now=NOW)
    assert honest.shares["angry"] == 0 and honest.people_seen > 0

    angry = {"angry": 30_000}
    loud_v2 = {"people": 30_000, "entered": 30_000, "votes": angry, "in_view": 100.0, "dwell_s": None, "ended": 0}
    kinds = {"v2": lambda i: loud_v2, "v1": lambda i: None, "both": lambda i: loud_v2 if i % 2 else None}
    attack = _stream("cam-1", lambda i: angry, kinds[attacker_kind], count=29, frames=300)
    stacked = [window("cam-1", 1000 + i, NOW - 295, {"angry": 100}, length=0.01, frames=1,
                      people=None if attacker_kind == "v1" else {"people": 100, "entered": 100,
                                                                   "votes": {"angry": 100}, "in_view": 100.0,
                                                                   "dwell_s": None, "ended": 0})
               for i in range(2000)]
    believable = [w for w in attack + stacked if plausibility.judge(w, NOW, config) is None]
    assert len(believable) == len(attack) + len(stacked), "the attack must be the most a window may claim"
    store.add_windows(believable, received=NOW)

    mood = views.mood("hall-a", now=NOW)
    assert mood.faces > 100 * honest.faces  # the attacker's face-frames dwarf everyone's
    assert mood.shares["angry"] <= 0.25 + 0.02, mood.shares
    assert mood.positivity >= honest.positivity - 2 * (0.25 + 0.02)
    store.close()


def test_a_v1_only_venue_bounds_an_attacker_by_the_cap(tmp_path):
    """Old agents only: face-frame counts summed, a camera capped at mood_camera_cap (2) x the median camera, so an
    attacker among three honest cameras of equal crowds holds at most 2/5 of the mood (docs/security.md)."""
    store = Store(str(tmp_path / "agg.sqlite"))
    views = Views(store, offline_after_s=3600.0, mood_window_s=300.0)
    for n in range(3):
        store.add_windows(_stream(f"cam-{n + 2}", lambda i: {"happy": 30}, None, count=29), received=NOW)
    store.add_windows(_stream("cam-1", lambda i: {"angry": 30_000}, None, count=29, frames=300), received=NOW)
    assert views.mood("hall-a", now=NOW).shares["angry"] <= 2 / 5 + 0.02
    store.close()


# ---- PostgreSQL: the side table made once by replicas racing for it ---------------------------------------------

def test_replicas_on_postgresql_create_the_people_table_once_and_see_each_others_rows():
    """Two aggregators' stores on one PostgreSQL, both opened before any v2 window: their first v2 windows race to
    create window_people (under the schema's advisory lock, so neither fails), and each reads the other's rows."""
    import threading

    from postgres import PostgresUnavailable, ThrowawayPostgres

    try:
        server = ThrowawayPostgres().start()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    try:
        url = server.create_database("people")
        stores = [Store(url), Store(url)]
        assert stores[0].people_windows("hall-a", NOW - 300, NOW) == []  # no table yet: nothing, no error
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def first_v2(n: int) -> None:
            try:
                barrier.wait(5)
                stores[n].add_windows([window(f"cam-{n}", 0, NOW - 30, {"happy": 6}, people={
                    "people": 2 + n, "entered": 2 + n, "votes": {"happy": 2 + n}, "in_view": 1.0, "dwell_s": None,
                    "ended": 0})], received=NOW)
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=first_v2, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors, errors
        for store in stores:
            rows = store.people_windows("hall-a", NOW - 300, NOW)
            assert sorted((r.camera, r.people) for r in rows) == [("cam-0", 2), ("cam-1", 3)]
            views = Views(store, offline_after_s=3600.0, mood_window_s=300.0)
            assert views.mood("hall-a", now=NOW).people_seen == 5
        assert stores[0].prune(NOW) == 2 and stores[1].people_windows("hall-a", NOW - 300, NOW) == []
        for store in stores:
            store.close()
    finally:
        server.stop()


def test_the_publishers_moods_of_all_venues_at_once_equal_each_venues_own(mixed):
    store, views, _ = mixed
    venues = views.venue_zones()
    assert ("hall-a", ["back", "front"]) in venues and any(venue == "hall-b" for venue, _ in venues)
    together = views.moods(venues, now=NOW)
    assert set(together) == {(venue, zone) for venue, zones in venues for zone in [None, *zones]}
    for (venue, zone), mood in together.items():
        assert mood == views.mood(venue, zone, now=NOW), (venue, zone)
    assert together["hall-a", None].has_people and together["hall-b", None].trend is not None


def test_a_venues_totals_add_each_cameras_zones_and_a_zones_keep_its_own():
    def totals(camera: str, happy: int, windows: int) -> CameraTotals:
        return CameraTotals(camera=camera, counts=full({"happy": happy}), windows=windows, withheld=windows - 1)

    rows = [("back", totals("cam-1", 2, 1)), ("front", totals("cam-1", 3, 2)), (None, totals("cam-2", 5, 4))]
    assert in_zone(rows, None) == [CameraTotals("cam-1", full({"happy": 5}), windows=3, withheld=1),
                                   totals("cam-2", 5, 4)]
    assert in_zone(rows, "front") == [totals("cam-1", 3, 2)] and in_zone(rows, "side") == []
