"""Ingest saturation on PostgreSQL: a throwaway cluster (tests/postgres.py) on this machine, one empty database per
step, ``emo7ion bench ingest``'s run with one and two aggregators; prints the bench's table rows.

    .venv/bin/python scripts/bench_ingest_postgres.py [CAMERAS:AGGREGATORS ...]
    (default: 25000:1 25000:2 40000:2 50000:2)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from postgres import ThrowawayPostgres  # noqa: E402  (the tests' helper, found above)

from emo7ion.bench import ingest  # noqa: E402


def main(argv: list[str]) -> int:
    steps = [tuple(int(part) for part in step.split(":")) for step in argv or ["25000:1", "25000:2", "40000:2",
                                                                                 "50000:2"]]
    server = ThrowawayPostgres().start()
    try:
        rows = []
        for i, (cameras, aggregators) in enumerate(steps):
            rows.append(ingest.run(cameras=cameras, duration_s=20, aggregators=aggregators,
                                   db=server.create_database(f"bench{i}")))
            print(ingest.table(rows[-1:]).splitlines()[-1], flush=True)
        print(ingest.table(rows))
        return 1 if any(row["lost"] for row in rows) else 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
