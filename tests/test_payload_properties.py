"""Payload validation against hostile input, proved with generated messages (hypothesis).

``messages.parse`` raises nothing but MessageError; whatever it accepts is consistent and survives a
round trip through the serialiser; every valid window is accepted; every payload made invalid on purpose
is rejected. Then the same kind of garbage goes through a real broker into a real aggregator, which
stores exactly the valid windows, counts every rejection and stays healthy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import sqlite3

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from emo7ion.core import emotions, messages
from helpers import LiveAggregator

PROPERTY = settings(derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])
"""Reproducible in CI: the same examples on every run, no example database carried between runs."""

REASONS = {"topic", "size", "json", "version", "source", "schema"}
WINDOW_FIELDS = ("v", "type", "venue", "camera", "zone", "seq", "start", "end", "frames", "faces", "withheld",
                 "counts", "mean_confidence", "model")
OTHER_FIELDS = ("state", "ts", "agent", "fps", "inference_ms", "skipped_frames", "outbox_depth", "outbox_dropped",
                "uptime_s", "source_ok")
ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

# ---- valid messages --------------------------------------------------------------------------------

_ID_FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
IDS = st.builds(str.__add__, st.sampled_from(_ID_FIRST), st.text(_ID_FIRST + "_-", max_size=63))
CAMERA_IDS = IDS.filter(lambda camera: camera not in messages.RESERVED_CAMERA_IDS)
UTC_MS = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 22, 59, 59),
                      timezones=st.just(dt.UTC)).map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
PRINTABLE = st.characters(categories=("L", "M", "N", "P", "S")) | st.just(" ")
MODELS = st.fixed_dictionaries({"sha256": st.text("0123456789abcdef", min_size=64, max_size=64)},
                               optional={"version": st.text(PRINTABLE, max_size=128),
                                         "variant": st.text(PRINTABLE, max_size=128),
                                         "x-note": st.text(PRINTABLE, max_size=40)})


@st.composite
def windows(draw) -> messages.Window:
    withheld = draw(st.booleans())
    faces = draw(st.integers(0, messages.MAX_COUNT))
    counts = None
    if not withheld:  # six cuts split the faces among the seven labels
        cuts = sorted(draw(st.lists(st.integers(0, faces), min_size=6, max_size=6)))
        bounds = [0, *cuts, faces]
        counts = {label: bounds[i + 1] - bounds[i] for i, label in enumerate(emotions.LABELS)}
    start = draw(UTC_MS)
    length_ms = draw(st.integers(1, messages.MAX_WINDOW_SECONDS * 1000))
    return messages.Window(
        venue=draw(IDS), camera=draw(CAMERA_IDS), zone=draw(st.none() | IDS),
        seq=draw(st.integers(0, messages.MAX_SEQ)), start=start, end=start + dt.timedelta(milliseconds=length_ms),
        frames=draw(st.integers(0, messages.MAX_COUNT * 10)), faces=faces, counts=counts,
        mean_confidence=draw(st.none() | st.floats(0.0, 1.0)), model=draw(MODELS))


@st.composite
def statuses(draw) -> messages.Status:
    return messages.Status(venue=draw(IDS), camera=draw(CAMERA_IDS), state=draw(st.sampled_from(["online", "offline"])),
                           ts=draw(UTC_MS), agent=draw(st.none() | st.text(PRINTABLE, max_size=64)),
                           model=draw(st.none() | MODELS), zone=draw(st.none() | IDS))


@st.composite
def healths(draw) -> messages.Health:
    counters = st.integers(0, messages.MAX_SEQ)
    return messages.Health(venue=draw(IDS), camera=draw(CAMERA_IDS), ts=draw(UTC_MS), fps=draw(st.floats(0, 1000)),
                           inference_ms=draw(st.floats(0, 1e6)), skipped_frames=draw(counters),
                           outbox_depth=draw(counters), outbox_dropped=draw(counters),
                           uptime_s=draw(st.floats(0, 1e10)), source_ok=draw(st.booleans()))


def serialise(message) -> tuple[str, bytes]:
    """(topic, payload) of a message, as a device sends it."""
    if isinstance(message, messages.Window):
        return messages.camera_topic(message.venue, message.camera, "counts"), messages.window_payload(message)
    if isinstance(message, messages.Status):
        return messages.camera_topic(message.venue, message.camera, "status"), messages.status_payload(message)
    return messages.camera_topic(message.venue, message.camera, "health"), messages.health_payload(message)


def rounded(message):
    """What survives the wire: the serialiser rounds these floats (and nothing else)."""
    if isinstance(message, messages.Window) and message.mean_confidence is not None:
        return dataclasses.replace(message, mean_confidence=round(message.mean_confidence, 4))
    if isinstance(message, messages.Health):
        return dataclasses.replace(message, fps=round(message.fps, 3), inference_ms=round(message.inference_ms, 3),
                                   uptime_s=round(message.uptime_s, 1))
    return message


ANY_VALID = st.one_of(windows(), statuses(), healths())

# ---- the properties every verdict must satisfy ------------------------------------------------------


def _is_int(value, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _is_utc_ms(moment) -> bool:
    return isinstance(moment, dt.datetime) and moment.utcoffset() == dt.timedelta(0) and moment.microsecond % 1000 == 0


def _is_text(value, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit and value.isprintable()


def _is_model(model) -> bool:
    return (isinstance(model, dict) and len(model) <= 4 and isinstance(model.get("sha256"), str)
            and all(_is_text(k, 32) and _is_text(v, 128) for k, v in model.items()))


def assert_consistent(topic: str, parsed) -> None:
    """An accepted message is internally consistent, re-serialises and parses back to the same object."""
    _, _, venue, camera, kind = topic.split("/")
    assert (parsed.venue, parsed.camera) == (venue, camera)
    assert ID.fullmatch(venue) and ID.fullmatch(camera) and camera not in messages.RESERVED_CAMERA_IDS
    zone = getattr(parsed, "zone", None)
    assert zone is None or ID.fullmatch(zone)
    if isinstance(parsed, messages.Window):
        assert kind == "counts"
        assert _is_int(parsed.seq, 0, messages.MAX_SEQ) and _is_int(parsed.frames, 0, messages.MAX_COUNT * 10)
        assert _is_int(parsed.faces, 0, messages.MAX_COUNT)
        assert _is_utc_ms(parsed.start) and _is_utc_ms(parsed.end)
        assert 0 < (parsed.end - parsed.start).total_seconds() <= messages.MAX_WINDOW_SECONDS
        assert parsed.withheld == (parsed.counts is None)
        if parsed.counts is not None:
            assert tuple(parsed.counts) == emotions.LABELS
            assert all(_is_int(n, 0, messages.MAX_COUNT) for n in parsed.counts.values())
            assert sum(parsed.counts.values()) == parsed.faces
        assert parsed.mean_confidence is None or (type(parsed.mean_confidence) is float
                                                  and 0.0 <= parsed.mean_confidence <= 1.0)
        assert _is_model(parsed.model)
    elif isinstance(parsed, messages.Status):
        assert kind == "status" and parsed.state in ("online", "offline") and _is_utc_ms(parsed.ts)
        assert parsed.agent is None or _is_text(parsed.agent, 64)
        assert parsed.model is None or _is_model(parsed.model)
    else:
        assert kind == "health" and isinstance(parsed, messages.Health) and _is_utc_ms(parsed.ts)
        for name, high in (("fps", 1000.0), ("inference_ms", 1e6), ("uptime_s", 1e10)):
            value = getattr(parsed, name)
            assert type(value) is float and math.isfinite(value) and 0.0 <= value <= high, name
        for name in ("skipped_frames", "outbox_depth", "outbox_dropped"):
            assert _is_int(getattr(parsed, name), 0, messages.MAX_SEQ), name
        assert type(parsed.source_ok) is bool
    again_topic, again = serialise(parsed)  # raises MessageError if it no longer fits: that fails the test
    assert again_topic == topic
    reparsed = messages.parse(topic, again)
    assert reparsed == rounded(parsed)
    assert serialise(reparsed)[1] == again  # one round trip reaches a fixed point


def verdict(topic: str, payload: bytes):
    """parse's answer: the message (checked for consistency) or None; anything but MessageError escapes."""
    try:
        parsed = messages.parse(topic, payload)
    except messages.MessageError as error:
        assert error.reason in REASONS, error.reason
        assert str(error)
        return None
    assert_consistent(topic, parsed)
    return parsed


