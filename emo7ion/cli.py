"""The one ``emo7ion`` command. Subcommands import their own dependencies lazily, so ``emo7ion edge``
works on a device without TensorFlow and ``emo7ion --help`` is instant."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from emo7ion import __version__
from emo7ion.commands import aggregator as aggregator_commands
from emo7ion.commands import bench as bench_commands
from emo7ion.commands import broker as broker_commands
from emo7ion.commands import converter as converter_commands
from emo7ion.commands import demo as demo_commands
from emo7ion.commands import edge as edge_commands
from emo7ion.commands import training as training_commands

AREAS = (training_commands, converter_commands, edge_commands, broker_commands, aggregator_commands,
         demo_commands, bench_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emo7ion",
        description="Emo7ion: read the mood of a crowd without identifying anyone. Train and evaluate the "
                    "face-emotion classifier, convert it for devices, run the camera agent, the broker and "
                    "the central aggregator.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'emo7ion COMMAND --help' for the options of each command.")
    parser.add_argument("--version", action="version", version=f"emo7ion {__version__}")
    parser.add_argument("--log-level", default=os.environ.get("EMO7ION_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging detail (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for area in AREAS:
        area.register(commands)
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    from emo7ion.core.runtime import ModelError
    from emo7ion.core.service.errors import UserError

    try:
        return int(args.handler(args) or 0)
    except (FileNotFoundError, FileExistsError, ValueError, ModelError, UserError) as error:
        # the user's to fix: one line, no traceback
        logging.getLogger("emo7ion").debug("failed", exc_info=True)
        print(f"emo7ion {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
