"""edge/outbox: order, persistence across kill -9, bounds, a full disk and a corrupt file."""

import logging
import sqlite3
import subprocess
import sys
import textwrap
import time

from emo7ion.core.messages import MAX_SEQ
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
    started = time.time()
    with caplog.at_level(logging.ERROR):
        box = Outbox(path)
    seq = box.add("t", payload)
    assert int(started * 1000) <= seq < MAX_SEQ // 1000, "seq from the time floor, not 0 again"
    aside = list(tmp_path.glob("o.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert "moved aside" in caplog.text and "0 readable pending window(s) salvaged" in caplog.text


def window(seq: int) -> bytes:
    """A payload the size of a real counts window (~300 bytes), so the table spans several pages."""
    return f'{{"seq": {seq}, "counts": "{"x" * 300}"}}'.encode()


def write_and_damage(path, now):
    """60 windows (the first 2 acknowledged), then one leaf page of the outbox table in the middle of the
    file overwritten with garbage, as a bad sector would: SQLite calls the file malformed. The damaged bytes,
    the pending seqs, the seqs on the damaged page and the old file's next seq."""
    box = Outbox(path, clock=lambda: now[0])
    for _ in range(60):
        box.add("t", window)
        now[0] += 1.0  # one window a second
    box.ack(0)
    box.ack(1)
    box.close()
    db = sqlite3.connect(path)
    leaves = [page for (page,) in db.execute("SELECT pageno FROM dbstat WHERE name='outbox' AND pagetype='leaf' "
                                             "ORDER BY pageno")]
    db.close()
    assert len(leaves) >= 4
    damaged_page = leaves[len(leaves) // 2]
    data = bytearray(path.read_bytes())
    data[(damaged_page - 1) * 4096:damaged_page * 4096] = b"\xa5" * 4096
    path.write_bytes(bytes(data))
    return bytes(data), list(range(2, 60)), 60


def test_a_corrupt_outbox_keeps_its_readable_windows_and_seq_goes_on(tmp_path, caplog):
    path = tmp_path / "o.sqlite"
    now = [time.time()]
    damaged, pending, old_next = write_and_damage(path, now)
    with caplog.at_level(logging.ERROR):
        box = Outbox(path, clock=lambda: now[0])
    salvaged = box.pending(limit=1000)
    seqs = [e.seq for e in salvaged]
    assert 0 < len(seqs) < len(pending), "some windows are on the damaged page, the rest are salvaged"
    assert seqs == sorted(seqs) and set(seqs) <= set(pending)
    assert seqs[0] == 2 and seqs[-1] == 59, "windows on either side of the damaged page"
    assert all(e.payload == window(e.seq) and e.topic == "t" for e in salvaged), "payloads intact"
    aside = [p for p in tmp_path.glob("o.sqlite.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == damaged, "the damaged file is kept as it was"
    assert f"{len(seqs)} readable pending window(s) salvaged" in caplog.text and str(aside[0]) in caplog.text
    assert caplog.text.count("moved aside") == 1
    seq = box.add("t", window)
    assert seq > max(seqs) and seq >= old_next and seq >= int(now[0] * 1000)
    assert box.pending(limit=1000)[-1].seq == seq
    box.close()
    reopened = Outbox(path, clock=lambda: now[0])
    assert [e.seq for e in reopened.pending(limit=1000)] == seqs + [seq], "the fresh outbox is a normal one"
    assert reopened.add("t", window) == seq + 1


def test_seq_stays_monotonic_across_two_lost_outboxes(tmp_path):
    """The second loss leaves nothing readable (header gone): the time floor alone keeps seq going up, as a
    real agent makes at most one window a second."""
    path = tmp_path / "o.sqlite"
    now = [time.time()]
    path.write_bytes(b"garbage" * 1000)
    box = Outbox(path, clock=lambda: now[0])
    first = [box.add("t", window) for _ in range(5)]
    box.close()
    now[0] += 10.0  # ten seconds later (the agent made 5 windows of 1 s and stopped)
    path.write_bytes(b"garbage" * 1000)
    box = Outbox(path, clock=lambda: now[0])
    again = box.add("t", window)
    assert first == list(range(first[0], first[0] + 5)) and again > first[-1]
    assert box.pending() and box.pending()[0].seq == again
