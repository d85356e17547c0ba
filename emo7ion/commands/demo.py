"""``emo7ion demo``: the whole system on this machine, with simulated crowds."""

from __future__ import annotations

import argparse


def register(commands) -> None:
    demo = commands.add_parser(
        "demo", help="run a local broker, simulated cameras, the aggregator and the live dashboard",
        description="Start an authenticated Mosquitto (the system binary) on loopback, the aggregator on SQLite, "
                    "and five edge agents in two venues. The agents run the real face detector and the shipped "
                    "int8 classifier on crowd frames composed from real FER2013 faces (or on --source for the "
                    "first camera). Prints the dashboard URL and runs until Ctrl-C or --duration.")
    demo.add_argument("--port", type=int, default=8080, help="dashboard/API port (default: %(default)s; 0 = any)")
    demo.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    demo.add_argument("--source", help="a camera index, stream URL, video file or image folder for the first camera")
    demo.add_argument("--fps", type=float, default=0.5, help="frames per second per camera (default: %(default)s)")
    demo.add_argument("--window", type=float, default=10.0, help="seconds per window (default: %(default)s)")
    demo.add_argument("--workdir", help="keep the broker, database and outboxes here (default: a temp folder)")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from emo7ion.core.service import stopping
    from emo7ion.demo.run import Demo, make_workdir

    demo = Demo(make_workdir(args.workdir), port=args.port, source=args.source, fps=args.fps, window_s=args.window)
    stopping.stop_on_signals(demo.stop)
    try:
        demo.start()
        print(f"\nEmo7ion demo running: dashboard {demo.url}/  (API docs {demo.url}/docs)\n"
              f"{len(demo.agents)} cameras in 2 venues; files in {demo.workdir}. Ctrl-C to stop.\n", flush=True)
        demo.wait(args.duration)
    finally:
        demo.shutdown()
    return 0
