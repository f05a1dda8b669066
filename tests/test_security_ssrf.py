"""Downloads and keyframe URLs never reach an internal service, and a URL the app refused to
fetch never reaches a viewer's browser (issue 9, findings 4 to 7).

The internal services and the upstream here are tiny real HTTP servers on 127.0.0.1 that count
what they receive: "nothing reached the internal service" is read from the service itself.
"""

from __future__ import annotations

import http.server
import ipaddress
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generations import fetch, pipeline
from generations.models import Generation, Status
from tests.factories import make_user

MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 8 + b"x" * 2000
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200
PUBLIC_UPSTREAM = "https://api.umamiai.xyz/v1"


@dataclass
class Service:
    """A real HTTP server on 127.0.0.1 that serves a video and a thumbnail, and records every
    request it receives (so a test can say that nothing reached it). ``/to/<url>`` redirects."""

    port: int
    requests: list[str] = field(default_factory=list)

    def url(self, path: str = "/v.mp4", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def serve() -> Iterator[Callable[[], Service]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start() -> Service:
        service = Service(port=0)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.requests.append(self.path)
                if self.path.startswith("/to/"):
                    self.send_response(302)
                    self.send_header("Location", self.path[4:])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, ctype = {
                    ".jpg": (JPEG, "image/jpeg"),
                    ".txt": (b"<html>not a video</html>", "text/html"),
                }.get(self.path[-4:], (MP4, "video/mp4"))
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        service.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return service

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def live(settings):
    """Live mode (the private-address rules apply) against a public upstream."""
    settings.LUMA_DEMO_MODE = False
    settings.LUMA_API_BASE_URL = PUBLIC_UPSTREAM
    settings.LUMA_DOWNLOAD_TIMEOUT = 5
    return settings


# --- finding 4: IPv6 transition addresses ----------------------------------------------------
# Each of these reaches an IPv4 address that is not public (loopback, a private network, the
# cloud metadata address) through an IPv6 form that Python's own table calls global. (Teredo,
# refused whole, Python's table already calls private: that case passed before the change.)
TRANSITION = {
    "IPv4-compatible ::127.0.0.1": "::127.0.0.1",
    "IPv4-compatible ::10.0.0.1": "::a00:1",
    "NAT64 64:ff9b::/96 to 127.0.0.1": "64:ff9b::7f00:1",
    "NAT64 64:ff9b::/96 to 169.254.169.254": "64:ff9b::a9fe:a9fe",
    "local-use NAT64 64:ff9b:1::/48": "64:ff9b:1:7f00:1::",
    "6to4 2002::/16 from 127.0.0.1": "2002:7f00:1::1",
    "6to4 2002::/16 from 192.168.0.1": "2002:c0a8:1::1",
    "SIIT ::ffff:0:127.0.0.1": "::ffff:0:7f00:1",
    "SIIT ::ffff:0:10.1.2.3": "::ffff:0:a01:203",
    "Teredo to client 127.0.0.1": "2001:0:4136:e378:8000:63bf:80ff:fffe",
}
PUBLIC_ONES = {
    "NAT64 to a public address": "64:ff9b::808:808",
    "6to4 from a public address": "2002:808:808::1",
    "an ordinary global address": "2606:4700:4700::1111",
    "a public IPv4 address": "8.8.8.8",
}


@pytest.mark.parametrize("name", TRANSITION)
def test_an_ipv6_transition_address_that_embeds_a_non_public_ipv4_is_not_public(name):
    assert not fetch.address_is_public(TRANSITION[name])


@pytest.mark.parametrize("name", PUBLIC_ONES)
def test_addresses_that_embed_a_public_ipv4_stay_public(name):
    assert fetch.address_is_public(PUBLIC_ONES[name])


@pytest.mark.parametrize("name", TRANSITION)
def test_transition_addresses_are_refused_as_keyframe_urls_by_the_api_and_the_form(db, live, name):
    url = f"http://[{TRANSITION[name]}]/a.jpg"
    alice = make_user("alice")
    client = Client()
    client.force_login(alice)
    response = client.post(
        "/api/v1/generations",
        {"user_prompt": "x", "image_url": url},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert "image_url" in response.json()["fields"]
    page = client.post(
        reverse("generation-new"), {"user_prompt": "x", "aspect_ratio": "16:9", "image_url": url}
    )
    assert page.status_code == 400
    assert "cannot fetch this address" in page.content.decode()
    assert not Generation.objects.exists()


@pytest.mark.parametrize("name", TRANSITION)
def test_transition_addresses_are_refused_as_download_targets(db, live, name):
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to_storage(
            f"http://[{TRANSITION[name]}]:8080/v.mp4", "videos/t.mp4", fetch.video_kind()
        )
    assert err.value.permanent, err.value  # refused, not merely unreachable from here
    assert "private address" in str(err.value)


# --- finding 5: DNS rebinding ----------------------------------------------------------------
class RebindingResolver:
    """A name whose first answer is a public address and every later one 127.0.0.1.

    A fake, and the only one in this file, because no real part can produce the case on one
    machine: rebinding needs a DNS server that changes its answer between two look-ups, and the
    system resolver cannot be pointed at a test's own DNS server without root (resolv.conf).
    It stands in for the name service only, through the resolver hook that fetch uses for every
    look-up (``fetch.resolve``); the sockets, the HTTP and the internal service stay real.
    """

    NAME = "rebinding.invalid"  # .invalid never resolves for real (RFC 6761)

    def __init__(self) -> None:
        self.answers: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        if host != self.NAME:
            return fetch.system_resolve(host, port)
        answer = "93.184.215.14" if not self.answers else "127.0.0.1"
        self.answers.append(answer)
        return [answer]


def test_a_name_that_rebinds_to_an_internal_address_never_gets_a_request_there(
    db, live, serve, monkeypatch
):
    internal = serve()
    resolver = RebindingResolver()
    monkeypatch.setattr(fetch, "resolve", resolver)
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to_storage(
            internal.url(host=RebindingResolver.NAME), "videos/rebound.mp4", fetch.video_kind()
        )
    assert internal.requests == [], "the internal service received a request"
    assert resolver.answers[0] == "93.184.215.14" and "127.0.0.1" in resolver.answers
    assert err.value.permanent and "private address" in str(err.value)
    assert not default_storage.exists("videos/rebound.mp4")


def test_every_redirect_hop_is_pinned_to_a_checked_address(db, live, serve, monkeypatch):
    """A public file server whose redirect points at the rebinding name: same outcome."""
    internal = serve()
    resolver = RebindingResolver()
    monkeypatch.setattr(fetch, "resolve", resolver)
    # The first hop is the upstream's own origin (trusted): it redirects to the rebinding name.
    upstream = serve()
    live.LUMA_API_BASE_URL = upstream.url("/v1")
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to_storage(
            upstream.url("/to/" + internal.url(host=RebindingResolver.NAME)),
            "videos/rebound2.mp4",
            fetch.video_kind(),
        )
    assert len(upstream.requests) == 1
    assert internal.requests == [], "the internal service received a request"
    assert err.value.permanent and "private address" in str(err.value)


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, Path]:
    """A throw-away CA and a certificate it signed for ``pinned.invalid`` (openssl's command
    line: the project has no certificate library, and a real TLS handshake is the point)."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make the test certificates"

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=tmp_path, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=lumaweb test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=pinned.invalid",
    )
    (tmp_path / "leaf.ext").write_text(
        "subjectAltName=DNS:pinned.invalid\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    run(
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    )
    return {name: tmp_path / name for name in ("ca.pem", "leaf.pem", "leaf.key")}


def test_a_pinned_https_connection_keeps_the_name_for_host_sni_and_the_certificate(
    db, settings, monkeypatch, certificates
):
    """Pinning changes where the socket goes, not what is said on it: the Host header, the TLS
    server name and the certificate check are all for the URL's name, not the address."""
    settings.LUMA_DEMO_MODE = True  # 127.0.0.1 allowed: this test is about names, not addresses
    seen: dict[str, list[str | None]] = {"host": [], "sni": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen["host"].append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(MP4)))
            self.end_headers()
            self.wfile.write(MP4)

        def log_message(self, *args: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates["leaf.pem"], certificates["leaf.key"])
    context.sni_callback = lambda sock, name, ctx: seen["sni"].append(name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    # Both names stand for this server's address; only one of them is on its certificate.
    names = {"pinned.invalid": ["127.0.0.1"], "other.invalid": ["127.0.0.1"]}
    monkeypatch.setattr(fetch, "resolve", lambda host, port: names[host])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificates["ca.pem"]))
    try:
        name, size = fetch.download_to_storage(
            f"https://pinned.invalid:{port}/v.mp4", "videos/tls.mp4", fetch.video_kind()
        )
        assert size == len(MP4)
        default_storage.delete(name)
        assert seen == {"host": [f"pinned.invalid:{port}"], "sni": ["pinned.invalid"]}
        with pytest.raises(fetch.FetchError, match="SSLError"):
            fetch.download_to_storage(
                f"https://other.invalid:{port}/v.mp4", "videos/tls2.mp4", fetch.video_kind()
            )
        assert seen["host"] == [f"pinned.invalid:{port}"]  # no request over the wrong name
    finally:
        server.shutdown()
        server.server_close()