def rejected(topic: str, payload: bytes) -> str:
    """The reason parse gives for a message that must be rejected; fails the test if it is accepted."""
    parsed = verdict(topic, payload)
    assert parsed is None, f"accepted an invalid message on {topic!r}: {payload[:300]!r}"
    try:
        messages.parse(topic, payload)
    except messages.MessageError as error:
        return error.reason
    raise AssertionError("unreachable")


# ---- hostile values --------------------------------------------------------------------------------

HUGE_INTS = st.integers(19, 4200).map(lambda n: 10**n) | st.integers(19, 4200).map(lambda n: -(10**n))
NOT_STRINGS = st.one_of(st.booleans(), st.integers(), st.floats(), st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), HUGE_INTS, st.floats(), st.text(max_size=30),
                    st.sampled_from(["\ud800", "\udfff", "\x00", "\u2028", "Z", "2024-01-01Z", "NaN", "1", "true"]),
                    UTC_MS.map(messages.utc_iso))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)


def bad_ints(low: int, high: int) -> st.SearchStrategy:
    """Values an integer field in low..high must refuse: out of range, huge, floats (even 3.0), bools, text."""
    return st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1), HUGE_INTS,
                     st.floats(), st.integers(low, high).map(float), st.booleans(), st.integers(low, high).map(str),
                     st.text(max_size=10), st.lists(st.integers(low, high), max_size=2), st.none())


