"""The getbill simulator behaves like the documented API and its fault knobs work."""

from __future__ import annotations

import hashlib
import io
import json
import wave
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from click.testing import CliRunner
from fixtures_sim import sim_transport
from pypdf import PdfReader

from archiver.cli import main
from archiver.devkit.simulator import SimClock, Simulator, SimulatorConfig, SimulatorServer
from archiver.devkit.simulator.config import FOLLOWUP_STATUSES, FOLLOWUP_TYPES
from archiver.devkit.simulator.media import MP3_FRAME_SIZE, mp3_source, wav_source

API = "/external-api/v1"
RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Window",
)


def _client(sim: Simulator) -> httpx.Client:
    return httpx.Client(transport=sim_transport(sim), base_url="http://sim.test")


def _token(
    http: httpx.Client, client_id: str = "demo-client", secret: str = "demo-secret", **extra: str
) -> str:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    form.update(extra)
    response = http.post("/token", data=form)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def http(simulator: Simulator) -> Iterator[httpx.Client]:
    with _client(simulator) as client:
        client.headers["Authorization"] = f"Bearer {_token(client)}"
        yield client


def _first_with(sim: Simulator, kind: str) -> dict:
    for debt_id in sim.debt_ids("A"):
        for record in sim.followups_of(debt_id):
            if record["audio_url" if kind == "audio" else "pdf_url"]:
                return record
    raise AssertionError(f"no followup with {kind}")


# ---------------------------------------------------------------------------- auth


def test_token_response_shape(simulator: Simulator) -> None:
    with _client(simulator) as client:
        response = client.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
                "scope": "followups:read debts:read",
            },
        )
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "followups:read debts:read"


def test_token_wrong_secret_and_grant(simulator: Simulator) -> None:
    with _client(simulator) as client:
        bad = client.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "demo-client",
                "client_secret": "nope",
            },
        )
        grant = client.post(
            "/token",
            data={
                "grant_type": "password",
                "client_id": "demo-client",
                "client_secret": "demo-secret",
            },
        )
    assert bad.status_code == 401 and bad.json()["error"] is True
    assert "demo-secret" not in bad.text
    assert grant.status_code == 400


def test_missing_invalid_and_expired_token_401(simulator: Simulator, sim_clock: SimClock) -> None:
    debt = simulator.debt_ids()[0]
    with _client(simulator) as client:
        missing = client.get(f"{API}/followups/debt/{debt}")
        invalid = client.get(
            f"{API}/followups/debt/{debt}", headers={"Authorization": "Bearer nope"}
        )
        token = _token(client)
        ok = client.get(
            f"{API}/followups/debt/{debt}", headers={"Authorization": f"Bearer {token}"}
        )
        sim_clock.advance(3601)
        expired = client.get(
            f"{API}/followups/debt/{debt}", headers={"Authorization": f"Bearer {token}"}
        )
    assert ok.status_code == 200
    for response in (missing, invalid, expired):
        assert response.status_code == 401
        assert response.json() == {
            "error": True,
            "message": "Authentication credentials are missing or invalid",
            "code": 401,
            "details": response.json()["details"],
        }
        assert all(h in response.headers for h in RATE_HEADERS)


def test_static_token_accepted(simulator: Simulator, sim_clock: SimClock) -> None:
    sim_clock.advance(10 * 3600)  # static tokens never expire
    with _client(simulator) as client:
        response = client.get(f"{API}/debts", headers={"Authorization": "Bearer sim-static-token"})
    assert response.status_code == 200


def test_other_company_debt_is_403(http: httpx.Client, simulator: Simulator) -> None:
    other = simulator.debt_ids("B")[0]
    other_followup = simulator.followup_ids(other)[0]
    for path in (
        f"{API}/debts/{other}",
        f"{API}/followups/debt/{other}",
        f"{API}/followups/{other_followup}",
    ):
        response = http.get(path)
        assert response.status_code == 403, path
        assert response.json()["message"] == "Access denied to this debt"
    assert http.get(f"{API}/debts/zzzznotthere").status_code == 404


def test_missing_scope_is_403(simulator: Simulator) -> None:
    with _client(simulator) as client:
        token = _token(client, "followups-only-client", "followups-only-secret")
        auth = {"Authorization": f"Bearer {token}"}
        debts = client.get(f"{API}/debts", headers=auth)
        followups = client.get(f"{API}/followups/debt/{simulator.debt_ids()[0]}", headers=auth)
        narrowed = _token(client, scope="debts:read")
        no_followups = client.get(
            f"{API}/followups", headers={"Authorization": f"Bearer {narrowed}"}
        )
    assert debts.status_code == 403
    assert debts.json()["message"] == 'Required scope "debts:read" not found in token'
    assert followups.status_code == 200
    assert no_followups.json()["message"] == 'Required scope "followups:read" not found in token'


