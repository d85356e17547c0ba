"""edge/outbox's acknowledged delivery: pending -> sent (PUBACKed, re-sent with backoff) -> gone (an aggregator
acked it), the delivery modes, the bound on unacknowledged windows, and an outbox file from before the states."""

import logging
import sqlite3

import pytest

from emo7ion.core.service.settings import ConfigError
from emo7ion.edge import config as edge_config
from emo7ion.edge.outbox import Outbox


def payload(seq: int) -> bytes:
    return f'{{"seq": {seq}}}'.encode()


def seqs(entries) -> list[int]:
    return [entry.seq for entry in entries]


def filled(path, n: int, **options) -> Outbox:
    box = Outbox(path, **options)
    for _ in range(n):
        box.add("t", payload)
    return box


def test_a_puback_keeps_the_window_until_an_aggregator_acks_it(tmp_path):
    box = filled(tmp_path / "o.sqlite", 6, delivery="ack")
    for seq in range(4):
        box.broker_took(seq, now=1000.0)
    assert seqs(box.pending()) == [4, 5], "sent windows are not pending any more"
    assert box.depth() == 6 and box.unacked() == 4, "but they stay in the outbox"
    assert box.acknowledge([(1, 2)]) == 2
    assert box.depth() == 4 and box.unacked() == 2
    assert box.acknowledge([(0, 0), (5, 9)]) == 2, "an ack removes what it covers, pending or sent, nothing else"
    assert seqs(box.pending()) == [4] and box.unacked() == 1
    assert box.acknowledge([(0, 2)]) == 0, "acking again is harmless"
    box.close()
    reopened = Outbox(tmp_path / "o.sqlite", delivery="ack")
    assert seqs(reopened.pending()) == [4] and reopened.unacked() == 1, "the states survive a restart"
    assert seqs(reopened.take_due(now=1000.0 + 30)) == [3]


def test_unacknowledged_windows_are_resent_with_a_backoff(tmp_path):
    box = filled(tmp_path / "o.sqlite", 3, delivery="ack", resend_s=30, resend_max_s=200)
    box.broker_took(0, now=1000.0)
    box.broker_took(1, now=1010.0)
    assert box.take_due(now=1029.0) == []
    due = box.take_due(now=1030.0)
    assert seqs(due) == [0] and due[0].payload == payload(0) and due[0].topic == "t"
    assert seqs(box.take_due(now=1045.0)) == [1]
    box.broker_took(0, now=1031.0)  # the re-send's PUBACK keeps the time take_due set
    sent = {0: [1030.0], 1: [1045.0]}
    for now in range(1046, 2000):
        for seq in seqs(box.take_due(now=float(now))):
            sent[seq].append(float(now))
    gaps = [b - a for a, b in zip(sent[0], sent[0][1:], strict=False)]
    assert gaps == [60.0, 120.0, 200.0, 200.0, 200.0], "30 s, then doubling, at most resend_max_s"
    assert seqs(box.pending()) == [2], "a pending window is the sender's, never due"


def test_a_new_connection_makes_every_sent_window_due(tmp_path):
    box = filled(tmp_path / "o.sqlite", 3, delivery="ack")
    for seq in range(3):
        box.broker_took(seq, now=1000.0)
    assert box.take_due(now=1001.0) == []
    assert box.resend_all(now=1001.0) == 3
    assert seqs(box.take_due(now=1001.0, limit=2)) == [0, 1], "in seq order, as many as asked"
    assert seqs(box.take_due(now=1001.0)) == [2]
    assert box.take_due(now=1002.0) == [], "each handed out once per backoff"


def test_auto_releases_on_puback_until_the_first_ack_then_waits(tmp_path, caplog):
    path = tmp_path / "o.sqlite"
    box = filled(path, 4)
    assert box.delivery == "auto" and not box.waits_for_acks
    box.broker_took(0)
    assert seqs(box.pending()) == [1, 2, 3] and box.depth() == 3, "an aggregator that never acks: drained"
    with caplog.at_level(logging.INFO, logger="emo7ion.edge.outbox"):
        assert box.acknowledge([(0, 0)]) == 0
    assert box.waits_for_acks and "first aggregator acknowledgement" in caplog.text
    box.broker_took(1)
    assert box.depth() == 3 and box.unacked() == 1
    box.close()
    reopened = Outbox(path)
    assert reopened.acks_seen and reopened.waits_for_acks, "the first ack is remembered across restarts"
    reopened.broker_took(2)
    assert reopened.unacked() == 2


def test_puback_mode_always_releases_on_puback(tmp_path):
    box = filled(tmp_path / "o.sqlite", 3, delivery="puback")
    box.acknowledge([(0, 0)])
    box.broker_took(1)
    assert box.depth() == 1 and box.unacked() == 0


def test_an_unknown_delivery_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="delivery='acks'"):
        Outbox(tmp_path / "o.sqlite", delivery="acks")


