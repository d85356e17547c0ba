"""The API's hosts and its guarded pages (issue 20 part 5): a Host the aggregator is not reached by is refused
(DNS rebinding against the loopback, tokenless default), and /metrics, /docs and /openapi.json are behind the token
when one is set, /metrics also behind a metrics-only token. A real aggregator (real Mosquitto, SQLite, HTTP), and a
real Chromium for the rebinding itself."""

from __future__ import annotations

import socket

import httpx
import pytest
from browser import browser_missing, find_chromium

from emo7ion.aggregator.allowed_hosts import AllowedHosts
from emo7ion.aggregator.config import AggregatorConfig, load
from emo7ion.core.service.settings import ConfigError
from helpers import LiveAggregator, wait_until

TOKEN, METRICS_TOKEN = "s3cret-token", "scrape-only"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}
PAGES = ["/", "/api/meta", "/api/venues", "/api/venues/hall-a/mood", "/api/cameras", "/healthz", "/metrics",
         "/openapi.json", "/docs", "/static/app.js"]


def publish_one(live: LiveAggregator) -> None:
    """One window of hall-a/cam-1, once the aggregator is connected (and so subscribed: a window published before
    its first subscription reaches nobody, which a loaded machine made happen)."""
    assert wait_until(lambda: live.get("/healthz").status_code == 200, 30), "the aggregator never connected"
    live.publish_window("hall-a", "cam-1", {"happy": 3}, zone="front")
    assert live.wait_stored(1, timeout=30)


@pytest.fixture(scope="module")
def open_live(tmp_path_factory):
    """The default: loopback, no token."""
    live = LiveAggregator(tmp_path_factory.mktemp("hosts-open"))
    publish_one(live)
    yield live
    live.close()


@pytest.fixture(scope="module")
def token_live(tmp_path_factory):
    live = LiveAggregator(tmp_path_factory.mktemp("hosts-token"), token=TOKEN, metrics_token=METRICS_TOKEN,
                          allowed_hosts="emo7ion.venue.example, *.screens.example")
    publish_one(live)
    yield live
    live.close()


def with_host(live: LiveAggregator, path: str, host: str, **kwargs) -> httpx.Response:
    return live.get(path, headers={"Host": host, **kwargs.pop("headers", {})}, **kwargs)


def test_a_foreign_host_is_refused_on_every_page_and_the_local_names_are_served(open_live):
    port = open_live.service.port
    for path in PAGES:
        for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", "localhost.evil",
                     "EVIL.example.", f"[::2]:{port}", "10.0.0.1"):
            response = with_host(open_live, path, host)
            assert response.status_code == 400, (path, host, response.status_code)
            assert "allowed_hosts" in response.json()["detail"] and host[:20] in response.json()["detail"]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST.:{port}", f"[::1]:{port}", "localhost"):
            assert with_host(open_live, path, host).status_code == 200, (path, host)


def test_dns_rebinding_from_a_real_browser_reads_nothing(open_live):
    """Chromium resolves evil.example to 127.0.0.1 (what the attacker's DNS does after the page loaded): a page of
    that origin asks the aggregator for its venues and gets the 400, not the data."""
    if browser_missing():
        pytest.skip(browser_missing())
    from playwright.sync_api import sync_playwright

    port = open_live.service.port
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--host-resolver-rules=MAP evil.example 127.0.0.1"])
        try:
            page = browser.new_page()
            evil = page.goto(f"http://evil.example:{port}/api/venues")
            assert evil.status == 400 and "hall-a" not in page.content()
            read = page.evaluate("fetch('/api/cameras').then(r => r.text().then(t => [r.status, t]))")
            assert read[0] == 400 and "cam-1" not in read[1], read
            honest = page.goto(f"http://localhost:{port}/api/venues")  # the same browser, by the right name
            assert honest.status == 200 and "hall-a" in page.content()
        finally:
            browser.close()


def test_allowed_hosts_adds_names_and_subdomains(token_live):
    for host in ("emo7ion.venue.example", "emo7ion.venue.example:443", "wall-1.screens.example"):
        assert with_host(token_live, "/api/venues", host, headers=AUTH).status_code == 200, host
    for host in ("venue.example", "screens.example", "evil.example", "emo7ion.venue.example.evil"):
        assert with_host(token_live, "/api/venues", host, headers=AUTH).status_code == 400, host


