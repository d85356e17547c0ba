"""The shipped systemd units state their file-descriptor limit (issue 20 part 5): with the usual 1024, 1,100
slow-loris connections once took the aggregator's API down. ``systemd-analyze verify`` checks their syntax where
systemd is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = sorted(p for p in ROOT.glob("*/deploy/*.service"))


def test_every_unit_is_found():
    assert {p.name for p in UNITS} >= {"emo7ion-edge.service", "emo7ion-aggregator.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_each_unit_sets_limit_nofile_in_its_service_section(unit):
    text = unit.read_text()
    service = text.split("[Service]", 1)[1].split("\n[", 1)[0]
    limit = re.search(r"^LimitNOFILE=(\d+)$", service, re.M)
    assert limit, f"{unit.name}: no LimitNOFILE= in [Service]"
    assert int(limit.group(1)) >= 4096


def test_the_aggregators_limit_leaves_the_connection_guard_in_charge():
    from emo7ion.aggregator import http_guard
    from emo7ion.aggregator.config import AggregatorConfig

    text = (ROOT / "aggregator" / "deploy" / "emo7ion-aggregator.service").read_text()
    nofile = int(re.search(r"^LimitNOFILE=(\d+)$", text, re.M).group(1))
    default = AggregatorConfig().max_connections
    assert http_guard.connection_cap(default, nofile=nofile) == default


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_finds_no_syntax_error(unit, tmp_path):
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text())
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True,
                            timeout=60)
    # Paths of the target machine (the venv, the user) do not exist here: only syntax errors count.
    errors = [line for line in result.stderr.splitlines()
              if re.search(r"Unknown (key|section|lvalue)|Invalid|Failed to parse|syntax", line, re.I)]
    assert not errors, result.stderr