BAD_ID_TEXT = st.one_of(
    st.text(max_size=80).filter(lambda s: not ID.fullmatch(s)),
    IDS.map(lambda s: s + "\n"), IDS.map(lambda s: s + "\r\n"), IDS.map(lambda s: "\n" + s),
    IDS.map(str.upper).filter(lambda s: not ID.fullmatch(s)), IDS.map(lambda s: s + "/x"),
    IDS.map(lambda s: s + "+"), IDS.map(lambda s: s + "#"), IDS.map(lambda s: " " + s),
    st.sampled_from(["", "+", "#", "-a", "_a", "a" * 65, "a b", "hällo", "..", "../etc", "a\x00", "\ud800", "mood\n"]),
)
_SUB_MS = st.datetimes(timezones=st.just(dt.UTC)).filter(lambda t: t.microsecond % 1000)
BAD_TIMES = st.one_of(
    NOT_STRINGS, st.none(), st.text(max_size=45),
    UTC_MS.map(lambda t: messages.utc_iso(t)[:-1]),                       # no Z
    UTC_MS.map(lambda t: messages.utc_iso(t)[:-1] + "+00:00"),            # an offset instead of Z
    UTC_MS.map(lambda t: messages.utc_iso(t)[:-1] + "+01:00Z"),           # an offset and a Z
    UTC_MS.map(lambda t: t.date().isoformat() + "Z"),                     # a date alone: parses naive
    UTC_MS.map(lambda t: messages.utc_iso(t).lower()),
    UTC_MS.map(lambda t: messages.utc_iso(t) + " "),
    UTC_MS.map(lambda t: messages.utc_iso(t)[:-1] + "0" * 20 + "Z"),      # over 40 characters
    _SUB_MS.map(lambda t: t.isoformat(timespec="microseconds").replace("+00:00", "Z")),  # finer than the wire
    UTC_MS.map(lambda t: t.timestamp()),                                  # epoch seconds
)
_CONTROL = st.sampled_from(["\x00", "\n", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u200b", "\ud800", "\udfff",
                            "\ufeff"])
