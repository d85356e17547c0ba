"""``aggregator run`` settles the garbage collector once it has started (core/service/heap.py): its start-up objects
frozen out of the collector's sight and the thresholds raised; a library import or a test run is left alone."""

from __future__ import annotations

import gc
import subprocess
import sys

from emo7ion.core.service import heap


def test_settling_freezes_what_exists_and_raises_the_thresholds_in_its_own_process():
    script = ("import gc; from emo7ion.core.service import heap; before = gc.get_freeze_count(); "
              "heap.settle_for_throughput(); print(before, gc.get_freeze_count(), *gc.get_threshold())")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    before, frozen, *thresholds = map(int, result.stdout.split())
    assert before == 0 and frozen > 1000, (before, frozen)
    assert tuple(thresholds) == heap.THRESHOLDS
    assert thresholds[0] > gc.get_threshold()[0], "importing the module changed nothing in this process"


def test_the_aggregator_command_settles_the_heap_after_the_service_started():
    import inspect

    from emo7ion.commands import aggregator

    source = inspect.getsource(aggregator.run_aggregator)
    assert source.index("service.start()") < source.index("heap.settle_for_throughput()") < source.index(
        "stopping.wait(")
