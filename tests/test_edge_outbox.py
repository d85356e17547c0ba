"""edge/outbox: order, persistence across kill -9, bounds, a full disk and a corrupt file."""

import logging
import subprocess
import sys
import textwrap

from emo7ion.edge.outbox import Outbox


def payload(seq: int) -> bytes:
    return f'{{"seq": {seq}}}'.encode()


def test_sequence_numbers_survive_reopen(tmp_path):
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    assert [box.add("t", payload) for _ in range(3)] == [0, 1, 2]
    box.ack(0)
    box.close()
    box = Outbox(path)
    assert box.add("t", payload) == 3
    assert [e.seq for e in box.pending()] == [1, 2, 3]
    assert [e.seq for e in box.pending(after_seq=1, limit=1)] == [2]
    assert box.pending()[0].payload == payload(1)


def test_kill_9_loses_nothing_accepted(tmp_path):
    path = tmp_path / "o.sqlite"
    script = textwrap.dedent(f"""
        import os, signal
        from emo7ion.edge.outbox import Outbox
        box = Outbox({str(path)!r})
        for _ in range(25):
            box.add("t", lambda seq: b"w%d" % seq)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert result.returncode == -9
    box = Outbox(path)
    assert [e.seq for e in box.pending(limit=100)] == list(range(25))
    assert box.add("t", payload) == 25


def test_bounds_drop_the_oldest_and_report_it(tmp_path):
    now = [1000.0]
    box = Outbox(tmp_path / "o.sqlite", max_windows=5, max_age_s=100, clock=lambda: now[0])
    for _ in range(8):
        box.add("t", payload)
    assert box.depth() == 5 and [e.seq for e in box.pending()] == [3, 4, 5, 6, 7]
    assert box.take_dropped() == 3 and box.take_dropped() == 0
    now[0] += 150  # everything is now older than max_age_s
    box.add("t", payload)
    assert [e.seq for e in box.pending()] == [8]
    assert box.take_dropped() == 5


def test_full_disk_is_survived_and_recovered(tmp_path, caplog):
    box = Outbox(tmp_path / "o.sqlite")
    page_count = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count={page_count}")  # SQLite now answers SQLITE_FULL, as on a full disk
    big = b"x" * 20000
    with caplog.at_level(logging.ERROR):
        results = [box.add("t", lambda seq: big) for _ in range(3)]
    assert results == [None, None, None]
    assert "outbox write failed" in caplog.text
    box._db.execute("PRAGMA max_page_count=1073741823")  # space returns
    assert box.add("t", lambda seq: big) == 0
    assert box.take_dropped() == 3


def test_corrupt_file_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not a database" * 200)
    with caplog.at_level(logging.ERROR):
        box = Outbox(path)
    assert box.add("t", payload) == 0
    aside = list(tmp_path.glob("o.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert "moved aside" in caplog.text