BAD_TEXT = st.one_of(st.tuples(st.text(PRINTABLE, max_size=20), _CONTROL, st.text(PRINTABLE, max_size=20)).map("".join),
                     st.text(PRINTABLE, min_size=129, max_size=300))
SHA = "ab" * 32
BAD_MODELS = st.one_of(
    st.none(), st.integers(), st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=10).filter(lambda k: k != "sha256"), st.text(max_size=10), max_size=3),
    NOT_STRINGS.map(lambda bad: {"sha256": bad}), st.just({"sha256": None}),
    st.dictionaries(st.text(max_size=6).filter(lambda k: k != "sha256"), st.text(max_size=6), min_size=4,
                    max_size=6).map(lambda extra: {"sha256": SHA, **extra}),   # over four entries
    BAD_TEXT.map(lambda bad: {"sha256": bad}), BAD_TEXT.map(lambda bad: {"sha256": SHA, "version": bad}),
    NOT_STRINGS.map(lambda bad: {"sha256": SHA, "version": bad}),
    BAD_TEXT.filter(lambda k: k != "sha256").map(lambda bad: {"sha256": SHA, bad: "v"}),
    st.text(PRINTABLE, min_size=33, max_size=60).map(lambda key: {"sha256": SHA, key: "v"}),
)
BAD_VALUES = {
    "v": st.one_of(st.integers().filter(lambda n: n != 1), st.sampled_from([True, 1.0, "1", "v1", None, [1]]),
                   st.floats(), st.text(max_size=5), HUGE_INTS),
    "type": st.one_of(st.text(max_size=10).filter(lambda t: t != "counts"), NOT_STRINGS, st.none(),
                      st.sampled_from(["status", "health", "Counts", "counts "])),
    "venue": BAD_ID_TEXT | NOT_STRINGS | st.none(),
    "camera": BAD_ID_TEXT | NOT_STRINGS | st.none(),
    "zone": BAD_ID_TEXT | NOT_STRINGS,
    "seq": bad_ints(0, messages.MAX_SEQ),
    "frames": bad_ints(0, messages.MAX_COUNT * 10),
    "faces": bad_ints(0, messages.MAX_COUNT),
    "start": BAD_TIMES,
    "end": BAD_TIMES,
    "withheld": st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=5),
                          st.sampled_from(["true", "false", 0, 1, [], {}])),
    "mean_confidence": st.one_of(st.floats(max_value=-5e-324), st.floats(min_value=1.0, exclude_min=True),
                                 st.sampled_from([math.nan, math.inf, -math.inf, True, False, "0.5", [0.5], {}]),
                                 st.integers(min_value=2), st.integers(max_value=-1), HUGE_INTS),
    "model": BAD_MODELS,
    "counts": st.one_of(st.integers(), st.text(max_size=10), st.lists(st.integers(0, 9), max_size=7),
                        st.dictionaries(st.sampled_from(emotions.LABELS), st.integers(0, 9), max_size=6),
                        st.dictionaries(st.text(max_size=8), st.integers(0, 9), max_size=8)),
}

# ---- hostile messages: (topic, payload) -------------------------------------------------------------


def _window_body(window: messages.Window) -> dict:
    return json.loads(messages.window_payload(window))


def _dump(body) -> bytes:
    return json.dumps(body, allow_nan=True).encode()  # allow_nan: writes the NaN / Infinity literals


def _shift(moment_text: str, delta_ms: int) -> str:
    moment = messages.parse_time(moment_text, "time")
    try:
        return messages.utc_iso(moment + dt.timedelta(milliseconds=delta_ms))
    except OverflowError:
        return moment_text  # at the edge of the calendar: a zero-length window, just as invalid