# --- finding 6: the upstream is trusted by origin, not by host name --------------------------
def test_files_on_another_port_of_the_upstreams_host_are_refused(db, live, serve):
    upstream, other = serve(), serve()
    live.LUMA_API_BASE_URL = upstream.url("/v1", host="localhost")
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to_storage(other.url(host="localhost"), "videos/p.mp4", fetch.video_kind())
    assert err.value.permanent and "private address" in str(err.value)
    assert other.requests == [], "a service on another port of the upstream's host was reached"
    # The upstream's own origin (scheme, host and port) is still trusted:
    name, size = fetch.download_to_storage(
        upstream.url(host="localhost"), "videos/p.mp4", fetch.video_kind()
    )
    assert size == len(MP4) and default_storage.exists(name)
    default_storage.delete(name)


def test_a_redirect_from_the_upstream_to_another_port_is_refused(db, live, serve):
    upstream, other = serve(), serve()
    live.LUMA_API_BASE_URL = upstream.url("/v1", host="localhost")
    with pytest.raises(fetch.FetchError) as err:
        fetch.download_to_storage(
            upstream.url("/to/" + other.url(host="localhost"), host="localhost"),
            "videos/p2.mp4",
            fetch.video_kind(),
        )
    assert err.value.permanent
    assert other.requests == []


