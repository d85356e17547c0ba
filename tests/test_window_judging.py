"""Issue 20 parts 2-4 on a real SQLite store, in process: no window shorter than a real one, overlap on any shared
time, a camera's budget of window time and its day cap, zones declared (or a camera's first zone) and never chosen
by the camera, and sequence jumps counted as resets instead of missing windows.

The same rules through a real broker and aggregator: tests/test_hostile_camera.py (must-shows 2 and 3)."""

from __future__ import annotations

import datetime as dt

import pytest

from emo7ion.aggregator import plausibility
from emo7ion.aggregator.config import load
from emo7ion.aggregator.ingest import IngestStats
from emo7ion.aggregator.metrics import render_metrics
from emo7ion.aggregator.quota import DAY_S, WindowQuota
from emo7ion.aggregator.store import SeqState, Store
from emo7ion.aggregator.views import Views
from emo7ion.aggregator.zones import Zones
from emo7ion.broker_config.runner import BrokerError, find_tool
from emo7ion.cli import main
from emo7ion.core import emotions, messages
from emo7ion.core.service.settings import ConfigError

NOW = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC
MODEL = {"sha256": "ab" * 32}


def window(camera: str, seq: int, end: float, *, length: float = 10.0, venue: str = "hall",
           zone: str | None = None, counts: dict | None = None, withheld: bool = False) -> messages.Window:
    full = {label: (counts or {"happy": 3}).get(label, 0) for label in emotions.LABELS}
    return messages.Window(venue=venue, camera=camera, zone=zone, seq=seq,
                           start=dt.datetime.fromtimestamp(end - length, dt.UTC),
                           end=dt.datetime.fromtimestamp(end, dt.UTC), frames=max(1, int(length)),
                           faces=2 if withheld else sum(full.values()), counts=None if withheld else full,
                           mean_confidence=None if withheld else 0.8, model=MODEL)


def through_the_wire(w: messages.Window) -> messages.Window:
    """As the aggregator receives it: times in milliseconds."""
    return messages.parse(messages.camera_topic(w.venue, w.camera, "counts"), messages.window_payload(w))


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "agg.sqlite"))
    yield store
    store.close()


def missing(store: Store, camera: str, venue: str = "hall") -> int:
    return next(row.missing for row in store.cameras(venue) if row.camera == camera)


# ---- part 2: no window shorter than a real one ---------------------------------------------------------------

def test_a_window_shorter_than_half_the_agents_shortest_is_refused():
    config = load(None, {}, environ={})
    assert config.min_window_s == 0.5
    assert plausibility.judge(window("cam-1", 0, NOW - 5, length=0.01), NOW, config) == "short"
    assert plausibility.judge(window("cam-1", 0, NOW - 5, length=0.49), NOW, config) == "short"
    assert plausibility.judge(window("cam-1", 0, NOW - 5, length=0.5), NOW, config) is None
    assert plausibility.judge(window("cam-1", 0, NOW - 5, length=1.0), NOW, config) is None
    assert "shorter than any real window" in plausibility.explain("short", window("cam-1", 0, NOW, length=0.01),
                                                                   config)
    off = load(None, {"min_window_s": 0}, environ={})
    assert plausibility.judge(window("cam-1", 0, NOW - 5, length=0.01), NOW, off) is None
    with pytest.raises(ConfigError, match="min_window_s"):
        load(None, {"min_window_s": -1}, environ={})


def test_windows_sharing_one_millisecond_overlap_and_windows_that_touch_do_not(store):
    first = through_the_wire(window("cam-1", 0, NOW - 20))
    touching = through_the_wire(window("cam-1", 1, NOW - 10))               # starts where the first ends
    one_ms = through_the_wire(window("cam-1", 2, NOW - 19.999 + 10, length=10.0))  # starts 1 ms before its end
    result = store.add_windows([first, touching], received=NOW)
    assert result.stored == 2 and not result.overlapping
    result = store.add_windows([one_ms], received=NOW)
    assert result.stored == 0 and result.overlapping == [one_ms]
    # The flood: windows of 10 ms stacked on the same span (the old 10 ms tolerance let them all through).
    stacked = [through_the_wire(window("cam-2", seq, NOW - 4.99, length=0.01)) for seq in range(50)]
    result = store.add_windows(stacked, received=NOW)
    assert result.stored == 1 and len(result.overlapping) == 49