@st.composite
def invalid_windows(draw) -> tuple[str, bytes]:
    """A valid window payload with exactly one thing made wrong; parse must reject every one."""
    window = draw(windows())
    topic = messages.camera_topic(window.venue, window.camera, "counts")
    body = _window_body(window)
    mutation = draw(st.sampled_from(["replace", "replace", "replace", "count", "unbalance", "flip-withheld",
                                     "misorder", "drop", "add"]))
    if mutation == "replace":
        field = draw(st.sampled_from(sorted(BAD_VALUES)))
        body[field] = draw(BAD_VALUES[field])
    elif mutation == "count":
        if body["counts"] is None:  # a withheld window carries no counts, not even plausible ones
            body["counts"] = dict.fromkeys(emotions.LABELS, 0)
        else:
            body["counts"][draw(st.sampled_from(emotions.LABELS))] = draw(bad_ints(0, messages.MAX_COUNT))
    elif mutation == "unbalance" and body["counts"] is not None:
        delta = draw(st.integers(-messages.MAX_COUNT, messages.MAX_COUNT).filter(bool))
        target = draw(st.sampled_from(["faces", *emotions.LABELS]))
        holder = body if target == "faces" else body["counts"]
        holder[target] = min(max(holder[target] + delta, 0), messages.MAX_COUNT)
        if sum(body["counts"].values()) == body["faces"]:  # clamping undid the change: break it the other way
            holder[target] = holder[target] + 1 if holder[target] < messages.MAX_COUNT else holder[target] - 1
    elif mutation in ("flip-withheld", "unbalance"):
        body["withheld"] = not body["withheld"]
    elif mutation == "misorder":  # end not after start, or more than MAX_WINDOW_SECONDS after it
        too_long = messages.MAX_WINDOW_SECONDS * 1000 + 1
        delta = draw(st.integers(-10**9, 0) | st.integers(too_long, too_long + 10**9))
        body["end"] = _shift(body["start"], delta)
    elif mutation == "drop":
        del body[draw(st.sampled_from(sorted(set(body) - {"zone"})))]
    else:
        body[draw(st.text(max_size=20).filter(lambda k: k not in WINDOW_FIELDS))] = draw(JSON_VALUES)
    return topic, _dump(body)


def _topic_level(publishable: bool) -> st.SearchStrategy:
    """An invalid venue or camera level; publishable ones are also legal MQTT topic levels (no wildcards, no
    control characters, no '/'), so a real broker delivers them to the aggregator's subscription."""
    if not publishable:
        return BAD_ID_TEXT.filter(lambda s: "\ud800" not in s)
    legal = st.characters(categories=("L", "N", "P", "S"), exclude_characters="/+#") | st.just(" ")
    return st.one_of(st.text(legal, min_size=1, max_size=70),
                     st.sampled_from(["Hall-A", "hall a", "a" * 65, "-a", "hällo", "..", "%2e", "mood!", "ünï"])
                     ).filter(lambda s: not ID.fullmatch(s) and s != "mood")


