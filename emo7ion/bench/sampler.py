"""A small sampling profiler for a whole Python process, every thread: ``python -m emo7ion.bench.sampler OUT.txt
-m emo7ion aggregator run ...`` runs the module as ``python -m`` would and, when it exits, writes per thread the
functions that were running (self) and on the stack (inclusive), as shares of that thread's samples.

Why not cProfile: it sees one thread and slows pure-Python code several times, which moves the balance between the
aggregator's network thread (paho), its writer and its mood publisher, the very thing to measure. Sampling every
``EMO7ION_SAMPLE_MS`` (default 5) ms costs the process a few percent. py-spy does this better and is not installed.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
import threading
import time
from collections import Counter
from pathlib import Path


class Sampler:
    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self.self_counts: dict[str, Counter] = {}
        self.inclusive: dict[str, Counter] = {}
        self.samples: Counter = Counter()
        self.idle: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval_s):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                name = names.get(ident, str(ident))
                self.samples[name] += 1
                top = _where(frame)
                if _waiting(frame):
                    self.idle[name] += 1
                self.self_counts.setdefault(name, Counter())[top] += 1
                seen = set()
                while frame is not None:
                    place = _where(frame)
                    if place not in seen:
                        seen.add(place)
                        self.inclusive.setdefault(name, Counter())[place] += 1
                    frame = frame.f_back

    def report(self, top: int = 25) -> str:
        lines = [f"sampling every {1000 * self.interval_s:g} ms; per thread: samples, of which waiting (a blocking "
                 "call: lock, queue, select, sleep)"]
        for name, total in self.samples.most_common():
            lines.append(f"\n== thread {name}: {total} samples, {self.idle[name]} waiting "
                         f"({100 * self.idle[name] / total:.0f}%)")
            lines.append("  self%  incl%  function")
            inclusive = self.inclusive.get(name, Counter())
            selfs = self.self_counts.get(name, Counter())
            for place, count in inclusive.most_common(top):
                lines.append(f"  {100 * selfs[place] / total:5.1f}  {100 * count / total:5.1f}  {place}")
            lines.append("  -- by self time:")
            for place, count in selfs.most_common(top // 2):
                lines.append(f"  {100 * count / total:5.1f}  {100 * inclusive[place] / total:5.1f}  {place}")
        return "\n".join(lines) + "\n"


_BLOCKING = {"wait", "select", "poll", "sleep", "_wait_for_tstate_lock", "acquire", "get", "accept", "recv",
             "_loop", "run_forever", "_run_once"}


def _waiting(frame) -> bool:
    """The innermost Python frame is one that blocks in C (a rough mark: time there is mostly not CPU)."""
    return frame.f_code.co_name in _BLOCKING


def _where(frame) -> str:
    code = frame.f_code
    path = code.co_filename
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1] if path.count("/") > 1 else path
    return f"{path}:{code.co_name}"


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        sys.exit("usage: python -m emo7ion.bench.sampler OUT.txt -m MODULE [ARGS...]")
    out, module = Path(sys.argv[1]), sys.argv[3]
    sampler = Sampler(float(os.environ.get("EMO7ION_SAMPLE_MS", "5")) / 1000)
    started = time.monotonic()

    def write() -> None:
        sampler._stop.set()
        out.write_text(f"{module} {' '.join(sys.argv[4:])}\n{time.monotonic() - started:.1f} s\n" + sampler.report())

    atexit.register(write)
    sampler.start()
    sys.argv = [module, *sys.argv[4:]]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        write()
        atexit.unregister(write)
        raise


if __name__ == "__main__":
    main()
