"""Prometheus text exposition of the aggregator's counters, written by hand (no client library)."""

from __future__ import annotations


def render_metrics(stats, camera_rows: list[dict]) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value}")

    if stats is not None:
        metric("emo7ion_messages_received_total", "counter", "MQTT messages received on camera topics",
               [("", stats.received)])
        metric("emo7ion_own_output_skipped_total", "counter", "aggregators' mood and ack messages delivered to us "
               "through a shared subscription and skipped", [("", stats.own_output)])
        metric("emo7ion_windows_stored_total", "counter", "windows stored", [("", stats.stored)])
        metric("emo7ion_windows_duplicate_total", "counter", "redelivered windows stored once",
               [("", stats.duplicates)])
        metric("emo7ion_messages_rejected_total", "counter", "messages rejected by validation",
               [(f'{{reason="{reason}"}}', count) for reason, count in sorted(stats.rejected.items())] or [("", 0)])
        metric("emo7ion_acks_sent_total", "counter", "ack messages published to cameras (one per camera per stored "
               "batch)", [("", stats.acks_sent)])
        metric("emo7ion_windows_acked_total", "counter", "windows those acks covered (stored, duplicate or refused)",
               [("", stats.windows_acked)])
        metric("emo7ion_store_errors_total", "counter", "failed store transactions (retried)",
               [("", stats.store_errors)])
        metric("emo7ion_broker_connected", "gauge", "1 while connected to the broker", [("", int(stats.connected))])
        metric("emo7ion_broker_disconnects_total", "counter", "broker connections lost", [("", stats.disconnects)])
        metric("emo7ion_store_writable", "gauge", "0 from a failed store write until one succeeds",
               [("", int(stats.store_ok))])
        metric("emo7ion_rejection_log_suppressed_total", "counter", "rejection log lines left out by the rate limit",
               [("", stats.log_suppressed)])
        resets = sorted(stats.seq_resets.items())
        metric("emo7ion_seq_resets_total", "counter", "camera sequences that restarted: a seq that went back while "
               "time went on (a new outbox) or jumped further than the time passed allows (never counted missing)",
               [("", sum(count for _, count in resets))])
        metric("emo7ion_camera_seq_resets_total", "counter", "sequence restarts per camera (cameras with any)",
               [(f'{{venue="{venue}",camera="{camera}"}}', count) for (venue, camera), count in resets])
        if stats.day_cap:
            metric("emo7ion_camera_windows_day_cap", "gauge", "windows one camera may store per UTC day "
                   "(max_camera_windows_per_day; beyond it refused, reason day_cap)", [("", stats.day_cap)])
            metric("emo7ion_camera_windows_today", "gauge", "windows each camera stored today (UTC, since this "
                   "aggregator started), against the day cap",
                   [(f'{{venue="{venue}",camera="{camera}"}}', count)
                    for (venue, camera), count in sorted(stats.windows_today.items())])
    states: dict[str, int] = {"online": 0, "offline": 0, "unknown": 0}
    for row in camera_rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    missing = [(f'{{venue="{row["venue"]}",camera="{row["camera"]}"}}', row["missing"])
               for row in camera_rows if row.get("missing")]
    metric("emo7ion_windows_missing", "gauge", "windows skipped in the cameras' sequences that never arrived "
           "(dropped on the way, e.g. by a full broker queue; per camera at most the time passed / window length)",
           [("", sum(value for _, value in missing))])
    metric("emo7ion_camera_windows_missing", "gauge", "missing windows per camera (cameras with any)", missing)
    metric("emo7ion_cameras", "gauge", "cameras by state", [(f'{{state="{s}"}}', n) for s, n in sorted(states.items())])
    healths = [(f'{{venue="{row["venue"]}",camera="{row["camera"]}"}}', row["health"]) for row in camera_rows
               if row.get("health")]
    metric("emo7ion_camera_outbox_depth", "gauge", "windows a camera's outbox held at its last health record "
           "(not yet sent, or sent and waiting for an aggregator's acknowledgement)",
           [(labels, health["outbox_depth"]) for labels, health in healths])
    metric("emo7ion_camera_outbox_dropped", "gauge", "windows a camera's outbox gave up between its last two health "
           "records (its bounds, a full disk, or sent windows released past max_unacked unacknowledged)",
           [(labels, health["outbox_dropped"]) for labels, health in healths])
    return "\n".join(lines) + "\n"