# ---------------------------------------------------------------------------- pagination


def test_big_debt_paginates_at_limit_100(http: httpx.Client, simulator: Simulator) -> None:
    big = simulator.debt_ids()[0]
    first = http.get(f"{API}/followups/debt/{big}", params={"limit": 100}).json()
    second = http.get(f"{API}/followups/debt/{big}", params={"limit": 100, "page": 2}).json()
    assert first["error"] is False
    assert first["pagination"] == {"total": 130, "page": 1, "limit": 100, "pages": 2}
    assert len(first["data"]) == 100 and len(second["data"]) == 30
    ids = [r["id"] for r in first["data"] + second["data"]]
    assert ids == simulator.followup_ids(big) and len(set(ids)) == 130


def test_pagination_defaults_clamp_and_errors(http: httpx.Client, simulator: Simulator) -> None:
    big = simulator.debt_ids()[0]
    default = http.get(f"{API}/followups/debt/{big}").json()["pagination"]
    clamped = http.get(f"{API}/followups/debt/{big}", params={"limit": 500}).json()["pagination"]
    past = http.get(f"{API}/followups/debt/{big}", params={"page": 99}).json()
    bad = http.get(f"{API}/followups/debt/{big}", params={"page": 0})
    empty = http.get(f"{API}/followups/debt/{simulator.debt_ids()[1]}").json()
    assert default == {"total": 130, "page": 1, "limit": 20, "pages": 7}
    assert clamped["limit"] == 100
    assert past["data"] == []
    assert bad.status_code == 400 and "page" in bad.json()["details"]
    assert empty["data"] == [] and empty["pagination"]["total"] == 0


def test_followups_list_filters_and_single(http: httpx.Client, simulator: Simulator) -> None:
    calls = http.get(
        f"{API}/followups", params={"type": "call", "status": "deal_found", "limit": 100}
    ).json()
    assert calls["data"] and all(
        r["type"] == "call" and r["status"] == "deal_found" for r in calls["data"]
    )
    assert all(simulator.company_of(r["debt_id"]) == "A" for r in calls["data"])
    assert http.get(f"{API}/followups", params={"status": "bogus"}).status_code == 400
    one = calls["data"][0]
    single = http.get(f"{API}/followups/{one['id']}").json()
    assert single["error"] is False and single["message"] == "Success"
    assert single["data"]["id"] == one["id"]
    debts = http.get(f"{API}/debts").json()
    assert debts["pagination"]["total"] == len(simulator.debt_ids("A"))
    debt = http.get(f"{API}/debts/{debts['data'][0]['id']}").json()["data"]
    assert debt["currency"] == "EUR" and debt["iban"].startswith("FR")
    assert {"firstname", "lastname", "phone", "amount", "company", "contacts"} <= set(debt)


# ---------------------------------------------------------------------------- data


def test_every_type_and_status_present(simulator: Simulator) -> None:
    records = [r for d in simulator.debt_ids("A") for r in simulator.followups_of(d)]
    assert {r["type"] for r in records} == set(FOLLOWUP_TYPES)
    assert {r["status"] for r in records} == set(FOLLOWUP_STATUSES)
    emails = [r for r in records if r["type"] == "email"]
    assert any(r["email_open_count"] for r in emails) and any(r["email_clicked"] for r in emails)
    assert any(r["notes"] and len(r["notes"].encode()) > 2000 for r in records)
    assert any(r["notes"] and "é" in r["notes"] for r in records)
    with_audio = [r for r in records if r["audio_url"]]
    assert with_audio and {r["type"] for r in with_audio} <= {"call", "voicemail"}
    assert all(r["pdf_url"] is None or r["type"] == "postmail" for r in records)
    assert any(r["pdf_url"] for r in records)


