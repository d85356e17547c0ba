"""The HTTP API against bad input: a wrong token, bad query parameters, invalid ids, path traversal, very long
and non-ASCII strings. Always a clear 4xx with a JSON ``detail``, never a 500; what is valid still answers 200.
One real aggregator (real Mosquitto, SQLite, HTTP) serves the whole module."""

from __future__ import annotations

import math
import re
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from emo7ion.aggregator.api import MAX_MINUTES, MAX_POINTS
from helpers import LiveAggregator

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KNOWN_VENUE = "hall-a"
ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    live = LiveAggregator(tmp_path_factory.mktemp("api-bad-input"), token=TOKEN)
    live.publish_status(KNOWN_VENUE, "cam-1", "online", zone="front")
    live.publish_window(KNOWN_VENUE, "cam-1", {"happy": 3, "sad": 1}, zone="front")
    assert live.wait_stored(1)
    yield live
    live.close()


def get(live: LiveAggregator, path: str, **kwargs) -> httpx.Response:
    return live.get(path, **kwargs)


def assert_clear_4xx(response: httpx.Response, *expected: int) -> None:
    assert 400 <= response.status_code < 500, (response.request.url, response.status_code, response.text[:300])
    if expected:
        assert response.status_code in expected, (response.request.url, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
    assert response.json()["detail"], response.text[:300]


GUARDED = ["/api/meta", "/api/venues", f"/api/venues/{KNOWN_VENUE}/mood", f"/api/venues/{KNOWN_VENUE}/timeseries",
           "/api/cameras", f"/api/stream?venue={KNOWN_VENUE}"]
BAD_CREDENTIALS = [
    {}, {"headers": {"Authorization": "Bearer wrong"}}, {"headers": {"Authorization": "Bearer"}},
    {"headers": {"Authorization": f"Basic {TOKEN}"}}, {"headers": {"Authorization": TOKEN}},
    {"headers": {"Authorization": f"Bearer {TOKEN.upper()}"}}, {"headers": {"Authorization": f"Bearer {TOKEN[:-1]}"}},
    {"headers": {"Authorization": f"Bearer {TOKEN}x"}}, {"headers": {"Authorization": "Bearer " + "x" * 4000}},
    {"headers": {"Authorization": f"Bearer {TOKEN}"[:7] + "\t" + TOKEN}}, {"params": {"token": "wrong"}},
    {"params": {"token": ""}}, {"params": {"token": TOKEN + "é"}}, {"params": {"token": "s3cret-tökén"}},
    {"params": {"token": TOKEN + "\x00"}}, {"params": {"Token": TOKEN}},
    {"params": {"token": TOKEN}},  # the right token, but in a URL (proxy logs): refused
    {"cookies": {"emo7ion_token": "wrong"}}, {"cookies": {"emo7ion_token": TOKEN + "%00"}},
]


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS, ids=range(len(BAD_CREDENTIALS)))
def test_a_bad_token_is_401_everywhere(live, credentials):
    for path in GUARDED:
        response = get(live, path, **credentials)
        assert_clear_4xx(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_good_token_in_the_header_or_the_cookie_never_the_query(live):
    assert get(live, "/api/venues", headers=AUTH).status_code == 200
    assert get(live, "/api/venues", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    assert get(live, "/api/cameras", cookies={"emo7ion_token": TOKEN}).status_code == 200
    assert get(live, "/api/cameras", cookies={"emo7ion_token": quote(TOKEN)}).status_code == 200  # as app.js sets it
    assert_clear_4xx(get(live, "/api/cameras", params={"token": TOKEN}), 401)  # query strings land in proxy logs


EXPLICIT = [  # (path as sent, statuses allowed)
    ("/api/venues/..%2F..%2Fetc%2Fpasswd/mood", (404, 422)), ("/api/venues/%2e%2e/mood", (404, 422)),
    ("/api/venues/..%5C..%5Cwindows/mood", (422,)), ("/api/venues/hall-a%00/mood", (422,)),
    ("/api/venues/hall-a%0A/mood", (422,)), ("/api/venues/%FF%FE/mood", (422,)),
    ("/api/venues/HALL-A/mood", (422,)), ("/api/venues/hall%20a/timeseries", (422,)),
    ("/api/venues/" + "a" * 65 + "/mood", (422,)), ("/api/venues/" + "a" * 5000 + "/mood", (422,)),
    ("/api/venues/" + quote("酒吧") + "/mood", (422,)), ("/api/venues/" + quote("hall-a\u200b") + "/mood", (422,)),
    ("/api/venues/nowhere/mood", (404,)), ("/api/venues/nowhere/timeseries", (404,)),
    ("/api/venues/hall-a/mood?zone=..%2Ffront", (422,)), ("/api/venues/hall-a/mood?zone=front%0A", (422,)),
    ("/api/venues/hall-a/mood?zone=" + "z" * 5000, (422,)), ("/api/venues/hall-a/mood?minutes=0", (422,)),
    ("/api/venues/hall-a/mood?minutes=-1", (422,)), ("/api/venues/hall-a/mood?minutes=nan", (422,)),
    ("/api/venues/hall-a/mood?minutes=inf", (422,)), ("/api/venues/hall-a/mood?minutes=1e309", (422,)),
    ("/api/venues/hall-a/mood?minutes=" + "9" * 4000, (422,)), ("/api/venues/hall-a/mood?minutes=%EF%BC%95", (422,)),
    ("/api/venues/hall-a/mood?minutes=", (422,)), ("/api/venues/hall-a/timeseries?step=0", (422,)),
    ("/api/venues/hall-a/timeseries?step=-60", (422,)), ("/api/venues/hall-a/timeseries?step=0.5", (422,)),
    ("/api/venues/hall-a/timeseries?step=86401", (422,)), ("/api/venues/hall-a/timeseries?step=abc", (422,)),
    ("/api/venues/hall-a/timeseries?minutes=10080&step=1", (422,)),
    ("/api/venues/hall-a/timeseries?minutes=10081&step=3600", (422,)),
    ("/api/cameras?venue=..%2F..", (422,)), ("/api/cameras?venue=%F0%9F%98%80", (422,)),
    ("/api/stream?venue=Hall", (422,)), ("/api/stream", (422,)), ("/api/stream?venue=" + "v" * 3000, (422,)),
    ("/api/nothing-here", (404,)), ("/static/..%2F..%2F..%2Fetc%2Fpasswd", (404,)),
]


@pytest.mark.parametrize(("path", "allowed"), EXPLICIT, ids=[p[:60] for p, _ in EXPLICIT])
def test_explicit_bad_requests_are_clear_4xx(live, path, allowed):
    assert_clear_4xx(get(live, path, headers=AUTH), *allowed)


# ---- generated query strings ------------------------------------------------------------------------

_NUMBER_BOUNDARIES = [0, -0.0, 1e-9, 5e-324, 0.5, 1, 59.999, 60, 3600, 86400, 86400.0001, 86401, MAX_MINUTES,
                      MAX_MINUTES + 1e-9, MAX_MINUTES + 1, 10**9, -1, math.nan, math.inf, -math.inf]
NUMBERS = st.one_of(st.sampled_from(_NUMBER_BOUNDARIES), st.integers(-10**6, 10**7), st.integers(),
                    st.floats(allow_nan=True, allow_infinity=True), st.floats(0.001, MAX_MINUTES))
JUNK = st.text(max_size=40).filter(lambda s: not any(c.isdigit() for c in s)
                                   and not {"inf", "nan"} & {s.strip().lower()[:3], s.strip().lower()[1:4]})
"""Text no number parser reads as a number: no digits at all, no inf or nan."""
MINUTES = st.none() | st.sampled_from([1, 5, 15, 60, 1440, MAX_MINUTES]) | NUMBERS | JUNK
STEPS = st.none() | st.sampled_from([60, 300, 3600, 86400]) | NUMBERS | JUNK
HOSTILE_TEXT = st.one_of(
    st.text(max_size=60), st.text(st.characters(codec="utf-8"), max_size=30),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=60, max_size=1500),
    st.sampled_from(["", ".", "..", "../..", "..%2F..", "%2e%2e", "....//", "/etc/passwd", "..\\..\\windows",
                     "%00", "hall-a\n", "hall-a/", "HALL-A", "hall a", "mood", "-a", "_", "a" * 64, "a" * 65,
                     "hall-a%0A", "\u202ehall-a", "ｈａｌｌ", "hall-a\x00"]),
)
IDS = st.builds(str.__add__, st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"),
                st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", max_size=63))
VENUES = st.one_of(st.just(KNOWN_VENUE), st.just(KNOWN_VENUE), st.just(KNOWN_VENUE), st.just("nowhere"), IDS,
                   HOSTILE_TEXT)
ZONES = st.one_of(st.none(), st.just(""), st.just("front"), IDS, HOSTILE_TEXT)


def _query_value(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _number_ok(value, low: float, high: float, low_inclusive: bool) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return False
    value = float(value) if abs(value) < 1e300 else math.inf
    return math.isfinite(value) and (low <= value if low_inclusive else low < value) and value <= high


def expected_ok(endpoint: str, venue: str, params: dict) -> bool:
    """Whether the API must answer 200: the same rules, written out from the API's documented limits."""
    if endpoint == "venues":
        return True
    if endpoint == "cameras":
        return params.get("venue") in (None, "") or bool(ID.fullmatch(params["venue"]))
    zone = params.get("zone")
    if not ID.fullmatch(venue) or venue != KNOWN_VENUE or not (zone in (None, "") or ID.fullmatch(zone)):
        return False
    if not _number_ok(params.get("minutes"), 0, MAX_MINUTES, low_inclusive=False):
        return False
    if endpoint == "mood":
        return True
    if not _number_ok(params.get("step"), 1, 86400, low_inclusive=True):
        return False
    minutes, step = params.get("minutes", 60), params.get("step", 60)
    return minutes * 60 / step <= MAX_POINTS


PLAUSIBLE = {"zone": st.sampled_from([None, "", "front"]), "minutes": st.sampled_from([None, 1, 15, 60, 1440]),
             "step": st.sampled_from([None, 60, 300, 3600]), "venue": st.sampled_from([None, "", KNOWN_VENUE])}
HOSTILE = {"zone": ZONES, "minutes": MINUTES, "step": STEPS, "venue": st.none() | VENUES}
GOOD_CREDENTIALS = [{"headers": AUTH}, {"cookies": {"emo7ion_token": TOKEN}}]
BAD_CREDENTIALS_SHORT = [{}, {"headers": {"Authorization": "Bearer nope"}}]


@st.composite
def requests(draw) -> tuple[str, str, dict, dict]:
    """(endpoint, venue, query parameters, credentials) of one request: either anything at all, or a plausible
    request (known venue, sensible parameters, a good token) with at most one thing made hostile."""
    endpoint = draw(st.sampled_from(["mood", "mood", "timeseries", "timeseries", "cameras", "venues"]))
    names = {"mood": ["zone", "minutes"], "timeseries": ["zone", "minutes", "step"], "cameras": ["venue"],
             "venues": []}[endpoint]
    if draw(st.booleans()):
        venue = KNOWN_VENUE
        params = {name: draw(PLAUSIBLE[name]) for name in names}
        credentials = draw(st.sampled_from(GOOD_CREDENTIALS))
        spoil = draw(st.sampled_from(["nothing", "nothing", "venue", "credentials", *names]))
        if spoil == "venue":
            venue = draw(VENUES)
        elif spoil == "credentials":
            credentials = draw(st.sampled_from(BAD_CREDENTIALS_SHORT))
        elif spoil != "nothing":
            params[spoil] = draw(HOSTILE[spoil])
    else:
        venue = draw(VENUES)
        params = {name: draw(HOSTILE[name]) for name in names}
        credentials = draw(st.sampled_from(GOOD_CREDENTIALS * 3 + BAD_CREDENTIALS_SHORT))
    if draw(st.booleans()):  # an unknown parameter is ignored
        params[draw(st.text(max_size=10).filter(lambda k: k.lower() not in ("token", "zone", "minutes", "step",
                                                                          "venue")))] = draw(HOSTILE_TEXT)
    return endpoint, venue, {k: v for k, v in params.items() if v is not None}, credentials


@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(request=requests())
def test_generated_queries_are_200_or_a_clear_4xx(live, request):
    endpoint, venue, params, credentials = request
    path = {"venues": "/api/venues", "cameras": "/api/cameras"}.get(endpoint, f"/api/venues/{quote(venue, safe='')}"
                                                                              f"/{endpoint}")
    query = {k: _query_value(v) for k, v in params.items()}
    response = get(live, path, params={**query, **credentials.get("params", {})},
                   headers=credentials.get("headers", {}), cookies=credentials.get("cookies"))
    event(f"{endpoint} {response.status_code}")  # the mix, in --hypothesis-show-statistics
    routed = endpoint in ("venues", "cameras") or (venue not in ("", ".", "..") and "/" not in venue)
    if credentials in BAD_CREDENTIALS_SHORT:
        assert_clear_4xx(response, 401 if routed else 404)
    elif expected_ok(endpoint, venue, params):
        assert response.status_code == 200, (path, query, response.status_code, response.text[:300])
        assert isinstance(response.json(), list if endpoint in ("venues", "cameras") else dict)
    else:
        assert_clear_4xx(response)
        if routed and ID.fullmatch(venue) and venue != KNOWN_VENUE and endpoint != "cameras" \
                and expected_ok(endpoint, KNOWN_VENUE, params):
            assert response.status_code == 404  # only the venue is wrong: it has not reported


def test_health_and_metrics_stay_200_after_the_bad_input(live):
    """Run last in this module: all the bad requests above left the service healthy."""
    health = get(live, "/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert get(live, "/healthz", params={"token": "wrong", "x": "../.."}).status_code == 200  # needs no token
    assert_clear_4xx(get(live, "/metrics"), 401)  # it names the cameras: behind the token (test_api_hosts.py)
    metrics = get(live, "/metrics", headers=AUTH)
    assert metrics.status_code == 200 and "emo7ion_windows_stored_total 1" in metrics.text
    mood = get(live, f"/api/venues/{KNOWN_VENUE}/mood", params={"minutes": MAX_MINUTES}, headers=AUTH)
    assert mood.json()["faces"] == 4
