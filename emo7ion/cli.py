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
    """Run one command. The one place a failure becomes one line and exit status 2: the error family of
    ``core.service.errors`` (UserError and its subclasses), the contract's ModelError and MessageError, missing
    or existing files, bad values and files this account may not touch. Nothing below prints and exits itself."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    from emo7ion.core.runtime import ModelError
    from emo7ion.core.service.errors import UserError

    try:
        return int(args.handler(args) or 0)
    except (FileNotFoundError, FileExistsError, ValueError, ModelError, UserError) as error:
        return user_error(args.command, str(error))
    except PermissionError as error:  # a file or folder this account may not touch
        where = f"{error.strerror}: {error.filename}" if error.filename else str(error)
        return user_error(args.command, f"{where} (run as its owner or as root)")
    except KeyboardInterrupt:
        return 130


def user_error(command: str, message: str) -> int:
    """The user's to fix: one line on stderr, no traceback (it is in the log at DEBUG), exit status 2."""
    logging.getLogger("emo7ion").debug("failed", exc_info=True)
    print(f"emo7ion {command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
