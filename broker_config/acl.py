"""What each identity may publish and read, as Mosquitto ACL rules: a camera writes only its own
topics and reads only its own acknowledgements, the aggregator reads every camera and writes venue mood and
the cameras' acknowledgements, a viewer reads mood. ``migrate`` brings an older ACL file up to these rules."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from emo7ion.core.messages import ACK_KIND, AGGREGATOR_STATUS_ROOT, KINDS, ROOT, MessageError, check_id

DISCOVERY_CONFIGS = "homeassistant/sensor/+/+/config"
"""Home Assistant MQTT discovery under its default prefix (aggregator/discovery.py)."""


def camera_rules(venue: str, camera: str) -> list[str]:
    """Publish its counts, status (its will included) and health and nothing else: no other sub-topic, so a
    camera holds at most three retained messages on the broker. Read only its own ack topic: which of its
    windows an aggregator stored. It may not write an ack (its own or another camera's): a stolen camera
    password cannot make any camera delete windows no aggregator holds."""
    prefix = f"{ROOT}/{check_id(venue, 'venue')}/{check_id(camera, 'camera')}"
    return [*(f"topic write {prefix}/{kind}" for kind in KINDS), f"topic read {prefix}/{ACK_KIND}"]


def aggregator_rules() -> list[str]:
    """Read everything under the root, shared subscriptions included (Mosquitto checks each delivered
    message's own topic), and publish only venue mood, the cameras' acknowledgements, its own availability and
    Home Assistant discovery."""
    return [f"topic read {ROOT}/#", f"topic write {ROOT}/+/mood", f"topic write {ROOT}/+/mood/+",
            f"topic write {ROOT}/+/+/{ACK_KIND}", f"topic write {AGGREGATOR_STATUS_ROOT}/+/status",
            f"topic write {DISCOVERY_CONFIGS}"]


def viewer_rules() -> list[str]:
    """A dashboard (or Home Assistant) reads venue mood, per venue and per zone, the aggregators' availability
    and their discovery configs; nothing from cameras."""
    return [f"topic read {ROOT}/+/mood", f"topic read {ROOT}/+/mood/+", f"topic read {AGGREGATOR_STATUS_ROOT}/+/status",
            f"topic read {DISCOVERY_CONFIGS}"]


def users(acl_file: str | Path) -> set[str]:
    """The usernames that have a block in the ACL file."""
    path = Path(acl_file)
    if not path.is_file():
        raise FileNotFoundError(f"ACL file {path} does not exist")
    return {line.split(None, 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("user ") and len(line.split(None, 1)) == 2}


def append(acl_file: str | Path, username: str, rules: list[str], comment: str) -> None:
    """Add one ``user`` block; a user that already has one keeps it (its rules do not change)."""
    path = Path(acl_file)
    if username in users(path):
        return
    if any(char.isspace() for char in username):
        raise ValueError(f"username {username!r} may not contain spaces (the ACL file is space separated)")
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    block = "\n".join([f"# {comment} (added {stamp})", f"user {username}", *rules])
    text = path.read_text()
    blank_line = "" if not text or text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
    with path.open("a") as handle:
        handle.write(f"{blank_line}{block}\n")


def rules_for(username: str) -> list[str] | None:
    """Today's rules for an account of ours, known by its user name (accounts.py names them); None for others."""
    kind, _, rest = username.partition(".")
    try:
        if kind == "camera" and rest.count(".") == 1:
            return camera_rules(*rest.split("."))
        if kind == "aggregator" and rest:
            return aggregator_rules()
        if kind == "viewer" and rest:
            return viewer_rules()
    except MessageError:
        return None
    return None


def migrated(text: str) -> tuple[str, dict[str, list[str]]]:
    """``text`` with every account's block given the rules of :func:`rules_for` it lacks (added after its last
    rule; nothing is removed or reordered), and what was added, by user name."""
    lines = text.splitlines()
    blocks: list[tuple[str, int, int]] = []  # (user, index of its user line, index of its last rule line)
    for index, line in enumerate(lines):
        words = line.split()
        if words[:1] == ["user"] and len(words) == 2:
            blocks.append((words[1], index, index))
        elif words[:1] in (["topic"], ["pattern"]) and blocks:
            user, start, _ = blocks[-1]
            blocks[-1] = (user, start, index)
    added: dict[str, list[str]] = {}
    for user, start, last in reversed(blocks):  # from the end, so earlier indices stay right
        expected = rules_for(user)
        if expected is None:
            continue
        have = {" ".join(line.split()) for line in lines[start + 1:last + 1]}
        missing = [rule for rule in expected if rule not in have]
        if missing:
            lines[last + 1:last + 1] = missing
            added[user] = missing
    return "\n".join(lines) + ("\n" if lines else ""), dict(reversed(added.items()))


def migrate(acl_file: str | Path, dry_run: bool = False) -> dict[str, list[str]]:
    """Give each account in ``acl_file`` the rules it lacks (the acknowledgement rules of issue 18 for files
    written before them); idempotent. The file is replaced atomically with its mode and owner kept. Returns
    what was (or, with ``dry_run``, would be) added, by user name: empty when the file is up to date."""
    path = Path(acl_file)
    text, added = migrated(path.read_text())
    if added and not dry_run:
        info = path.stat()
        temporary = path.with_name(f".{path.name}.migrating")
        temporary.unlink(missing_ok=True)
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, info.st_mode & 0o777), "w") as out:
            out.write(text)
        if (info.st_uid, info.st_gid) != (os.geteuid(), os.getegid()):
            os.chown(temporary, info.st_uid, info.st_gid)  # the account mosquitto runs as reads it
        os.replace(temporary, path)
    return added
