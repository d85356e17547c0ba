"""The only contract between a device and the centre: MQTT topics and the versioned JSON payloads.

Devices build messages with the ``*_payload`` functions; the aggregator accepts nothing that
:func:`parse` rejects. Version 1 is strict: unknown fields, wrong types, out-of-range numbers and
inconsistent counts are errors, so nothing invalid is ever stored.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any

from emo7ion.core import emotions

VERSION = 1
"""The topic tree's version and the version of every payload but a camera's counts."""
COUNTS_VERSION = 2
"""Counts with people (issue 17): v1's fields plus people, entered, votes, in_view, dwell_s, ended. The
aggregator reads v1 and v2 counts, so cameras that were never updated keep being served."""
COUNTS_VERSIONS = (1, COUNTS_VERSION)
ROOT = f"emo7ion/v{VERSION}"
MAX_PAYLOAD_BYTES = 4096
MAX_COUNT = 100_000
"""Faces in one window of one camera: far above any real frame rate times window length."""
MAX_WINDOW_SECONDS = 3600
MAX_SEQ = 2**53 - 1
MAX_DWELL_S = 7 * 86400
"""The longest time in view a window may report for a person: a week, far beyond any event."""

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KINDS = ("counts", "status", "health")


class MessageError(ValueError):
    """A topic or payload outside the schema; the text says which field and why, ``reason`` the kind
    (topic, size, json, version, source, schema) for counting rejections."""

    def __init__(self, message: str, reason: str = "schema"):
        super().__init__(message)
        self.reason = reason


def check_id(value: Any, what: str) -> str:
    """Venue, camera and zone ids: lowercase letters, digits, '-' and '_' (no MQTT wildcards or '/')."""
    if not isinstance(value, str) or not _ID.fullmatch(value):  # match() would let "hall-a\n" through
        raise MessageError(f"{what} {value!r} must be 1-64 of a-z, 0-9, '-', '_' and start with a letter or digit")
    return value


RESERVED_CAMERA_IDS = frozenset({"mood"})
"""``emo7ion/v1/{venue}/mood/...`` carries the venue mood, so no camera may be called 'mood'."""


def check_camera(value: Any) -> str:
    check_id(value, "camera")
    if value in RESERVED_CAMERA_IDS:
        raise MessageError(f"camera id {value!r} is reserved")
    return value


def is_mood_topic(topic: str) -> bool:
    parts = topic.split("/")
    return len(parts) in (4, 5) and "/".join(parts[:2]) == ROOT and parts[3] == "mood"


def camera_topic(venue: str, camera: str, kind: str) -> str:
    if kind not in KINDS:
        raise MessageError(f"unknown topic kind {kind!r}; expected one of {', '.join(KINDS)}")
    return f"{ROOT}/{check_id(venue, 'venue')}/{check_camera(camera)}/{kind}"


def camera_client_id(venue: str, camera: str) -> str:
    """A camera's MQTT client id and broker user name, ``camera.{venue}.{camera}``: unique per venue and camera
    (ids cannot hold '.'), and what a broker with ``use_username_as_clientid`` enforces anyway."""
    return f"camera.{check_id(venue, 'venue')}.{check_camera(camera)}"


def mood_topic(venue: str, zone: str | None = None) -> str:
    base = f"{ROOT}/{check_id(venue, 'venue')}/mood"
    return base if zone is None else f"{base}/{check_id(zone, 'zone')}"


SUBSCRIPTION = f"{ROOT}/+/+/+"
"""What an aggregator subscribes to: every camera's counts, status and health."""


AGGREGATOR_STATUS_ROOT = "emo7ion/aggregator"
"""Outside the v1 tree: ``{AGGREGATOR_STATUS_ROOT}/{client_id}/status`` is "online" or "offline" (the
aggregator's retained last will), what Home Assistant's availability follows."""


def aggregator_status_topic(client_id: str) -> str:
    if not client_id or any(char in client_id for char in "/+#\0"):
        raise MessageError(f"aggregator client id {client_id!r} cannot be part of a topic (no '/', '+', '#')")
    return f"{AGGREGATOR_STATUS_ROOT}/{client_id}/status"


