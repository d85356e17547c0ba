"""``emo7ion broker``: make a Mosquitto broker directory and give cameras, aggregators and viewers their
credentials."""

from __future__ import annotations

import argparse
import json
import sys

RELOAD_NOTE = ("A running broker applies this on SIGHUP: kill -HUP <mosquitto pid>, systemctl reload mosquitto, "
               "or Mosquitto.reload() in Python.")


def register(commands) -> None:
    broker = commands.add_parser(
        "broker", help="make a Mosquitto broker directory and its users",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Mosquitto 2.x for Emo7ion: a broker directory with TLS, no anonymous access and\n"
                    "per-identity ACLs. Cameras may publish only under emo7ion/v1/<venue>/<camera>/ and read\n"
                    "only their own .../ack; aggregators read emo7ion/v1/# (shared subscriptions too) and publish\n"
                    "venue mood and the cameras' acks; viewers read venue mood.",
        epilog="typical use:\n"
               "  emo7ion broker init /var/lib/emo7ion-broker --host broker.example.org\n"
               "  emo7ion broker add-aggregator /var/lib/emo7ion-broker central\n"
               "  emo7ion broker add-camera /var/lib/emo7ion-broker lobby cam1\n"
               "  mosquitto -c /var/lib/emo7ion-broker/mosquitto.conf\n"
               "users added to a running broker take effect on SIGHUP.")
    actions = broker.add_subparsers(dest="action", metavar="ACTION", required=True)

    init = actions.add_parser(
        "init", help="write a ready-to-run broker directory",
        description="Write DIR/mosquitto.conf (absolute paths: 'mosquitto -c DIR/mosquitto.conf' runs from "
                    "anywhere), an empty password file, the ACL, a private CA and a server certificate for "
                    "localhost, 127.0.0.1, ::1 and each --host (DIR/certs; give cameras certs/ca.crt), a "
                    "persistence folder and the log file. Keys and the password file are 0600. Plain MQTT "
                    "listens on 127.0.0.1 only; TLS on every interface, or --tls-bind.")
    init.add_argument("directory", metavar="DIR", help="broker directory (created; must be new or empty)")
    init.add_argument("--port", type=int, default=1883, help="plain MQTT port on 127.0.0.1 (default: %(default)s)")
    init.add_argument("--tls-port", type=int, default=8883, help="MQTT over TLS port (default: %(default)s)")
    init.add_argument("--tls-bind", metavar="ADDRESS",
                      help="listen for TLS on this address only (default: every interface; 127.0.0.1 with --dev)")
    init.add_argument("--host", action="append", default=[], metavar="NAME",
                      help="a DNS name or IP address cameras use to reach the broker, added to the server "
                           "certificate (repeatable)")
    init.add_argument("--dev", action="store_true",
                      help="development profile for the demo: every listener on 127.0.0.1, no persistence, "
                           "subscriptions logged; still password-authenticated with the same ACL rules")
    init.add_argument("--user", metavar="ACCOUNT",
                      help="account mosquitto switches to when started as root (default: whoever runs init; "
                           "as root, e.g. --user mosquitto hands the files it opens to that account)")
    init.add_argument("--force", action="store_true",
                      help="start an existing broker directory over: new certificates, users removed")
    init.add_argument("--json", action="store_true", help="end with the directory's paths as one JSON line")
    init.set_defaults(handler=run_init)

    camera = actions.add_parser(
        "add-camera", help="credentials for a camera (publishes its own topics only)",
        description="Create the user camera.VENUE.CAMERA with a random password (hashed by mosquitto_passwd) "
                    "that may publish only under emo7ion/v1/VENUE/CAMERA/ and read only its own "
                    "emo7ion/v1/VENUE/CAMERA/ack, and print the password once.")
    camera.add_argument("directory", metavar="DIR", help="broker directory made by 'emo7ion broker init'")
    camera.add_argument("venue", metavar="VENUE", help="venue id: 1-64 of a-z, 0-9, '-', '_'")
    camera.add_argument("camera", metavar="CAMERA", help="camera id, unique within the venue (same rules)")
    camera.add_argument("--zone", metavar="ZONE",
                        help="the camera's zone, recorded in DIR/venues.toml; an aggregator with venues_file = "
                             "DIR/venues.toml refuses its windows naming any other zone (same id rules)")
    _credential_options(camera)
    camera.set_defaults(handler=run_add_camera)

    aggregator = actions.add_parser(
        "add-aggregator", help="credentials for an aggregator (reads all cameras, publishes mood)",
        description="Create the user aggregator.NAME with a random password that may read emo7ion/v1/# "
                    "(plain or $share/GROUP/... subscriptions) and publish only emo7ion/v1/+/mood, "
                    "emo7ion/v1/+/mood/+ and the cameras' emo7ion/v1/+/+/ack; print the password once.")
    aggregator.add_argument("directory", metavar="DIR", help="broker directory made by 'emo7ion broker init'")
    aggregator.add_argument("name", metavar="NAME", help="aggregator name (1-64 of a-z, 0-9, '-', '_')")
    _credential_options(aggregator)
    aggregator.set_defaults(handler=run_add_aggregator)

    viewer = actions.add_parser(
        "add-viewer", help="credentials for a dashboard (reads venue mood only)",
        description="Create the user viewer.NAME with a random password that may read emo7ion/v1/+/mood and "
                    "emo7ion/v1/+/mood/+ and nothing else; print the password once.")
    viewer.add_argument("directory", metavar="DIR", help="broker directory made by 'emo7ion broker init'")
    viewer.add_argument("name", metavar="NAME", help="viewer name (1-64 of a-z, 0-9, '-', '_')")
    _credential_options(viewer)
    viewer.set_defaults(handler=run_add_viewer)

    migrate = actions.add_parser(
        "migrate-acl", help="give an existing broker directory's users the rules this version writes",
        description="Add to each camera, aggregator and viewer block of DIR/acl the rules 'add-camera', "
                    "'add-aggregator' and 'add-viewer' write today and it lacks (issue 18: a camera reads its own "
                    "emo7ion/v1/VENUE/CAMERA/ack, an aggregator writes emo7ion/v1/+/+/ack). Nothing is removed; "
                    "other users are left alone; running it again changes nothing. Prints what it added "
                    "(docs/migration.md).")
    migrate.add_argument("directory", metavar="DIR", help="broker directory made by 'emo7ion broker init'")
    migrate.add_argument("--dry-run", action="store_true", help="print what would be added, change nothing")
    migrate.set_defaults(handler=run_migrate_acl)