def test_two_host_headers_are_refused(open_live):
    """An allowed Host first and the attacker's second (a client library would refuse to send it: a raw socket)."""
    with socket.create_connection(("127.0.0.1", open_live.service.port), timeout=5) as sock:
        sock.sendall(f"GET /api/venues HTTP/1.1\r\nHost: 127.0.0.1:{open_live.service.port}\r\n"
                     "Host: evil.example\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ") and b"hall-a" not in answer, answer[:200]


def test_a_wildcard_bind_also_answers_ip_addresses_never_other_names():
    hosts = AllowedHosts(AggregatorConfig(host="0.0.0.0", token="t"))
    assert all(hosts.allows(h) for h in ("192.168.1.20:8080", "[fe80::1]:8080", "10.0.0.7", "localhost:8080"))
    assert not any(hosts.allows(h) for h in ("evil.example", "evil.example:8080", "192.168.1.20.evil.example"))
    named = AllowedHosts(AggregatorConfig(host="192.168.1.20", token="t"))
    assert named.allows("192.168.1.20:8080") and named.allows("127.0.0.1") and not named.allows("10.0.0.7")
    assert AllowedHosts(AggregatorConfig(allowed_hosts="*")).allows("anything.example")


def test_metrics_and_the_openapi_pages_are_behind_the_token(token_live):
    for path in ("/metrics", "/openapi.json", "/docs", "/redoc"):
        for credentials in ({}, {"headers": {"Authorization": "Bearer wrong"}}, {"params": {"token": TOKEN}}):
            response = token_live.get(path, **credentials)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer", (path, credentials)
        assert token_live.get(path, headers=AUTH).status_code == 200, path
    metrics = token_live.get("/metrics", headers=SCRAPE)  # what Prometheus' `authorization: credentials` sends
    assert metrics.status_code == 200 and 'camera="cam-1"' in metrics.text
    assert token_live.get("/api/venues", headers=SCRAPE).status_code == 401, "the metrics token opens only /metrics"
    assert token_live.get("/openapi.json", headers=SCRAPE).status_code == 401
    assert token_live.get("/metrics", cookies={"emo7ion_token": TOKEN}).status_code == 401  # the stream's cookie
    assert token_live.get("/healthz").status_code == 200  # health stays open for load balancers
    assert "/api/venues" in token_live.get("/openapi.json", headers=AUTH).json()["paths"]


def test_without_a_token_the_pages_stay_open(open_live):
    assert open_live.get("/metrics").status_code == 200
    assert "/api/venues/{venue}/mood" in open_live.get("/openapi.json").json()["paths"]
    assert "swagger" in open_live.get("/docs").text.lower()


def test_a_metrics_token_alone_guards_only_metrics(tmp_path):
    live = LiveAggregator(tmp_path, metrics_token=METRICS_TOKEN)
    try:
        assert live.get("/metrics").status_code == 401
        assert live.get("/metrics", headers=SCRAPE).status_code == 200
        assert live.get("/api/venues").status_code == 200
    finally:
        live.close()


@pytest.mark.parametrize(("settings", "key"), [
    ({"allowed_hosts": "http://dashboard.example"}, "allowed_hosts"),
    ({"allowed_hosts": "dashboard.example:8080"}, "allowed_hosts"),
    ({"allowed_hosts": "ok.example, bad/path"}, "allowed_hosts"),
    ({"max_connections": 0}, "max_connections"), ({"header_timeout_s": -1}, "header_timeout_s"),
    ({"keepalive_timeout_s": 0}, "keepalive_timeout_s"), ({"max_connections": "many"}, "max_connections"),
])
def test_bad_http_settings_name_their_key(settings, key):
    with pytest.raises(ConfigError, match=key):
        load(None, settings, environ={})


def test_allowed_hosts_from_the_environment():
    config = load(None, None, environ={"EMO7ION_AGG__ALLOWED_HOSTS": " Dashboard.Example , [fe80::1],*.b.example"})
    assert config.allowed_hosts == "dashboard.example,[fe80::1],*.b.example"