def parse_topic(topic: str) -> tuple[str, str, str]:
    """(venue, camera, kind) of a camera topic, or MessageError for anything else."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != ROOT or parts[4] not in KINDS:
        raise MessageError(f"topic {topic!r} is not {ROOT}/<venue>/<camera>/<{'|'.join(KINDS)}>", "topic")
    return check_id(parts[2], "venue"), check_camera(parts[3]), parts[4]


def utc_iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any, field: str) -> dt.datetime:
    if not isinstance(value, str) or not value.endswith("Z") or len(value) > 40:
        raise MessageError(f"{field} must be an ISO 8601 UTC time ending in 'Z', got {value!r}")
    try:
        moment = dt.datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError as error:
        raise MessageError(f"{field} {value!r} is not an ISO 8601 time") from error
    # A date alone ("2024-01-01Z") parses naive; finer than milliseconds does not survive utc_iso.
    if moment.utcoffset() != dt.timedelta(0) or moment.microsecond % 1000:
        raise MessageError(f"{field} {value!r} must be a UTC date and time to at most the millisecond")
    return moment


@dataclass(frozen=True)
class Window:
    """One camera's emotion counts over one window; counts is None when withheld for privacy.

    A v2 window (``has_people``) also says how many distinct people the camera saw (tracks, never their ids),
    how many of them were new, each person's one vote, the mean faces per frame and the median time in view of
    the people who left. When withheld, every emotion figure (counts, votes, mean_confidence) is None.
    """

    venue: str
    camera: str
    seq: int
    start: dt.datetime
    end: dt.datetime
    frames: int
    faces: int
    counts: dict[str, int] | None
    mean_confidence: float | None
    model: dict[str, str]
    zone: str | None = None
    people: int | None = None
    """Distinct people (confirmed tracks) seen in the window; None for a v1 window."""
    entered: int | None = None
    """People first counted in this window: summed over windows, people seen without counting one who lingers
    once per window."""
    votes: dict[str, int] | None = None
    """One vote per person (the argmax of the person's averaged class probabilities); None when withheld."""
    in_view: float | None = None
    """Mean faces per analysed frame."""
    dwell_s: float | None = None
    """Median seconds in view of the people whose track ended in this window; None when nobody left."""
    ended: int | None = None
    """People whose track ended in this window (the weight of ``dwell_s``)."""

    @property
    def withheld(self) -> bool:
        return self.counts is None

    @property
    def has_people(self) -> bool:
        return self.people is not None


@dataclass(frozen=True)
class Status:
    venue: str
    camera: str
    state: str
    ts: dt.datetime
    agent: str | None
    model: dict[str, str] | None
    zone: str | None = None


@dataclass(frozen=True)
class Health:
    venue: str
    camera: str
    ts: dt.datetime
    fps: float
    inference_ms: float
    skipped_frames: int
    outbox_depth: int
    outbox_dropped: int
    uptime_s: float
    source_ok: bool


@dataclass(frozen=True)
class Mood:
    """A venue's (or zone's) mood over the sliding window, as the aggregator publishes it retained on
    :func:`mood_topic`. ``shares``, ``dominant`` and ``positivity`` are None when no face was counted;
    ``trend`` also when the previous window had none.

    The people figures (issue 17) are None unless a camera of the venue (or zone) sent a v2 window (with
    people) in the period; only then does the payload carry them, so a venue of v1 cameras publishes the v1 mood
    byte for byte. ``people_in_view``: the sum over the online cameras of the mean faces per frame in each one's
    latest window. ``people_seen``: people counted by the cameras in the period (each camera's people already in
    view when the period began plus those who entered since), a person seen by two cameras counting twice.
    ``votes``: the people's votes the shares were made of (one per person per window). ``dwell_s``: the mean of
    the windows' median times in view of the people who left, weighted by how many left (None when nobody left).
    """

    venue: str
    zone: str | None
    ts: dt.datetime
    window_s: float
    faces: int
    cameras_online: int
    shares: dict[str, float] | None
    dominant: str | None
    positivity: float | None
    trend: float | None
    withheld_windows: int
    people_in_view: float | None = None
    people_seen: int | None = None
    votes: int | None = None
    dwell_s: float | None = None

    @property
    def has_people(self) -> bool:
        return self.people_seen is not None

    def document(self) -> dict:
        """The JSON object served by the API (the payload without ``v`` and ``type``); the people keys only when
        the venue has people data in the period."""
        body = {"venue": self.venue, "zone": self.zone, "ts": utc_iso(self.ts), "window_s": self.window_s,
                "faces": self.faces, "cameras_online": self.cameras_online,
                "shares": None if self.shares is None else {label: self.shares[label] for label in emotions.LABELS},
                "dominant": self.dominant, "positivity": self.positivity, "trend": self.trend,
                "withheld_windows": self.withheld_windows}
        if self.has_people:
            body.update({"people_in_view": self.people_in_view, "people_seen": self.people_seen,
                         "votes": self.votes, "dwell_s": self.dwell_s})
        return body

    def same_as(self, other: Mood | None) -> bool:
        """Equal but for the time it was computed: nothing new to push."""
        return other is not None and replace(self, ts=other.ts) == other


def mood_payload(mood: Mood) -> bytes:
    return _dump({"v": VERSION, "type": "mood", **mood.document()})


def window_payload(window: Window) -> bytes:
    body = {"v": VERSION, "type": "counts", "venue": window.venue, "camera": window.camera, "zone": window.zone,
            "seq": window.seq, "start": utc_iso(window.start), "end": utc_iso(window.end), "frames": window.frames,
            "faces": window.faces, "withheld": window.withheld,
            "counts": None if window.counts is None else {label: window.counts[label] for label in emotions.LABELS},
            "mean_confidence": None if window.mean_confidence is None else round(window.mean_confidence, 4),
            "model": window.model}
    if window.has_people:
        body["v"] = COUNTS_VERSION
        body.update({
            "people": window.people, "entered": window.entered,
            "votes": None if window.votes is None else {label: window.votes[label] for label in emotions.LABELS},
            "in_view": round(window.in_view, 3),
            "dwell_s": None if window.dwell_s is None else round(window.dwell_s, 1), "ended": window.ended})
    return _dump(body)


def status_payload(status: Status) -> bytes:
    return _dump({"v": VERSION, "type": "status", "venue": status.venue, "camera": status.camera,
                  "zone": status.zone, "state": status.state, "ts": utc_iso(status.ts), "agent": status.agent,
                  "model": status.model})


def health_payload(health: Health) -> bytes:
    return _dump({"v": VERSION, "type": "health", "venue": health.venue, "camera": health.camera,
                  "ts": utc_iso(health.ts), "fps": round(health.fps, 3), "inference_ms": round(health.inference_ms, 3),
                  "skipped_frames": health.skipped_frames, "outbox_depth": health.outbox_depth,
                  "outbox_dropped": health.outbox_dropped, "uptime_s": round(health.uptime_s, 1),
                  "source_ok": health.source_ok})


def _dump(body: dict) -> bytes:
    data = json.dumps(body, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise MessageError(f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    return data


# ---- validation ---------------------------------------------------------------------------------

def _int(body: dict, field: str, low: int, high: int) -> int:
    value = body.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MessageError(f"{field} must be an integer in {low}..{high}, got {value!r}")
    return value


def _float(body: dict, field: str, low: float, high: float, optional: bool = False) -> float | None:
    value = body.get(field)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high \
            or not math.isfinite(value):  # range first: isfinite(10**400) raises OverflowError
        raise MessageError(f"{field} must be a number in {low}..{high}, got {value!r}")
    return float(value)


def _fields(body: dict, required: set[str], optional: set[str] = frozenset()) -> None:
    missing = required - body.keys()
    if missing:
        raise MessageError(f"missing field(s): {', '.join(sorted(missing))}")
    unknown = body.keys() - required - optional
    if unknown:
        raise MessageError(f"unknown field(s): {', '.join(sorted(unknown))}")


def _text(value: Any, limit: int) -> bool:
    """A printable string of at most ``limit`` characters: no lone surrogates (which no database can store
    and no JSON response can encode) and no control characters (PostgreSQL refuses NUL)."""
    return isinstance(value, str) and len(value) <= limit and value.isprintable()


def _model(value: Any, optional: bool = False) -> dict[str, str] | None:
    if value is None and optional:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("sha256"), str) or len(value) > 4 \
            or not all(_text(k, 32) and _text(v, 128) for k, v in value.items()):
        raise MessageError(f"model must be an object of short strings with a sha256, got {value!r:.200}")
    return value


def _same_source(body: dict, venue: str, camera: str) -> None:
    if body.get("venue") != venue or body.get("camera") != camera:
        raise MessageError(f"payload venue/camera {body.get('venue')!r}/{body.get('camera')!r} "
                           f"do not match the topic's {venue}/{camera}", "source")


def _load(payload: bytes, versions: tuple[int, ...] = (VERSION,)) -> dict:
    """A JSON object of one of ``versions`` within the size limit, or MessageError (reason size, json or
    version)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MessageError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}", "size")
    try:
        body = json.loads(payload.decode("utf-8"))  # bytes alone would also be read as UTF-16 or UTF-32
    except (ValueError, RecursionError) as error:  # ValueError: bad UTF-8 or JSON, an int beyond 4300 digits
        raise MessageError(f"payload is not JSON: {error}", "json") from error
    if not isinstance(body, dict):
        raise MessageError("payload is not a JSON object", "json")
    version = body.get("v")
    if not isinstance(version, int) or isinstance(version, bool) or version not in versions:
        readable = " and ".join(f"v{v}" for v in versions)
        raise MessageError(f"unsupported payload version {version!r}; this build reads {readable}", "version")
    return body


def parse(topic: str, payload: bytes) -> Window | Status | Health:
    """Validate one MQTT message; the object it describes, or MessageError naming what is wrong."""
    try:
        venue, camera, kind = parse_topic(topic)
    except MessageError as error:
        raise MessageError(str(error), "topic") from None
    body = _load(payload, COUNTS_VERSIONS if kind == "counts" else (VERSION,))
    if body.get("type") != kind:
        raise MessageError(f"payload type {body.get('type')!r} does not match topic kind {kind!r}", "source")
    _same_source(body, venue, camera)
    if kind == "counts":
        return _parse_window(body, venue, camera)
    if kind == "status":
        return _parse_status(body, venue, camera)
    return _parse_health(body, venue, camera)


def _zone(body: dict) -> str | None:
    zone = body.get("zone")
    return None if zone is None else check_id(zone, "zone")


_WINDOW_V1_FIELDS = frozenset({"v", "type", "venue", "camera", "seq", "start", "end", "frames", "faces", "withheld",
                               "counts", "mean_confidence", "model"})
_PEOPLE_FIELDS = frozenset({"people", "entered", "votes", "in_view", "dwell_s", "ended"})


_WINDOW_KEYS = {False: (_WINDOW_V1_FIELDS, _WINDOW_V1_FIELDS | {"zone"}),
                True: (_WINDOW_V1_FIELDS | _PEOPLE_FIELDS, _WINDOW_V1_FIELDS | _PEOPLE_FIELDS | {"zone"})}
"""The keys a window of each version may have (without and with a zone): one comparison in the usual case."""
_LABEL_KEYS = frozenset(emotions.LABELS)


def _tally(values: Any, field: str) -> dict[str, int]:
    """``counts`` or ``votes``: exactly the labels, each an integer in 0..MAX_COUNT, in the labels' order."""
    if not isinstance(values, dict) or values.keys() != _LABEL_KEYS:
        raise MessageError(f"{field} must have exactly the labels {', '.join(emotions.LABELS)}")
    if all(type(value) is int and 0 <= value <= MAX_COUNT for value in values.values()):  # noqa: E721  bool is not
        return {label: values[label] for label in emotions.LABELS}
    return {label: _int(values, label, 0, MAX_COUNT) for label in emotions.LABELS}  # raises, naming the label


def _parse_window(body: dict, venue: str, camera: str) -> Window:
    people = body["v"] == COUNTS_VERSION
    if body.keys() not in _WINDOW_KEYS[people]:
        _fields(body, _WINDOW_KEYS[people][0], {"zone"})
    start, end = parse_time(body["start"], "start"), parse_time(body["end"], "end")
    if not 0 < (end - start).total_seconds() <= MAX_WINDOW_SECONDS:
        raise MessageError(f"window end must be after start and at most {MAX_WINDOW_SECONDS} s later")
    faces = _int(body, "faces", 0, MAX_COUNT)
    counts = body["counts"]
    if not isinstance(body["withheld"], bool):
        raise MessageError(f"withheld must be true or false, got {body['withheld']!r}")
    if body["withheld"]:
        if counts is not None:
            raise MessageError("a withheld window must not carry counts")
    else:
        counts = _tally(counts, "counts")
        if sum(counts.values()) != faces:
            raise MessageError(f"counts add up to {sum(counts.values())}, not faces={faces}")
    window = Window(venue=venue, camera=camera, seq=_int(body, "seq", 0, MAX_SEQ), start=start, end=end,
                    frames=_int(body, "frames", 0, MAX_COUNT * 10), faces=faces, counts=counts,
                    mean_confidence=_float(body, "mean_confidence", 0.0, 1.0, optional=True),
                    model=_model(body["model"]), zone=_zone(body))
    return _with_people(window, body) if people else window


def _with_people(window: Window, body: dict) -> Window:
    """The v2 fields of a counts payload, consistent with each other and with the v1 part."""
    people = _int(body, "people", 0, MAX_COUNT)
    if people > window.faces:
        raise MessageError(f"people={people} cannot exceed faces={window.faces}: each person was seen at least once")
    entered = _int(body, "entered", 0, people)
    ended = _int(body, "ended", 0, MAX_COUNT)
    in_view = _float(body, "in_view", 0.0, float(MAX_COUNT))
    dwell_s = _float(body, "dwell_s", 0.0, float(MAX_DWELL_S), optional=True)
    if (dwell_s is None) != (ended == 0):
        raise MessageError("dwell_s must be a number exactly when ended > 0")
    votes = body["votes"]
    if window.withheld:
        if votes is not None or window.mean_confidence is not None:
            raise MessageError("a withheld window must not carry votes or mean_confidence")
    else:
        votes = _tally(votes, "votes")
        if sum(votes.values()) != people:
            raise MessageError(f"votes add up to {sum(votes.values())}, not people={people}")
    return replace(window, people=people, entered=entered, votes=votes, in_view=in_view, dwell_s=dwell_s,
                   ended=ended)


def _parse_status(body: dict, venue: str, camera: str) -> Status:
    _fields(body, {"v", "type", "venue", "camera", "state", "ts"}, {"agent", "model", "zone"})
    if body["state"] not in ("online", "offline"):
        raise MessageError(f"state must be 'online' or 'offline', got {body['state']!r}")
    agent = body.get("agent")
    if agent is not None and not _text(agent, 64):
        raise MessageError("agent must be a short string")
    return Status(venue=venue, camera=camera, state=body["state"], ts=parse_time(body["ts"], "ts"), agent=agent,
                  model=_model(body.get("model"), optional=True), zone=_zone(body))


def _parse_health(body: dict, venue: str, camera: str) -> Health:
    _fields(body, {"v", "type", "venue", "camera", "ts", "fps", "inference_ms", "skipped_frames", "outbox_depth",
                   "outbox_dropped", "uptime_s", "source_ok"})
    if not isinstance(body["source_ok"], bool):
        raise MessageError("source_ok must be true or false")
    return Health(venue=venue, camera=camera, ts=parse_time(body["ts"], "ts"),
                  fps=_float(body, "fps", 0.0, 1000.0), inference_ms=_float(body, "inference_ms", 0.0, 1e6),
                  skipped_frames=_int(body, "skipped_frames", 0, MAX_SEQ),
                  outbox_depth=_int(body, "outbox_depth", 0, MAX_SEQ),
                  outbox_dropped=_int(body, "outbox_dropped", 0, MAX_SEQ),
                  uptime_s=_float(body, "uptime_s", 0.0, 1e10), source_ok=body["source_ok"])


MAX_MOOD_WINDOW_S = 7 * 86400


def _optional_float(body: dict, field: str, low: float, high: float, present: bool) -> float | None:
    if not present:
        if body[field] is not None:
            raise MessageError(f"{field} must be null when no face was counted, got {body[field]!r}")
        return None
    return _float(body, field, low, high)


MOOD_PEOPLE_FIELDS = frozenset({"people_in_view", "people_seen", "votes", "dwell_s"})
"""A mood's people keys: all present (a venue with people data in the period) or none (v1 cameras only)."""


def parse_mood(topic: str, payload: bytes) -> Mood:
    """Validate one message of a mood topic (what a subscriber reads); the Mood, or MessageError naming
    what is wrong. As strict as :func:`parse`: no unknown fields, numbers in range, shares and dominant
    present exactly when faces were counted (with people: shares, dominant and positivity together, and only
    when faces were counted, since a venue's cameras may count faces without anyone voting)."""
    parts = topic.split("/")
    if not is_mood_topic(topic):
        raise MessageError(f"topic {topic!r} is not {ROOT}/<venue>/mood[/<zone>]", "topic")
    venue, zone = check_id(parts[2], "venue"), (check_id(parts[4], "zone") if len(parts) == 5 else None)
    body = _load(payload)
    if body.get("type") != "mood":
        raise MessageError(f"payload type {body.get('type')!r} is not 'mood'", "source")
    people = bool(MOOD_PEOPLE_FIELDS & body.keys())
    _fields(body, {"v", "type", "venue", "zone", "ts", "window_s", "faces", "cameras_online", "shares", "dominant",
                   "positivity", "trend", "withheld_windows"} | (MOOD_PEOPLE_FIELDS if people else set()))
    if body["venue"] != venue or body["zone"] != zone:
        raise MessageError(f"payload venue/zone {body['venue']!r}/{body['zone']!r} do not match the topic's "
                           f"{venue}/{zone}", "source")
    faces = _int(body, "faces", 0, MAX_SEQ)
    counted = faces > 0 and (not people or body["shares"] is not None)
    shares = body["shares"]
    if counted:
        if not isinstance(shares, dict) or set(shares) != set(emotions.LABELS):
            raise MessageError(f"shares must have exactly the labels {', '.join(emotions.LABELS)}")
        shares = {label: _float(shares, label, 0.0, 1.0) for label in emotions.LABELS}
        if body["dominant"] not in emotions.LABELS:
            raise MessageError(f"dominant must be one of {', '.join(emotions.LABELS)}, got {body['dominant']!r}")
    elif shares is not None or body["dominant"] is not None:
        raise MessageError("shares and dominant must be null when no face was counted")
    positivity = _optional_float(body, "positivity", -1.0, 1.0, counted)
    trend = _optional_float(body, "trend", -2.0, 2.0, counted and body["trend"] is not None)
    figures = {}
    if people:
        figures = {"people_in_view": _float(body, "people_in_view", 0.0, float(MAX_SEQ)),
                   "people_seen": _int(body, "people_seen", 0, MAX_SEQ), "votes": _int(body, "votes", 0, MAX_SEQ),
                   "dwell_s": _float(body, "dwell_s", 0.0, float(MAX_DWELL_S), optional=True)}
    return Mood(venue=venue, zone=zone, ts=parse_time(body["ts"], "ts"),
                window_s=_float(body, "window_s", 0.001, MAX_MOOD_WINDOW_S), faces=faces,
                cameras_online=_int(body, "cameras_online", 0, MAX_SEQ), shares=shares, dominant=body["dominant"],
                positivity=positivity, trend=trend, withheld_windows=_int(body, "withheld_windows", 0, MAX_SEQ),
                **figures)


# ---- acknowledgements (issue 18) ------------------------------------------------------------------
# An aggregator tells a camera which of its windows it has finished with, after the transaction that stored them
# committed: stored, already stored (a duplicate) or refused for good (judged unbelievable). The camera keeps a
# window in its outbox until one covers it. Only aggregators may write a camera's ack topic and only that camera
# may read it (broker_config/acl.py). Not retained, QoS 0: an ack lost (the camera or the broker away) is made up by
# the camera re-sending, which the store's key turns into a duplicate, acknowledged again; so an ack needs no
# delivery guarantee of its own, and QoS 0 halves its cost and never queues in the aggregator while the broker is
# away (QoS 1 capped acks at ~3,000-3,900/s behind paho's 20 in flight, below the ingest rate; issue 18 part 4).

ACK_KIND = "ack"
MAX_ACK_RANGES = 100
"""Ranges in one ack payload (about 40 bytes each): what is left over goes in the next payload."""


def ack_topic(venue: str, camera: str) -> str:
    return f"{ROOT}/{check_id(venue, 'venue')}/{check_camera(camera)}/{ACK_KIND}"


def is_ack_topic(topic: str) -> bool:
    """An aggregator's output seen through its own wildcard subscription (skipped, like the mood)."""
    parts = topic.split("/")
    return len(parts) == 5 and "/".join(parts[:2]) == ROOT and parts[4] == ACK_KIND


@dataclass(frozen=True)
class Ack:
    """Seq ranges (inclusive, ascending, disjoint) of one camera's windows that ``aggregator`` has finished with."""

    venue: str
    camera: str
    aggregator: str
    ranges: tuple[tuple[int, int], ...]

    def covers(self, seq: int) -> bool:
        return any(low <= seq <= high for low, high in self.ranges)

    @property
    def count(self) -> int:
        return sum(high - low + 1 for low, high in self.ranges)


def seq_ranges(seqs) -> list[tuple[int, int]]:
    """Collapse seqs (any order, repeats allowed) into ascending inclusive ranges: 1,2,3,7 -> (1,3),(7,7)."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def ack_payloads(venue: str, camera: str, aggregator: str, seqs) -> list[bytes]:
    """The payloads that acknowledge ``seqs`` (empty for none), at most MAX_ACK_RANGES ranges each."""
    ranges = seq_ranges(seqs)
    return [_dump({"v": VERSION, "type": "ack", "venue": venue, "camera": camera, "aggregator": aggregator,
                   "ranges": [list(pair) for pair in ranges[i:i + MAX_ACK_RANGES]]})
            for i in range(0, len(ranges), MAX_ACK_RANGES)]


def parse_ack(topic: str, payload: bytes) -> Ack:
    """Validate one ack message (a camera trusts its broker's ACL for who wrote it, not the payload for where
    it belongs): MessageError for anything else."""
    parts = topic.split("/")
    if not is_ack_topic(topic):
        raise MessageError(f"topic {topic!r} is not {ROOT}/<venue>/<camera>/{ACK_KIND}", "topic")
    venue, camera = check_id(parts[2], "venue"), check_camera(parts[3])
    body = _load(payload)
    _fields(body, {"v", "type", "venue", "camera", "aggregator", "ranges"})
    if body["type"] != "ack":
        raise MessageError(f"type must be 'ack', got {body['type']!r}")
    _same_source(body, venue, camera)
    if not _text(body["aggregator"], 128) or not body["aggregator"]:
        raise MessageError(f"aggregator must be a short printable string, got {body['aggregator']!r:.100}")
    raw = body["ranges"]
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ACK_RANGES:
        raise MessageError(f"ranges must be a list of 1..{MAX_ACK_RANGES} [first, last] pairs")
    ranges: list[tuple[int, int]] = []
    for pair in raw:
        if not isinstance(pair, list) or len(pair) != 2 \
                or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SEQ for v in pair) \
                or pair[0] > pair[1] or (ranges and pair[0] <= ranges[-1][1]):
            raise MessageError(f"ranges must be ascending, disjoint [first, last] seq pairs, got {pair!r:.100}")
        ranges.append((pair[0], pair[1]))
    return Ack(venue, camera, body["aggregator"], tuple(ranges))