def test_same_seed_same_json_and_media(sim_clock: SimClock) -> None:
    a = Simulator(SimulatorConfig(seed=7), base_url="http://sim.test", clock=sim_clock)
    b = Simulator(SimulatorConfig(seed=7), base_url="http://sim.test", clock=sim_clock)
    c = Simulator(SimulatorConfig(seed=8), base_url="http://sim.test", clock=sim_clock)

    def snapshot(sim: Simulator) -> str:
        return json.dumps(
            {d: [sim.debt(d), sim.followups_of(d)] for d in sim.debt_ids(None)}, sort_keys=True
        )

    assert snapshot(a) == snapshot(b)
    assert snapshot(a) != snapshot(c)
    for kind in ("audio", "pdf"):
        fid = _first_with(a, kind)["id"]
        assert a.media_sha256(fid, kind) == b.media_sha256(fid, kind)
        assert hashlib.sha256(a.media_bytes(fid, kind)).hexdigest() == a.media_sha256(fid, kind)
    fid_c = _first_with(c, "audio")["id"]
    fid_a = _first_with(a, "audio")["id"]
    assert c.media_sha256(fid_c, "audio") != a.media_sha256(fid_a, "audio")


def test_media_are_real_wav_mp3_pdf(http: httpx.Client, simulator: Simulator) -> None:
    seen: dict[str, bytes] = {}
    for debt_id in simulator.debt_ids("A"):
        for record in simulator.followups_of(debt_id):
            for name in ("audio_url", "pdf_url"):
                url = record[name]
                ext = urlsplit(url).path.rsplit(".", 1)[-1] if url else None
                if url and ext not in seen:
                    response = http.get(url)
                    assert response.status_code == 200
                    assert response.headers["Content-Length"] == str(len(response.content))
                    seen[ext] = response.content
                    assert (
                        response.headers["Content-Type"]
                        == {"wav": "audio/wav", "mp3": "audio/mpeg", "pdf": "application/pdf"}[ext]
                    )
    assert set(seen) == {"wav", "mp3", "pdf"}
    with wave.open(io.BytesIO(seen["wav"])) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        assert wav.getnframes() == (len(seen["wav"]) - 44) // 2
    mp3 = seen["mp3"]
    assert mp3[:3] == b"ID3"
    tag_size = 10 + sum(b << (7 * (3 - i)) for i, b in enumerate(mp3[6:10]))
    assert mp3[tag_size : tag_size + 2] == b"\xff\xfb"
    assert (len(mp3) - tag_size) % MP3_FRAME_SIZE == 0
    assert mp3[tag_size + MP3_FRAME_SIZE : tag_size + MP3_FRAME_SIZE + 2] == b"\xff\xfb"
    assert 100_000 <= len(mp3) <= 6_000_000
    pdf = PdfReader(io.BytesIO(seen["pdf"]))
    assert "relance" in pdf.pages[0].extract_text()


def test_huge_media_streams_with_exact_size() -> None:
    size = 500 * 2**20
    source = mp3_source(1, "big", size)
    assert source.size == size
    # Only the edges: generating 500 MB in a unit test would be slow, not the point.
    tail = b"".join(source.iter_range(size - 1000, size))
    assert len(tail) == 1000
    wav = wav_source(1, "w", 3_000_001)
    assert wav.size == 3_000_000
    assert sum(len(c) for c in wav.iter_range()) == 3_000_000
    assert max(len(c) for c in wav.iter_range()) <= 128 * 1024


def test_add_followup_with_large_audio_and_status_change(
    http: httpx.Client, simulator: Simulator
) -> None:
    debt = simulator.debt_ids()[1]
    record = simulator.add_followup(debt, type="call", audio_size=2_000_000, audio_format="wav")
    listed = http.get(f"{API}/followups/debt/{debt}").json()["data"]
    assert [r["id"] for r in listed] == [record["id"]]
    media = http.get(listed[0]["audio_url"])
    assert media.headers["Content-Length"] == "2000000" and len(media.content) == 2_000_000
    simulator.set_followup_status(record["id"], "failed")
    assert http.get(f"{API}/followups/{record['id']}").json()["data"]["status"] == "failed"


# ---------------------------------------------------------------------------- signed URLs


def test_media_url_expiry_and_tampering(
    http: httpx.Client, simulator: Simulator, sim_clock: SimClock
) -> None:
    record = _first_with(simulator, "audio")
    fresh = http.get(f"{API}/followups/{record['id']}").json()["data"]
    url = fresh["audio_url"]
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.path.startswith("/media/recordings/")
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["3600"]
    expire_at = fresh["media_urls_expire_at"]
    assert expire_at.endswith("+00:00")
    assert http.get(url).status_code == 200

    tampered = dict((k, v[0]) for k, v in query.items())
    tampered["X-Amz-Expires"] = "999999"
    bad = http.get(f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(tampered)}")
    assert bad.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in bad.text
    other_file = http.get(url.replace(record["id"], _first_with(simulator, "pdf")["id"]))
    assert other_file.status_code in (403, 404)

    sim_clock.advance(3601)
    expired = http.get(url)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code>" in expired.text and "Request has expired" in expired.text
    assert expired.headers["Content-Type"] == "application/xml"
    http.headers["Authorization"] = f"Bearer {_token(http)}"  # the token expired too
    refreshed = http.get(f"{API}/followups/{record['id']}").json()["data"]
    assert http.get(refreshed["audio_url"]).status_code == 200
    assert refreshed["media_urls_expire_at"] > expire_at


