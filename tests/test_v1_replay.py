"""No change on the wire: a recorded v1 stream replayed through the current aggregator yields the same stored rows
and the same published mood (and discovery, status) payloads as the aggregator before issue 13's refactor.

The stream and the golden files are in tests/data/v1_replay/. They were recorded with
tests/record_v1_replay.py (a real Mosquitto, the aggregator in-process on a fresh SQLite file) against commit
495f680, the last one before issue 13 (issue 12's security changes had landed before it), from /work/main:

    git worktree add /tmp/old-agg 495f680
    .venv/bin/python tests/record_v1_replay.py make-stream tests/data/v1_replay/stream.jsonl
    .venv/bin/python tests/record_v1_replay.py replay tests/data/v1_replay/stream.jsonl --tree /tmp/old-agg \\
        --out tests/data/v1_replay

(``--tree`` puts that worktree's folders first on sys.path in the shape pyproject installs them, as
``emo7ion.*``, and checks that ``emo7ion.aggregator`` was imported from it.) 93a6e76, the parent of the commit
that introduced aggregator/views.py, gives byte-identical files too.

Nothing is normalised: the wall clock is pinned to the stream's ``clock`` while the aggregator runs, so the rows'
``received_ts`` and ``last_seen``, the moods' ``ts``, the sliding window and the plausibility checks are fixed by
the recording; the mood publisher's ticks run after each phase has been stored, not on a timer.
"""

import json
from pathlib import Path

import record_v1_replay

DATA = Path(__file__).parent / "data" / "v1_replay"


def test_the_recording_covers_what_a_real_link_delivers_and_todays_encoder_remakes_it():
    """The recording is not trivial: gap, duplicate, out-of-order, withheld, each rejection, moods with a trend.
    It is also still what today's code sends: the stream made now by core.messages' v1 encoder is the recorded
    one byte for byte, so a change on the wire fails here (the golden files alone could not), and every counts
    message in it is accounted for by the golden counters."""
    recorded = (DATA / "stream.jsonl").read_text().splitlines()
    remade = [json.dumps(record) for record in record_v1_replay.make_stream()]
    assert remade == recorded[1:], "today's v1 encoder no longer makes the recorded stream"
    rows = json.loads((DATA / "expected_rows.json").read_text())
    moods = json.loads((DATA / "expected_moods.json").read_text())
    assert rows["ingest"] == {"stored": 39, "duplicates": 1, "statuses": 5, "health": 2,
                              "rejected": {"future": 1, "overlap": 1, "retained": 1, "source": 1}}
    counts_sent = sum(json.loads(line)["topic"].endswith("/counts") for line in recorded[1:])
    assert counts_sent == 39 + 1 + 4, "a counts message of the stream is neither stored, a duplicate nor refused"
    cameras = {(r[0], r[1]): dict(zip(rows["tables"]["cameras"]["columns"], r))
               for r in rows["tables"]["cameras"]["rows"]}
    assert cameras["hall-a", "cam-2"]["missing"] == 1 and cameras["hall-b", "cam-1"]["state"] == "offline"
    published = [json.loads(p) for phase in ("phase 1", "phase 2", "phase 3") for t, p in moods[phase]
                 if "/mood" in t and t.startswith("emo7ion/v1/")]
    assert {m["faces"] > 0 for m in published} == {True, False}
    assert any(m["trend"] is not None for m in published) and any(m["withheld_windows"] for m in published)


def test_a_recorded_v1_stream_gives_the_old_aggregators_rows_and_moods(tmp_path):
    rows, moods = record_v1_replay.replay(DATA / "stream.jsonl", tmp_path)
    expected_rows = json.loads((DATA / "expected_rows.json").read_text())
    expected_moods = json.loads((DATA / "expected_moods.json").read_text())
    rows = json.loads(json.dumps(rows))  # as the golden file holds them (tuples as lists)
    assert rows["ingest"] == expected_rows["ingest"]
    for table, expected in expected_rows["tables"].items():
        assert rows["tables"][table] == expected, table
    assert set(rows["tables"]) == set(expected_rows["tables"])
    for phase, expected in expected_moods.items():
        assert json.loads(json.dumps(moods[phase])) == expected, phase
    assert set(moods) == set(expected_moods)