def test_a_camera_stores_no_more_window_time_than_passes_beyond_its_backlog(store):
    """10 s windows arriving 100 a second: the backlog budget (600 s: 60 windows), then only what real time adds."""
    quota = WindowQuota(backlog_s=600.0, per_day=100_000)
    stored = refused = 0
    for n in range(200):
        arrival = NOW + n * 0.01
        result = store.add_windows([window("cam-1", n, NOW - 5000 + n * 10)], received=arrival, quota=quota)
        stored += result.stored
        refused += [reason for _, reason in result.refused].count("rate")
    assert stored == 60 and refused == 140  # the 1.99 s that passed meanwhile buy no 10 s window
    # Another camera has its own budget; and real time refills this one: one 10 s window per 10 s.
    assert store.add_windows([window("cam-2", 0, NOW)], received=NOW + 2, quota=quota).stored == 1
    assert store.add_windows([window("cam-1", 500, NOW + 30)], received=NOW + 12, quota=quota).stored == 1
    assert store.add_windows([window("cam-1", 501, NOW + 40)], received=NOW + 13, quota=quota).refused


def test_a_backlog_after_an_outage_is_stored_whole_however_fast_it_arrives(store):
    """The honest case the budget is sized for: a camera live with 10 s windows, away for 6 hours (its outbox keeps
    the windows), then delivering the 2,160 of them in one batch after another, within a second."""
    quota = WindowQuota(backlog_s=86400.0, per_day=200_000)
    live = [window("cam-1", seq, NOW + seq * 10) for seq in range(30)]
    for w in live:
        assert store.add_windows([w], received=w.end.timestamp(), quota=quota).stored == 1
    back = NOW + 29 * 10 + 6 * 3600
    backlog = [window("cam-1", seq, NOW + seq * 10) for seq in range(30, 30 + 2160)]
    stored = sum(store.add_windows(backlog[i:i + 500], received=back + i / 5000, quota=quota).stored
                 for i in range(0, len(backlog), 500))
    assert stored == 2160 and missing(store, "cam-1") == 0


def test_a_redelivery_spends_nothing_and_a_failed_batch_spends_nothing(store):
    quota = WindowQuota(backlog_s=25.0, per_day=100)
    first = window("cam-1", 0, NOW)
    assert store.add_windows([first], received=NOW, quota=quota).stored == 1
    for _ in range(5):  # QoS 1 redeliveries: duplicates, not spent
        assert store.add_windows([first], received=NOW, quota=quota).duplicates == 1
    assert store.add_windows([window("cam-1", 1, NOW + 10)], received=NOW, quota=quota).stored == 1
    batch = quota.batch(NOW)
    assert batch.admit(window("cam-1", 2, NOW + 20)) == "rate"  # 25 - 20 s left: a 10 s window does not fit
    assert batch.admit(window("cam-1", 2, NOW + 15, length=5.0)) is None
    # never committed (the transaction failed): the next batch still has the 5 s
    assert store.add_windows([window("cam-1", 2, NOW + 15, length=5.0)], received=NOW, quota=quota).stored == 1