def test_media_range_request(http: httpx.Client, simulator: Simulator) -> None:
    record = _first_with(simulator, "audio")
    full = simulator.media_bytes(record["id"], "audio")
    part = http.get(record["audio_url"], headers={"Range": "bytes=100-"})
    assert part.status_code == 206 and part.content == full[100:]


# ---------------------------------------------------------------------------- rate limits


def test_rate_limit_headers_and_429(simulator: Simulator) -> None:
    simulator.config.rate_limit = 3
    with _client(simulator) as client:
        auth = {"Authorization": f"Bearer {_token(client)}"}
        answers = [client.get(f"{API}/debts", headers=auth) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
    for response in answers:
        assert all(h in response.headers for h in RATE_HEADERS)
        assert response.headers["X-RateLimit-Window"] == "3600"
    limited = answers[-1]
    assert "Retry-After" not in limited.headers
    body = limited.json()
    assert body["error"] is True and body["code"] == 429
    assert body["message"] == "Rate limit exceeded. Please try again later."
    assert set(body["details"]) == {"retry_after", "limit", "reset_time"}
    assert body["details"]["limit"] == 3 and 3500 <= body["details"]["retry_after"] <= 3600
    assert body["details"]["reset_time"].endswith("Z")


def test_rate_window_slides(simulator: Simulator, sim_clock: SimClock) -> None:
    simulator.config.rate_limit = 2
    simulator.config.token_ttl_s = 10 * 3600
    with _client(simulator) as client:
        auth = {"Authorization": f"Bearer {_token(client)}"}
        assert [client.get(f"{API}/debts", headers=auth).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        sim_clock.advance(3601)
        assert client.get(f"{API}/debts", headers=auth).status_code == 200


# ---------------------------------------------------------------------------- fault knobs


def test_burst_429_and_error_rate(http: httpx.Client, simulator: Simulator) -> None:
    simulator.config.burst_429 = 2
    simulator.config.burst_retry_after_s = 5
    statuses = [http.get(f"{API}/debts") for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 429, 200]
    assert statuses[0].json()["details"]["retry_after"] == 5
    simulator.config.error_rate = 0.5
    codes = [http.get(f"{API}/debts").status_code for _ in range(40)]
    failures = [c for c in codes if c >= 500]
    assert 8 <= len(failures) <= 32 and set(failures) <= {500, 502, 503, 504}


def test_error_rate_is_deterministic(sim_clock: SimClock) -> None:
    def codes() -> list[int]:
        sim = Simulator(
            SimulatorConfig(seed=3, error_rate=0.3), base_url="http://sim.test", clock=sim_clock
        )
        with _client(sim) as client:
            auth = {"Authorization": f"Bearer {_token(client)}"}
            return [client.get(f"{API}/debts", headers=auth).status_code for _ in range(20)]

    assert codes() == codes()


def test_truncated_and_html_media(http: httpx.Client, simulator: Simulator) -> None:
    record = _first_with(simulator, "audio")
    simulator.config.html_media_first = 1
    simulator.config.truncate_media_first = 2
    html_page = http.get(record["audio_url"])
    assert html_page.status_code == 200 and html_page.headers["Content-Type"].startswith(
        "text/html"
    )
    cut = http.get(record["audio_url"])
    assert int(cut.headers["Content-Length"]) > len(cut.content) > 0
    whole = http.get(record["audio_url"])
    assert len(whole.content) == int(whole.headers["Content-Length"])
    assert whole.content == simulator.media_bytes(record["id"], "audio")


def test_unstable_total_and_duplicates(http: httpx.Client, simulator: Simulator) -> None:
    big = simulator.debt_ids()[0]
    simulator.config.unstable_total = True
    simulator.config.duplicate_across_pages = True
    one = http.get(f"{API}/followups/debt/{big}", params={"limit": 100}).json()
    two = http.get(f"{API}/followups/debt/{big}", params={"limit": 100, "page": 2}).json()
    assert one["pagination"]["total"] == 130 and two["pagination"]["total"] == 131
    assert two["data"][0]["id"] == one["data"][-1]["id"]


def test_insert_during_listing_shifts_pages_once(
    http: httpx.Client, simulator: Simulator, sim_clock: SimClock
) -> None:
    big = simulator.debt_ids()[0]
    before = simulator.followup_ids(big)
    simulator.config.insert_during_listing = 3  # one batch of 3
    url = f"{API}/followups/debt/{big}"
    one = http.get(url, params={"limit": 100}).json()
    two = http.get(url, params={"limit": 100, "page": 2}).json()
    after = simulator.followup_ids(big)
    new = after[:3]
    assert one["pagination"]["total"] == 130 and two["pagination"]["total"] == 133
    assert after[3:] == before and not set(new) & set(before)
    # Page 2 starts with the last three items of page 1; the new ones were on neither page.
    assert [r["id"] for r in two["data"][:3]] == [r["id"] for r in one["data"][-3:]]
    assert not set(new) & {r["id"] for r in one["data"] + two["data"]}
    # Backdated: the listing stays oldest first.
    stamps = [simulator.data.followups[i]["scheduled_at"] for i in after[:4]]
    assert stamps == sorted(stamps)
    assert simulator.config.insert_during_listing == 0
    # The budget is spent: a second listing is stable and shows the new ones on page 1.
    again = http.get(url, params={"limit": 100}).json()
    assert [r["id"] for r in again["data"][:3]] == new
    assert simulator.followup_ids(big) == after
    # A one-page listing never triggers an insertion.
    simulator.config.insert_during_listing = 5
    small = simulator.debt_ids()[2]
    http.get(f"{API}/followups/debt/{small}", params={"limit": 100})
    assert simulator.config.insert_during_listing == 5


def test_insert_during_listing_is_deterministic(sim_clock: SimClock) -> None:
    def run() -> list[dict]:
        sim = Simulator(SimulatorConfig(seed=4, insert_during_listing=6), clock=sim_clock)
        with _client(sim) as client:
            client.headers["Authorization"] = f"Bearer {_token(client)}"
            big = sim.debt_ids()[0]
            for _ in range(2):
                client.get(f"{API}/followups/debt/{big}", params={"limit": 100})
            return [sim.data.followups[i] for i in sim.followup_ids(big)[:6]]

    first, second = run(), run()
    assert first == second and len({r["id"] for r in first}) == 6


def test_short_url_ttl(http: httpx.Client, simulator: Simulator, sim_clock: SimClock) -> None:
    simulator.config.url_ttl_s = 2
    url = http.get(f"{API}/followups/{_first_with(simulator, 'pdf')['id']}").json()["data"][
        "pdf_url"
    ]
    assert "X-Amz-Expires=2" in url
    sim_clock.advance(2)
    assert http.get(url).status_code == 403


def test_request_log(http: httpx.Client, simulator: Simulator) -> None:
    http.get(f"{API}/debts", params={"page": 1})
    assert simulator.request_log[-1] == ("GET", f"{API}/debts", 200)
    assert [r.path for r in simulator.requests_to("/token")] == ["/token"]


# ---------------------------------------------------------------------------- real socket


def test_real_socket_end_to_end(sim_server: SimulatorServer) -> None:
    sim = sim_server.simulator
    assert sim_server.base_url.startswith("http://127.0.0.1:")
    with httpx.Client(base_url=sim_server.base_url, timeout=10) as client:
        token = _token(client)
        page = client.get(
            f"{API}/followups/debt/{sim.debt_ids()[0]}",
            params={"limit": 100},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert page.status_code == 200 and page.headers["X-RateLimit-Limit"] == "1000"
        record = next(r for r in page.json()["data"] if r["audio_url"])
        assert record["audio_url"].startswith(sim_server.base_url + "/media/recordings/")
        digest = hashlib.sha256()
        with client.stream("GET", record["audio_url"]) as media:
            assert media.status_code == 200
            for chunk in media.iter_bytes():
                digest.update(chunk)
        assert digest.hexdigest() == sim.media_sha256(record["id"], "audio")
        sim.config.truncate_media_first = 99
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(record["audio_url"])


def test_server_refuses_non_loopback() -> None:
    with pytest.raises(ValueError):
        SimulatorServer(SimulatorConfig(), host="0.0.0.0")


def test_cli_help_mentions_example() -> None:
    result = CliRunner().invoke(main, ["simulate", "--help"])
    assert result.exit_code == 0 and "Example" in result.output and "--url-ttl" in result.output
    assert "--insert-during-listing" in result.output