@st.composite
def misaddressed(draw, publishable: bool = False) -> tuple[str, bytes]:
    """A valid payload on the wrong topic: another venue, camera or kind, an invalid or unknown level, and
    (unless it must be publishable) wildcards, wrong roots and the wrong number of levels."""
    message = draw(ANY_VALID)
    topic, payload = serialise(message)
    venue, camera, kind = message.venue, message.camera, topic.rsplit("/", 1)[1]
    choices = ["venue", "camera", "kind", "unknown-kind", "bad-venue", "bad-camera"]
    if not publishable:
        choices += ["wildcard", "root", "levels", "mood"]
    choice = draw(st.sampled_from(choices))
    root = messages.ROOT
    if choice == "venue":
        topic = f"{root}/{draw(IDS.filter(lambda v: v != venue))}/{camera}/{kind}"
    elif choice == "camera":
        topic = f"{root}/{venue}/{draw(CAMERA_IDS.filter(lambda c: c != camera))}/{kind}"
    elif choice == "kind":
        topic = f"{root}/{venue}/{camera}/{draw(st.sampled_from([k for k in messages.KINDS if k != kind]))}"
    elif choice == "unknown-kind":
        other = draw(_topic_level(publishable) | st.sampled_from(["mood", "Counts", "count", "counts "]))
        topic = f"{root}/{venue}/{camera}/{other}"
    elif choice == "bad-venue":
        topic = f"{root}/{draw(_topic_level(publishable))}/{camera}/{kind}"
    elif choice == "bad-camera":
        topic = f"{root}/{venue}/{draw(_topic_level(publishable))}/{kind}"
    elif choice == "wildcard":
        level = draw(st.integers(0, 4))
        parts = topic.split("/")
        parts[level] = draw(st.sampled_from(["+", "#", parts[level] + "+", "#" + parts[level]]))
        topic = "/".join(parts)
    elif choice == "root":
        other_root = draw(st.sampled_from(["emo7ion/v2", "emo7ion/v0", "Emo7ion/v1", "emo7ion/V1", "emo7ion", "",
                                           "emo7ion/v1/x", "/emo7ion/v1"]))
        topic = f"{other_root}/{venue}/{camera}/{kind}"
    elif choice == "levels":
        topic = draw(st.sampled_from([f"{topic}/extra", f"{topic}/", topic.rsplit("/", 1)[0],
                                      f"{root}/{venue}//{camera}/{kind}", "/" + topic, topic.replace("/", "//")]))
    else:
        topic = f"{root}/{venue}/mood/{kind}"
    return topic, payload


@st.composite
def oversized(draw) -> tuple[str, bytes]:
    """Valid JSON, possibly a valid message, that is too long: padded, or with a long unknown field."""
    topic, payload = serialise(draw(ANY_VALID))
    extra = messages.MAX_PAYLOAD_BYTES + 1 - len(payload) + draw(st.integers(0, 20_000))
    if draw(st.booleans()):
        payload = payload[:1] + b" " * extra + payload[1:]
    else:
        payload = payload[:-1] + b',"note":"' + b"x" * extra + b'"}'
    return topic, payload


@st.composite
def deeply_nested(draw) -> tuple[str, bytes]:
    """Lists or objects nested up to thousands deep, as the whole payload or as the value of one field."""
    window = draw(windows())
    topic = messages.camera_topic(window.venue, window.camera, "counts")
    depth = draw(st.integers(1, 3000) | st.integers(980, 1010))
    if draw(st.booleans()):
        nested = "[" * depth + "]" * depth
    else:
        nested = '{"a":' * depth + "1" + "}" * depth
    field = draw(st.sampled_from(["<payload>", *WINDOW_FIELDS]))
    if field == "<payload>":
        return topic, nested.encode()
    body = _window_body(window)
    body[field] = "@@nested@@"
    return topic, _dump(body).replace(b'"@@nested@@"', nested.encode())


BAD_UTF8 = [b"\xe9", b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
            b"\xf4\x90\x80\x80"]
"""Latin-1 'e', bytes UTF-8 never uses, a truncated sequence, an overlong '/', an encoded surrogate, too long,
beyond U+10FFFF."""


@st.composite
def not_utf8(draw) -> tuple[str, bytes]:
    """A valid message in another encoding (UTF-16, UTF-32, UTF-8 with a BOM) or with bytes that are not UTF-8
    inside a string."""
    topic, payload = serialise(draw(ANY_VALID))
    how = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-8-sig",
                                "splice", "splice"]))
    if how != "splice":
        return topic, payload.decode().encode(how)
    cut = payload.index(b'"venue":"') + len(b'"venue":"')  # inside the first string value
    return topic, payload[:cut] + draw(st.sampled_from(BAD_UTF8)) + payload[cut:]


def _valid_topics() -> st.SearchStrategy:
    return st.builds(lambda v, c, k: messages.camera_topic(v, c, k), IDS, CAMERA_IDS, st.sampled_from(messages.KINDS))