def test_the_upstreams_scheme_is_part_of_its_origin(live, serve):
    upstream = serve()
    live.LUMA_API_BASE_URL = f"https://localhost:{upstream.port}/v1"
    with pytest.raises(fetch.FetchError) as err:
        fetch.check_url(upstream.url(host="localhost"))
    assert err.value.permanent


# --- finding 7: a refused URL never reaches a browser ----------------------------------------
def test_a_refused_copy_leaves_no_private_url_in_the_pages_or_the_api(db, live, serve):
    internal = serve()
    alice = make_user("alice")
    gen = Generation.objects.create(
        user_prompt="refused",
        created_by=alice,
        status=Status.COMPLETED,
        remote_id="r-refused",
        completed_at=timezone.now(),
        video_url=internal.url("/cdn/v.mp4"),
        thumbnail_url=internal.url("/cdn/t.jpg"),
        assets_next_at="2000-01-01T00:00:00Z",
    )
    assert pipeline.copy_assets(gen.pk) == "failed"
    assert internal.requests == []
    gen.refresh_from_db()
    assert gen.display_video_url == "" and gen.display_thumbnail_url == ""
    assert gen.is_settled

    client = Client()
    client.force_login(alice)
    pages = {
        "detail": client.get(reverse("generation-detail", args=[gen.pk])).content.decode(),
        "gallery": client.get(reverse("gallery")).content.decode(),
        "jobs": client.get(reverse("jobs")).content.decode(),
        "api": client.get(f"/api/v1/generations/{gen.pk}").content.decode(),
    }
    for where, html in pages.items():
        assert "127.0.0.1" not in html, where
        assert str(internal.port) not in html, where
    for where in ("detail", "gallery"):
        assert "The video could not be fetched" in pages[where], where
    assert "<video" not in pages["detail"]


def test_a_thumbnail_is_still_copied_when_only_the_video_is_refused(db, live, serve):
    internal, public = serve(), serve()
    live.LUMA_API_BASE_URL = public.url("/v1")  # stands in for a public CDN: the upstream's origin
    gen = Generation.objects.create(
        user_prompt="half refused",
        status=Status.COMPLETED,
        remote_id="r-half",
        video_url=internal.url("/cdn/v.mp4"),
        thumbnail_url=public.url("/cdn/t.jpg"),
        assets_next_at="2000-01-01T00:00:00Z",
    )
    assert pipeline.copy_assets(gen.pk) == "failed"
    gen.refresh_from_db()
    assert internal.requests == [] and public.requests == ["/cdn/t.jpg"]
    assert gen.video_url == "" and gen.thumbnail_file
    assert gen.asset_error == "The video was not fetched: its address is not public."


def test_a_copy_that_fails_for_another_reason_keeps_the_upstream_url(db, live, serve):
    """Only a refusal clears a URL: a file that is merely late or broken stays viewable."""
    upstream = serve()
    live.LUMA_API_BASE_URL = upstream.url("/v1")
    gen = Generation.objects.create(
        user_prompt="not a video",
        status=Status.COMPLETED,
        remote_id="r-page",
        video_url=upstream.url("/cdn/page.txt"),  # an HTML page, not a video
        assets_next_at="2000-01-01T00:00:00Z",
    )
    assert pipeline.copy_assets(gen.pk) == "failed"
    gen.refresh_from_db()
    assert gen.video_url == upstream.url("/cdn/page.txt")
    assert "content type" in gen.asset_error


def test_ip_literals_are_checked_without_a_lookup(monkeypatch, live):
    """An address literal is its own answer: the resolver is not asked (nor fooled)."""

    def no_lookups(host: str, port: int) -> list[str]:
        raise AssertionError(f"looked up {host}")

    monkeypatch.setattr(fetch, "resolve", no_lookups)
    with pytest.raises(fetch.FetchError):
        fetch.check_url("http://[64:ff9b::7f00:1]/v.mp4")
    fetch.check_url("http://8.8.8.8/v.mp4")
    assert ipaddress.ip_address("8.8.8.8").is_global