def test_a_camera_stores_at_most_its_day_cap_per_utc_day_counted_in_metrics(store):
    quota = WindowQuota(backlog_s=86400.0, per_day=50)
    day = (NOW // DAY_S + 1) * DAY_S  # midnight UTC after NOW
    result = store.add_windows([window("cam-1", seq, day - 3000 + seq, length=1.0) for seq in range(80)],
                               received=day - 100, quota=quota)
    assert result.stored == 50 and [reason for _, reason in result.refused] == ["day_cap"] * 30
    today = quota.today(day - 100)
    assert today == {("hall", "cam-1"): 50}
    assert store.add_windows([window("cam-2", 0, day - 200)], received=day - 100, quota=quota).stored == 1
    # A new UTC day: the camera may store again.
    assert store.add_windows([window("cam-1", 100, day + 5)], received=day + 10, quota=quota).stored == 1
    assert quota.today(day + 10) == {("hall", "cam-1"): 1}

    stats = IngestStats(day_cap=50)
    stats.windows_today = today
    stats.rejected["day_cap"] += 30
    text = render_metrics(stats, [])
    assert 'emo7ion_camera_windows_today{venue="hall",camera="cam-1"} 50' in text
    assert "emo7ion_camera_windows_day_cap 50" in text
    assert 'emo7ion_messages_rejected_total{reason="day_cap"} 30' in text


# ---- part 3: zones are declared, not chosen by the camera ------------------------------------------------------

def test_declared_zones_refuse_another_zone_and_assign_the_declared_one(store):
    zones = Zones({"hall": {"cam-1": "front", "cam-2": "back", "cam-3": None}})
    result = store.add_windows([
        window("cam-1", 0, NOW - 50, zone="front"),
        window("cam-1", 1, NOW - 40, zone="back"),     # another camera's zone: refused
        window("cam-1", 2, NOW - 30, zone="vip"),      # a zone of its own making: refused
        window("cam-1", 3, NOW - 20),                  # no zone: stored under its declared one
        window("cam-3", 0, NOW - 20, zone="front"),    # declared with no zone
        window("cam-9", 0, NOW - 20, zone="front"),    # not listed in a declared venue: no zone
        window("cam-2", 0, NOW - 20, zone="back"),
    ], received=NOW, zones=zones)
    assert result.stored == 3
    assert [(w.camera, w.seq, reason) for w, reason in result.refused] == [
        ("cam-1", 1, "zone"), ("cam-1", 2, "zone"), ("cam-3", 0, "zone"), ("cam-9", 0, "zone")]
    assert {row.camera: row.zone for row in store.cameras("hall")} == {"cam-1": "front", "cam-2": "back"}
    assert missing(store, "cam-1") == 0, "a refused window arrived: its seq is not missing"
    # A status cannot move a camera either: its zone is replaced by the declared one.
    store.set_status(messages.Status(venue="hall", camera="cam-1", state="online", zone="vip",
                                     ts=dt.datetime.fromtimestamp(NOW, dt.UTC), agent="x", model=MODEL), zones)
    store.set_status(messages.Status(venue="hall", camera="cam-3", state="online", zone="vip",
                                     ts=dt.datetime.fromtimestamp(NOW, dt.UTC), agent="x", model=MODEL), zones)
    assert {row.camera: row.zone for row in store.cameras("hall")} == {"cam-1": "front", "cam-2": "back",
                                                                       "cam-3": None}
    views = Views(store, 3600.0, 300.0, zones=zones)
    front = views.mood("hall", "front", now=NOW)
    assert front.faces == 6 and front.cameras_online == 1  # cam-1's two windows; cam-3 did not join it
    assert views.venue_zones() == [("hall", ["back", "front"])]


def test_a_declared_venue_publishes_only_its_declared_zones_even_with_old_rows(store):
    """A database from before the table holds zones cameras chose; a declared venue lists only its own."""
    store.add_windows([window("cam-1", 0, NOW - 20, zone="vip"), window("cam-2", 0, NOW - 20, zone="back")],
                      received=NOW)
    assert Views(store, 3600.0, 300.0).venue_zones() == [("hall", ["back", "vip"])]
    declared = Views(store, 3600.0, 300.0, zones=Zones({"hall": {"cam-1": "front", "cam-2": "back"}}))
    assert declared.venue_zones() == [("hall", ["back"])]
    assert declared.venues()[0]["zones"] == ["back"]


def test_without_declared_zones_a_cameras_first_zone_is_its_zone(store):
    """Today's deployments keep working: a camera's first zone sticks; hopping is refused, statuses included."""
    hops = [window("cam-1", seq, NOW - 300 + seq * 10, zone=f"z-{seq}") for seq in range(20)]
    result = store.add_windows(hops, received=NOW)
    assert result.stored == 1 and len(result.refused) == 19
    assert {reason for _, reason in result.refused} == {"zone"}
    store.set_status(messages.Status(venue="hall", camera="cam-1", state="online", zone="z-7",
                                     ts=dt.datetime.fromtimestamp(NOW, dt.UTC), agent="x", model=MODEL))
    assert [(row.camera, row.zone) for row in store.cameras("hall")] == [("cam-1", "z-0")]
    assert Views(store, 3600.0, 300.0).venue_zones() == [("hall", ["z-0"])]
    # A window naming no zone still counts for the venue; a camera with no zone yet takes its first.
    assert store.add_windows([window("cam-1", 20, NOW - 50)], received=NOW).stored == 1
    store.set_status(messages.Status(venue="hall", camera="cam-2", state="online", zone="bar",
                                     ts=dt.datetime.fromtimestamp(NOW, dt.UTC), agent="x", model=MODEL))
    assert store.add_windows([window("cam-2", 0, NOW - 50, zone="front")], received=NOW).refused


def test_the_venues_table_is_checked_and_names_the_bad_key():
    config = load(None, {"venues": {"hall": {"cam-1": "front", "cam-2": ""}}}, environ={})
    assert config.venues == {"hall": {"cam-1": "front", "cam-2": None}}
    for bad, key in (({"hall": {"cam-1": "Front!"}}, "venues.hall.cam-1"), ({"hall": "front"}, "venues.hall"),
                     ({"Hall": {"cam-1": "front"}}, "venues.Hall"), ({"hall": {"cam-1": 3}}, "venues.hall.cam-1")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load(None, {"venues": bad}, environ={})


# ---- part 4: metrics one camera cannot break -------------------------------------------------------------------

def test_must_show_3_a_seq_jump_is_one_reset_and_leaves_missing_unchanged(store):
    """Two withheld windows: seq S dated 29 days ago, then S + 2,000,000 now (10 s windows, an agent's default).
    Before: 1,999,999 missing. Now: missing unchanged (the honest camera's real gap stays), one reset."""
    store.add_windows([window("cam-2", 0, NOW - 60), window("cam-2", 2, NOW - 40)], received=NOW)
    assert missing(store, "cam-2") == 1
    s = 123_456
    first = store.add_windows([window("cam-1", s, NOW - 29 * DAY_S, withheld=True)], received=NOW)
    second = store.add_windows([window("cam-1", s + 2_000_000, NOW, withheld=True)], received=NOW)
    assert first.stored == second.stored == 1
    assert missing(store, "cam-1") == 0 and missing(store, "cam-2") == 1
    assert first.resets == {} and second.resets == {("hall", "cam-1"): 1}


def test_missing_per_camera_is_bounded_by_the_time_passed_over_the_window_length():
    state = SeqState(max_seq=10, last_end=NOW, missing=0)
    state.account(16, NOW + 60, NOW + 70)          # 60 s of 10 s windows: 6 fit, 5 skipped seqs are missing
    assert (state.missing, state.resets) == (5, 0)
    state.account(30, NOW + 80, NOW + 90)          # 10 s passed: 13 skipped cannot all have been made
    assert (state.missing, state.resets) == (5, 1)
    state.account(0, NOW + 90, NOW + 100)          # seq from 0 again while time goes on: a new outbox
    assert (state.missing, state.resets, state.max_seq) == (5, 2, 0)
    state.account(31, NOW - 50, NOW - 40)          # dated before the latest: a late window, no gap judged
    assert (state.missing, state.resets) == (5, 2)
    # An established camera (latest window a minute ago) cannot claim a month of half-second windows.
    recent = SeqState(max_seq=5, last_end=NOW - 60, missing=0)
    recent.account(2_000_005, NOW, NOW + 0.5)
    assert (recent.missing, recent.resets) == (0, 1)


def test_resets_are_counted_per_camera_in_metrics():
    stats = IngestStats()
    stats.seq_resets.update({("hall", "cam-1"): 1})
    text = render_metrics(stats, [{"venue": "hall", "camera": "cam-2", "state": "online", "missing": 1}])
    assert "emo7ion_seq_resets_total 1" in text
    assert 'emo7ion_camera_seq_resets_total{venue="hall",camera="cam-1"} 1' in text
    assert "emo7ion_windows_missing 1" in text


def test_a_camera_accounts_zone_reaches_the_aggregator_through_venues_file(tmp_path, capsys):
    """``emo7ion broker add-camera ... --zone`` records the zone in the broker directory's venues.toml; the
    aggregator's ``venues_file`` reads it, and its own ``[venues]`` table overrides it camera by camera."""
    try:
        find_tool("mosquitto_passwd")
        find_tool("openssl", package="openssl")
    except BrokerError as missing:
        pytest.skip(str(missing))
    directory = str(tmp_path / "broker")
    assert main(["broker", "init", directory, "--dev"]) == 0
    assert main(["broker", "add-camera", directory, "hall", "cam-1", "--zone", "front"]) == 0
    assert main(["broker", "add-camera", directory, "hall", "cam-2", "--zone", "back"]) == 0
    assert main(["broker", "add-camera", directory, "annex", "cam-1"]) == 0
    assert "zone front" in capsys.readouterr().out
    assert main(["broker", "add-camera", directory, "hall", "cam-3", "--zone", "Front!"]) == 2
    assert "zone 'Front!'" in capsys.readouterr().err
    assert "camera.hall.cam-3" not in (tmp_path / "broker" / "acl").read_text(), "nothing made for a bad zone"
    venues_file = str(tmp_path / "broker" / "venues.toml")
    assert load(None, {"venues_file": venues_file}, environ={}).venues == {"hall": {"cam-1": "front",
                                                                                     "cam-2": "back"}}
    config = load(None, {"venues_file": venues_file, "venues": {"hall": {"cam-2": "bar"}}}, environ={})
    assert config.venues == {"hall": {"cam-1": "front", "cam-2": "bar"}}
    with pytest.raises(ConfigError, match="venues_file"):
        load(None, {"venues_file": str(tmp_path / "nowhere.toml")}, environ={})


def test_zones_quota_and_resets_on_postgresql():
    """The same SQL on PostgreSQL: a declared zone forced onto the camera's row, a first zone kept, a status that
    cannot move a camera, the quota spent once, and a seq jump counted as a reset."""
    from postgres import PostgresUnavailable, ThrowawayPostgres

    try:
        server = ThrowawayPostgres().start()
    except PostgresUnavailable as error:
        pytest.skip(str(error))
    try:
        store = Store(server.create_database("judging"))
        zones = Zones({"hall": {"cam-1": "front"}})
        quota = WindowQuota(backlog_s=25.0, per_day=100)
        result = store.add_windows([window("cam-1", 0, NOW - 30, zone="back"), window("cam-1", 1, NOW - 20),
                                    window("cam-1", 2, NOW - 10), window("cam-1", 3, NOW),
                                    window("cam-2", 0, NOW - 20, venue="annex", zone="bar"),
                                    window("cam-2", 1, NOW - 10, venue="annex", zone="foo")],
                                   received=NOW, zones=zones, quota=quota)
        assert result.stored == 3 and [(w.seq, reason) for w, reason in result.refused] == [
            (0, "zone"), (3, "rate"), (1, "zone")]
        store.set_status(messages.Status(venue="annex", camera="cam-2", state="online", zone="foo",
                                         ts=dt.datetime.fromtimestamp(NOW, dt.UTC), agent="x", model=MODEL), zones)
        assert {(row.venue, row.camera, row.zone) for row in store.cameras()} == {("hall", "cam-1", "front"),
                                                                                 ("annex", "cam-2", "bar")}
        jump = store.add_windows([window("cam-1", 2_000_000, NOW + 20)], received=NOW + 30, zones=zones, quota=quota)
        assert jump.stored == 1 and jump.resets == {("hall", "cam-1"): 1} and missing(store, "cam-1") == 0
        store.close()
    finally:
        server.stop()