MUST_REJECT = st.one_of(invalid_windows(), misaddressed(), oversized(), deeply_nested(), not_utf8())
PUBLISHABLE_GARBAGE = st.one_of(
    invalid_windows(), invalid_windows(), misaddressed(publishable=True), oversized(), deeply_nested(), not_utf8(),
    st.tuples(_valid_topics(), st.binary(max_size=600)))


# ---- parse alone -----------------------------------------------------------------------------------


@settings(PROPERTY, max_examples=1500)
@given(windows())
def test_every_valid_window_is_accepted_and_round_trips(window):
    topic, payload = serialise(window)
    parsed = messages.parse(topic, payload)
    assert parsed == rounded(window)
    assert_consistent(topic, parsed)


@settings(PROPERTY, max_examples=600)
@given(st.one_of(statuses(), healths()))
def test_every_valid_status_and_health_is_accepted_and_round_trips(message):
    topic, payload = serialise(message)
    parsed = messages.parse(topic, payload)
    assert parsed == rounded(message)
    assert_consistent(topic, parsed)


@settings(PROPERTY, max_examples=1500)
@given(topic=_valid_topics() | st.text(max_size=80) | misaddressed().map(lambda m: m[0]),
       payload=st.binary(max_size=5000) | ANY_VALID.flatmap(
           lambda m: st.tuples(st.just(serialise(m)[1]), st.binary(min_size=1, max_size=40), st.integers(0, 600))
       ).map(lambda t: t[0][:t[2]] + t[1] + t[0][t[2]:]))
def test_random_bytes_never_raise_anything_but_message_error(topic, payload):
    verdict(topic, payload)


@st.composite
def arbitrary_json(draw) -> tuple[str, bytes]:
    """Any JSON at all: right header and random fields, or a valid message with one to three fields replaced."""
    if draw(st.booleans()):
        topic, payload = serialise(draw(ANY_VALID))
        body = json.loads(payload)
        for field in draw(st.lists(st.sampled_from(sorted(body)), min_size=1, max_size=3, unique=True)):
            body[field] = draw(JSON_VALUES)
        return topic, _dump(body)
    topic = draw(_valid_topics())
    _, _, venue, camera, kind = topic.split("/")
    keys = st.sampled_from(WINDOW_FIELDS + OTHER_FIELDS) | st.text(max_size=10)
    body = draw(st.dictionaries(keys, JSON_VALUES, max_size=16))
    if draw(st.booleans()):
        body.update(v=1, type=kind, venue=venue, camera=camera)
    return topic, _dump(body if draw(st.integers(0, 9)) else draw(JSON_VALUES))


@settings(PROPERTY, max_examples=2000)
@given(arbitrary_json())
def test_any_json_in_any_field_is_rejected_or_consistent(message):
    verdict(*message)


@settings(PROPERTY, max_examples=3000)
@given(invalid_windows())
def test_a_window_with_one_hostile_field_is_rejected(message):
    rejected(*message)


@settings(PROPERTY, max_examples=1000)
@given(misaddressed())
def test_a_valid_payload_on_the_wrong_topic_is_rejected(message):
    assert rejected(*message) in {"topic", "source"}


@settings(PROPERTY, max_examples=300)
@given(oversized())
def test_oversized_payloads_are_rejected_for_size(message):
    assert rejected(*message) == "size"


@settings(PROPERTY, max_examples=400)
@given(deeply_nested())
def test_deeply_nested_json_is_rejected(message):
    rejected(*message)


@settings(PROPERTY, max_examples=500)
@given(not_utf8())
def test_payloads_that_are_not_utf8_are_rejected(message):
    assert rejected(*message) in {"json", "size"}


