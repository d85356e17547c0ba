"""Shared fixtures: a tiny synthetic FER-style dataset whose classes a CNN can learn in one epoch, a model
trained and converted on it once per test session, and a live aggregator. Plain helpers are in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from helpers import LiveAggregator, tiny_run_config, write_split  # noqa: E402

SLOW_FIXTURES = {"tiny_model": 65, "converted": 21}
"""Session fixtures that train (a real Keras run) or convert (every TFLite variant) a model: any test using one
is ``slow``, since in a run without the slow tests the first test to ask for it pays the whole cost.
Seconds measured with ``--durations`` on the shared 2-core machine of 2026-12-02 (busy: other runs at the time)."""

SLOW_TESTS = {
    # training and search (tiny data, but real epochs)
    "test_train.py::test_time_budget_ends_the_cosine_inside_the_budget": 35,
    "test_tune.py::test_tune_resumes_and_writes_best_hparams": 28,
    # property tests: hundreds of generated payloads, some through a live aggregator
    "test_payload_properties.py::test_any_json_in_any_field_is_rejected_or_consistent": 31,
    "test_payload_properties.py::test_a_window_with_one_hostile_field_is_rejected": 29,
    "test_payload_properties.py::test_random_bytes_never_raise_anything_but_message_error": 24,
    "test_payload_properties.py::test_every_valid_window_is_accepted_and_round_trips": 15,
    "test_payload_properties.py::test_a_valid_payload_on_the_wrong_topic_is_rejected": 9,
    "test_payload_properties.py::test_every_valid_status_and_health_is_accepted_and_round_trips": 5,
    "test_api_bad_input.py::test_generated_queries_are_200_or_a_clear_4xx": 16,
    # several aggregator processes, PostgreSQL, kills and restarts
    "test_scale_out.py::test_killed_aggregator_loses_nothing": 24,
    "test_scale_out.py::test_postgresql_restart_loses_nothing": 22,
    "test_scale_out.py::test_two_aggregators_share_the_stream_over_one_sqlite_file": 21,
    "test_scale_out.py::test_two_aggregators_share_the_stream_over_postgresql": 21,
    "test_scale_out.py::test_burst_ingest_rate": 16,
    # faults injected into a live system: repeated kills, cuts and restarts
    "test_faults.py::test_aggregator_away_while_the_broker_is_sigkilled": 32,
    "test_faults.py::test_postgresql_restarted_under_two_aggregators_sharing_a_subscription": 25,
    "test_faults.py::test_broker_sigkilled_five_times_under_twenty_agents": 23,
    "test_faults.py::test_aggregator_session_expiring_with_windows_queued": 22,
    "test_faults.py::test_partition_cut_and_restored_several_times": 16,
    "test_faults.py::test_aggregator_kill_9_then_the_session_delivers_the_backlog": 12,
    "test_faults.py::test_full_outbox_disk_keeps_classifying_reports_drops_and_recovers": 7,
    "test_hostile_camera.py::test_must_show_2_zone_hopping_creates_nothing_beyond_the_declared_zones": 17,
    "test_hostile_camera.py::test_a_burst_while_the_aggregator_is_away_is_queued_whole": 12,
    "test_actionable_errors.py::test_untrusted_and_absent_brokers_are_named_and_retried": 11,
    "test_edge_acks.py::test_end_to_end_a_broker_that_lost_what_it_took_still_loses_no_window": 11,
    "test_edge_acks.py::test_a_window_the_broker_took_but_no_aggregator_acked_stays_and_is_resent": 9,
    "test_edge_agent.py::test_broker_outage_loses_nothing": 10,
    "test_edge_agent.py::test_agent_killed_with_a_backlog_resends_it": 9,
    "test_edge_agent.py::test_one_person_alone_for_many_windows_never_has_their_emotion_published": 7,
    # whole deployments: the README's steps, the demo, a browser, a fresh venv
    "test_readme_deploy.py::test_readme_deployment_steps_deliver_mood_to_a_viewer": 12,
    "test_dashboard.py::test_dashboard_shows_venue_mood_and_follows_it_live": 9,
    "test_demo.py::test_demo_end_to_end": 6,
    "test_v1_replay.py::test_a_recorded_v1_stream_gives_the_old_aggregators_rows_and_moods": 6,
    "test_detect_int8.py::test_cli_detector_parity_prints_the_table": 5,
    "test_wheel_install.py": None,  # pip installs the wheel into fresh virtual environments
}
"""Tests of 5 s or more (seconds as measured, see SLOW_FIXTURES; None: long by design, not measured), keyed by
file::name (parametrized cases share their name) or by file. ``pytest -m "not slow"`` leaves them out."""


def pytest_collection_modifyitems(config, items):
    """Mark the slow tests. A SLOW_TESTS key naming a function its (collected) module lacks is an error, so the
    list cannot go stale when a test is renamed."""
    modules = {}
    for item in items:
        file = Path(item.path).name
        modules.setdefault(file, getattr(item, "module", None))
        name = getattr(item, "originalname", item.name)
        if {f"{file}::{name}", file} & SLOW_TESTS.keys() or SLOW_FIXTURES.keys() & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
    stale = [key for key in SLOW_TESTS if "::" in key and key.split("::")[0] in modules
             and not hasattr(modules[key.split("::")[0]], key.split("::")[1])]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py SLOW_TESTS names tests that do not exist: {', '.join(stale)}")



@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """``<root>/train`` (40 faces a class) and ``<root>/val`` (12 a class)."""
    root = tmp_path_factory.mktemp("tiny-fer")
    write_split(root / "train", 40, seed=1)
    write_split(root / "val", 12, seed=2)
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tmp_path_factory) -> Path:
    """An edge model trained for two epochs on the tiny data (a real Keras training run); its run folder
    (checkpoint, state, history) is ``tiny_model.parent``."""
    from emo7ion.training.train import train

    out = tmp_path_factory.mktemp("tiny-run")
    summary = train(tiny_run_config(tiny_data, out))
    return Path(summary["model"])


@pytest.fixture(scope="session")
def converted(tiny_model, tiny_data, tmp_path_factory) -> dict:
    """Every TFLite variant of the tiny model, made by the real converter, with its report."""
    from emo7ion.converter.convert import convert

    out = tmp_path_factory.mktemp("tiny-convert") / "out"
    report = convert(tiny_model, tiny_data, out, calibration=70, max_drop=100.0, progress=False)
    return {"out": out, "report": report, "stem": tiny_model.stem}


@pytest.fixture
def short_converter(monkeypatch):
    """The real converter limited to the two variants its parity check reads (float32, int8) and to short
    speed runs. For tests of what surrounds a conversion (a broken calibration, a model trained on another
    backend): the four variants and their speed figures are the ``converted`` fixture's to prove."""
    from emo7ion.converter import parity, variants

    measure = parity.faces_per_second
    monkeypatch.setattr(variants, "VARIANTS", ("float32", "int8"))
    monkeypatch.setattr(parity, "faces_per_second", lambda predict, faces, batch, **_: measure(
        predict, faces, batch, min_faces=2 * batch, min_seconds=0.0))


@pytest.fixture
def live_aggregator(tmp_path):
    live = LiveAggregator(tmp_path)
    yield live
    live.close()