def test_the_unacked_bound_releases_the_oldest_sent_and_counts_them(tmp_path, caplog):
    box = filled(tmp_path / "o.sqlite", 8, delivery="ack", max_unacked=3)
    with caplog.at_level(logging.WARNING, logger="emo7ion.edge.outbox"):
        for seq in range(6):
            box.broker_took(seq, now=1000.0 + seq)
    assert box.unacked() == 3 and box.depth() == 5
    assert box.take_due(now=5000.0) and seqs(box.pending()) == [6, 7], "pending windows are never released"
    assert box.acknowledge([(0, 10)]) == 5
    assert box.take_dropped() == 3, "released windows are counted with the drops (outbox_dropped)"
    assert caplog.text.count("max_unacked") == 1, "one line a minute, not one per window"
    assert "released the oldest 1" in caplog.text


def test_an_outbox_from_before_the_states_opens_and_works(tmp_path):
    """The file an older agent wrote (no state columns, no acks_seen): its windows are pending, seq goes on."""
    path = tmp_path / "o.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        PRAGMA journal_mode=WAL;
        CREATE TABLE outbox (seq INTEGER PRIMARY KEY, created REAL NOT NULL, topic TEXT NOT NULL,
                             payload BLOB NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO meta (key, value) VALUES ('next_seq', 12), ('dropped', 2);
    """)
    old.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?)", [(s, 1000.0 + s, "t", payload(s)) for s in (9, 10, 11)])
    old.commit()
    old.close()
    box = Outbox(path, delivery="ack", clock=lambda: 1100.0)
    assert [(e.seq, e.payload) for e in box.pending()] == [(s, payload(s)) for s in (9, 10, 11)]
    assert not box.acks_seen and box.unacked() == 0 and box.take_dropped() == 2
    assert box.add("t", payload) == 12
    box.broker_took(9)
    assert box.acknowledge([(10, 10)]) == 1
    box.close()
    columns = [row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(outbox)")]
    assert columns == ["seq", "created", "topic", "payload", "state", "tries", "resend_at"]
    again = Outbox(path, delivery="ack", clock=lambda: 1100.0)  # migrating twice changes nothing
    assert seqs(again.pending()) == [11, 12] and again.unacked() == 1 and again.acks_seen
    assert seqs(again.take_due(now=1100.0 + 30)) == [9]


def test_a_trickle_of_resends_reaches_every_window_in_turn(tmp_path):
    """One re-send at a time (the publisher's probe while no aggregator answers) goes to the longest overdue
    window, so the oldest, due again soonest, does not take every turn."""
    box = filled(tmp_path / "o.sqlite", 3, delivery="ack", resend_s=0.5, resend_max_s=1.0)
    for seq in range(3):
        box.broker_took(seq, now=100.0)
    turns = [seqs(box.take_due(now=100.0 + 0.5 * step, limit=1)) for step in range(1, 10)]
    assert turns == [[0], [1], [2]] * 3


@pytest.mark.parametrize(("line", "key"), [('delivery = "acks"', "outbox.delivery"),
                                           ("max_unacked = 0", "outbox.max_unacked"),
                                           ("resend_s = 0", "outbox.resend_s"),
                                           ("resend_s = 60\nresend_max_s = 30", "outbox.resend_max_s")])
def test_a_bad_delivery_key_stops_the_agent_naming_it(tmp_path, line, key):
    path = tmp_path / "edge.toml"
    path.write_text(f'venue = "hall-a"\ncamera = "cam-1"\n[source]\npath = "{tmp_path}"\n[outbox]\n{line}\n')
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        edge_config.load(path, environ={})


def test_the_delivery_keys_reach_the_config(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text(f'venue = "hall-a"\ncamera = "cam-1"\n[source]\npath = "{tmp_path}"\n[outbox]\ndelivery = "ack"\n'
                    'max_unacked = 5\nresend_s = 2\nresend_max_s = 8\n')
    outbox = edge_config.load(path, environ={}).outbox
    assert (outbox.delivery, outbox.max_unacked, outbox.resend_s, outbox.resend_max_s) == ("ack", 5, 2.0, 8.0)
    defaults = edge_config.load(None, {"venue": "hall-a", "camera": "cam-1", "source": {"path": str(tmp_path)}},
                                environ={}).outbox
    assert (defaults.delivery, defaults.max_unacked, defaults.resend_s, defaults.resend_max_s) == \
        ("auto", 10_000, 30.0, 600.0)


def test_an_older_agent_can_still_use_a_migrated_outbox(tmp_path):
    """Going back to an older agent: its statements (four columns, no state) work on the new file, and the new
    agent then finds the older one's window pending."""
    path = tmp_path / "o.sqlite"
    box = filled(path, 3, delivery="ack")
    box.broker_took(0)
    box.close()
    older = sqlite3.connect(path, isolation_level=None)
    assert [seq for (seq,) in older.execute("SELECT seq FROM outbox ORDER BY seq")] == [0, 1, 2], "all re-sent"
    older.execute("INSERT INTO outbox (seq, created, topic, payload) VALUES (3, 1.0, 't', x'00')")
    older.execute("UPDATE meta SET value=4 WHERE key='next_seq'")
    older.execute("DELETE FROM outbox WHERE seq=0")  # its PUBACK
    older.close()
    again = Outbox(path, delivery="ack")
    assert seqs(again.pending()) == [1, 2, 3] and again.unacked() == 0 and again.add("t", payload) == 4
