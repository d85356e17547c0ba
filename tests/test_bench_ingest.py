"""``emo7ion bench ingest`` measures what it claims: its simulated cameras send exactly an agent's payloads, a short
run through a real Mosquitto into a real aggregator process stores every window it sent, and the in-process figures
come from windows actually stored."""

from __future__ import annotations

from emo7ion.bench import ingest
from emo7ion.core import messages


def test_a_simulated_camera_sends_byte_for_byte_what_an_agent_sends():
    make = ingest.WindowPayloads("venue-007", "cam-42")
    for seq, start, end in [(0, 1764748800.0, 1764748805.0), (123456, 1764748805.001, 1764748810.999),
                            (2**40, 1893456000.25, 1893456010.5), (9, 1764748810.9999996, 1764748815.0004)]:
        payload = make(seq, start, end)
        assert payload == messages.window_payload(ingest._bench_window("venue-007", "cam-42", seq, start, end))
        window = messages.parse(messages.camera_topic("venue-007", "cam-42", "counts"), payload)
        assert window.seq == seq
        assert abs(window.start.timestamp() - start) < 1e-3 and abs(window.end.timestamp() - end) < 1e-3


def test_times_are_cut_to_the_millisecond_as_an_agent_writes_them():
    payload = ingest.WindowPayloads("venue-007", "cam-42")(1, 1764748800.9996, 1764748801.9999)
    window = messages.parse(messages.camera_topic("venue-007", "cam-42", "counts"), payload)
    assert window.start.microsecond == 999_000 and window.end.microsecond == 999_000


def test_a_short_run_through_a_real_broker_stores_every_window_it_sent(tmp_path):
    result = ingest.run(cameras=40, period_s=1.0, duration_s=2.0, publishers=1, workdir=tmp_path,
                        drain_timeout_s=30)
    assert result["sent"] >= 40, result
    assert result["stored"] == result["sent"] and result["lost"] == 0, result
    assert result["processes"]["aggregator"]["cpu_us_per_window"] > 0


def test_in_process_figures_come_from_stored_windows(tmp_path):
    result = ingest.in_process(cameras=60, rounds=2, batch_size=50, db=str(tmp_path / "bench.sqlite"))
    assert result["windows"] == result["stored"] == 120, result
    assert result["parse_us"] > 0 and result["store_us"] > 0