def test_known_hostile_values_found_by_these_properties():
    """Each once slipped past parse: a naive date (TypeError), a 400-digit number (OverflowError), a lone
    surrogate (stored, then every retry of the batch failed), an id with a trailing newline, version true."""
    window = messages.Window(venue="hall-a", camera="cam-1", seq=0, start=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                             end=dt.datetime(2024, 1, 1, 0, 0, 10, tzinfo=dt.UTC), frames=1, faces=0, counts=None,
                             mean_confidence=None, model={"sha256": SHA})
    topic, payload = serialise(window)
    for field, value in [("start", "2024-01-01Z"), ("mean_confidence", 10**400), ("model", {"sha256": "\ud800"}),
                         ("zone", "front\n"), ("v", True), ("v", 1.0), ("end", "2024-01-01T00:00:10.000001Z")]:
        body = json.loads(payload)
        body[field] = value
        rejected(topic, _dump(body))
    rejected("emo7ion/v1/hall-a\n/cam-1/counts", payload.replace(b'"hall-a"', b'"hall-a\\n"'))
    rejected(topic, payload.decode().encode("utf-16"))


# ---- through a real broker into a real aggregator ---------------------------------------------------


def draw_sample(strategy: st.SearchStrategy, size: int) -> list:
    """``size`` examples of a strategy, drawn once and reproducibly (derandomized), for use outside hypothesis."""
    sample: list = []

    @settings(PROPERTY, max_examples=size, phases=[Phase.generate])
    @given(strategy)
    def collect(example):
        sample.append(example)

    collect()
    return sample


def window_row(window: messages.Window) -> tuple:
    window = rounded(window)
    counts = [None] * len(emotions.LABELS) if window.counts is None else [window.counts[k] for k in emotions.LABELS]
    return (window.venue, window.camera, window.seq, window.start.timestamp(), window.end.timestamp(), window.zone,
            window.frames, window.faces, int(window.withheld), *counts, window.mean_confidence,
            window.model["sha256"], window.model.get("version"))


def test_live_aggregator_stores_exactly_the_valid_windows(tmp_path):
    garbage = draw_sample(PUBLISHABLE_GARBAGE, 300)
    for topic, payload in garbage:
        rejected(topic, payload)
    valid = [dataclasses.replace(w, seq=i) for i, w in enumerate(draw_sample(windows(), 60))]
    assert (len(garbage), len(valid)) == (300, 60)
    stream = list(garbage)
    for n, window in enumerate(valid):  # one valid window after every five or so bad messages
        stream.insert(min(len(stream), 5 + n * 6), serialise(window))

    live = LiveAggregator(tmp_path, check_windows=False)  # the schema alone: any date, faces and overlap
    try:
        for topic, payload in stream:
            info = live.camera.publish(topic, payload, qos=1)
            info.wait_for_publish(5)
            assert info.is_published(), topic
        # Messages are handled in order: once this last window is stored, every earlier one was handled.
        live.publish_window("zz-last", "cam-1", {"happy": 1})
        assert live.wait_stored(len(valid) + 1, timeout=30), live.service.ingest.stats

        stats = live.service.ingest.stats
        assert sum(stats.rejected.values()) == len(garbage), dict(stats.rejected)
        assert (stats.stored, stats.duplicates, stats.store_errors) == (len(valid) + 1, 0, 0)
        columns = ("venue, camera, seq, start_ts, end_ts, zone, frames, faces, withheld, "
                   f"{', '.join(emotions.LABELS)}, mean_confidence, model_sha256, model_version")
        with sqlite3.connect(f"file:{tmp_path / 'agg.sqlite'}?mode=ro", uri=True) as db:
            rows = db.execute(f"SELECT {columns} FROM windows WHERE venue != 'zz-last'").fetchall()
            cameras = set(db.execute("SELECT venue, camera FROM cameras WHERE venue != 'zz-last'").fetchall())
        assert sorted(rows, key=repr) == sorted((window_row(w) for w in valid), key=repr)
        assert cameras == {(w.venue, w.camera) for w in valid}

        for path in ("/healthz", "/metrics", "/api/venues", "/api/cameras"):  # and the API serves what was stored
            assert httpx.get(live.url + path, timeout=10).status_code == 200, path
    finally:
        live.close()