def _credential_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rotate", action="store_true",
                        help="replace the password of an existing user (the old one stops working)")
    parser.add_argument("--json", action="store_true",
                        help='print only {"username": ..., "password": ...} as one JSON line on stdout '
                             "(notes go to stderr)")


def run_init(args: argparse.Namespace) -> int:
    from emo7ion.broker_config import init_broker

    layout = init_broker(args.directory, port=args.port, tls_port=args.tls_port, dev=args.dev,
                         tls_bind=args.tls_bind, hosts=args.host, user=args.user, force=args.force)
    tls_where = layout.tls_bind or "every interface"
    out = sys.stderr if args.json else sys.stdout
    print(f"broker directory {layout.directory} ({'development' if layout.dev else 'production'} profile)", file=out)
    print(f"  config     {layout.conf}", file=out)
    print(f"  listeners  MQTT 127.0.0.1:{layout.port}, MQTT over TLS {tls_where}:{layout.tls_port}", file=out)
    print(f"  CA         {layout.ca_cert}  (copy to cameras; {layout.ca_key.name} stays here)", file=out)
    print(f"  users      none yet: emo7ion broker add-aggregator {layout.directory} NAME; "
          f"emo7ion broker add-camera {layout.directory} VENUE CAMERA", file=out)
    print(f"  run        mosquitto -c {layout.conf}   (started as root it switches to user {layout.user})",
          file=out)
    if layout.user == "root":
        print("  note       started as root, mosquitto keeps running as root; for a production service run "
              "init with --user mosquitto (as root) on a directory that account can reach", file=out)
    if args.json:
        print(json.dumps({"directory": str(layout.directory), "conf": str(layout.conf), "passwd": str(layout.passwd),
                          "acl": str(layout.acl), "ca_cert": str(layout.ca_cert), "log": str(layout.log),
                          "port": layout.port, "tls_port": layout.tls_port, "dev": layout.dev}))
    return 0


def _print_credentials(credentials, what: str, args: argparse.Namespace) -> int:
    notes = sys.stderr if args.json else sys.stdout
    print(f"{what}: {'new password for' if args.rotate else 'added'} user {credentials.username}", file=notes)
    if not args.json:
        print(f"  username  {credentials.username}")
        print(f"  password  {credentials.password}")
    print("The password is shown only now; the broker keeps only its hash.", file=notes)
    print(RELOAD_NOTE, file=notes)
    if args.json:
        print(json.dumps({"username": credentials.username, "password": credentials.password}))
    return 0


def run_add_camera(args: argparse.Namespace) -> int:
    from emo7ion.broker_config import add_camera

    credentials = add_camera(args.directory, args.venue, args.camera, rotate=args.rotate, zone=args.zone)
    where = f" in zone {args.zone} (DIR/venues.toml: the aggregator's venues_file)" if args.zone else ""
    return _print_credentials(credentials, f"camera {args.venue}/{args.camera} may publish under "
                                           f"emo7ion/v1/{args.venue}/{args.camera}/{where}", args)


def run_add_aggregator(args: argparse.Namespace) -> int:
    from emo7ion.broker_config import add_aggregator

    credentials = add_aggregator(args.directory, args.name, rotate=args.rotate)
    return _print_credentials(credentials, f"aggregator {args.name} may read emo7ion/v1/# and publish venue mood",
                              args)


def run_add_viewer(args: argparse.Namespace) -> int:
    from emo7ion.broker_config import add_viewer

    credentials = add_viewer(args.directory, args.name, rotate=args.rotate)
    return _print_credentials(credentials, f"viewer {args.name} may read venue mood", args)


def run_migrate_acl(args: argparse.Namespace) -> int:
    from emo7ion.broker_config import BrokerLayout, acl

    layout = BrokerLayout.load(args.directory)
    with layout.locked():
        added = acl.migrate(layout.acl, dry_run=args.dry_run)
    if not added:
        print(f"{layout.acl}: up to date, nothing changed")
        return 0
    rules = sum(len(lines) for lines in added.values())
    print(f"{layout.acl}: {'would add' if args.dry_run else 'added'} {rules} rule(s) for {len(added)} user(s)")
    for user, lines in added.items():
        for line in lines:
            print(f"  {user}: {line}")
    if not args.dry_run:
        print(RELOAD_NOTE)
    return 0
