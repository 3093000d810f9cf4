"""Trusted timestamps over real HTTP: the simulator, SeaweedFS and local ``openssl ts`` TSAs.

Each new manifest gets a token right after it is stored; ``verify`` checks every token; a TSA
that is down never stops archiving and a later run fills the token in; a token taken from
another manifest, or signed by an unknown TSA, is a problem."""

from __future__ import annotations

import io
import subprocess
from dataclasses import replace
from pathlib import Path

import pypdf
import pytest
from click.testing import CliRunner
from fixtures_archive import Env, manifest_of

from archiver.audit.timestamps import TimestampTrust
from archiver.audit.verify import verify_debt
from archiver.cli import main
from archiver.common.canonical import sha256_hex
from archiver.devkit.tsa import LocalTsaServer, TestTsa
from archiver.dossier import render_dossier_bytes
from archiver.store import keys
from archiver.store.types import Lock
from archiver.wiring import rerender_stored, stored_dossier_input

pytestmark = pytest.mark.integration


def _with_tsa(env: Env, urls: list[str], ca: Path | None) -> None:
    env.config = replace(env.config, tsa_urls=tuple(urls), tsa_ca=ca)


def _trust(authority: TestTsa) -> TimestampTrust:
    return TimestampTrust(ca_pem=authority.ca_pem.read_bytes(), expected=True)


def _kinds(problems: list) -> list[str]:
    return [p.kind.value for p in problems]


def _text(pdf: bytes) -> str:
    pages = pypdf.PdfReader(io.BytesIO(pdf)).pages
    return " ".join(" ".join((p.extract_text() or "") for p in pages).split())


def test_a_manifest_gets_its_token_and_verify_is_clean(
    env: Env, tsa: LocalTsaServer, tsa_authority: TestTsa, tmp_path: Path
) -> None:
    _with_tsa(env, [tsa.url], tsa_authority.ca_pem)
    debt_id = env.debts()[0]
    (res,) = env.run([debt_id]).debts
    tkey = keys.manifest_token_key(debt_id, 1)
    assert res.status == "archived" and res.problems == []
    assert res.timestamp_keys == [tkey] and res.to_json()["timestamps"] == [tkey]
    assert tsa.queries == 1

    info = env.store.head(tkey)
    assert info is not None and info.lock_mode is not None and info.retain_until is not None
    manifest_info = env.store.head(keys.manifest_key(debt_id, 1))
    assert manifest_info is not None
    assert (info.lock_mode, info.retain_until) == (
        manifest_info.lock_mode,
        manifest_info.retain_until,
    )

    result = verify_debt(
        env.store, debt_id, rerender=rerender_stored, timestamps=_trust(tsa_authority)
    )
    assert result.ok, result.problems
    assert result.timestamps == 1 and result.notices == []

    # A receiver checks it with OpenSSL alone.
    data, _ = manifest_of(env.store, debt_id, 1)
    (tmp_path / "manifest.json").write_bytes(data)
    (tmp_path / "00000001.tsr").write_bytes(env.store.read_bytes(tkey))
    done = subprocess.run(
        ["openssl", "ts", "-verify", "-data", "manifest.json", "-in", "00000001.tsr"]
        + ["-CAfile", str(tsa_authority.ca_pem)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr

    # The dossier's chain of custody shows the TSA's time and name beside the manifest.
    dossier = env.store.head(keys.dossier_key(debt_id, 1))
    assert dossier is not None and dossier.metadata.get("timestamps") == "1"
    text = _text(env.store.read_bytes(keys.dossier_key(debt_id, 1)))
    assert "Trusted timestamps (RFC 3161)" in text
    assert "CN=Test TSA, O=getbill-archiver tests" in text
    assert "openssl ts -verify -data manifest.json -in 00000001.tsr -CAfile tsa-ca.pem" in text


def test_a_token_copied_from_another_manifest_is_a_problem(
    env: Env, tsa: LocalTsaServer, tsa_authority: TestTsa, down_url: str
) -> None:
    first, second = env.debts()[:2]
    _with_tsa(env, [tsa.url], tsa_authority.ca_pem)
    env.run([first])
    _with_tsa(env, [down_url], tsa_authority.ca_pem)
    env.run([second])  # no token: its TSA is down
    # Someone with write access puts the first debt's token beside the second's manifest.
    stolen = env.store.read_bytes(keys.manifest_token_key(first, 1))
    env.store.put_bytes(
        keys.manifest_token_key(second, 1),
        stolen,
        lock=Lock("GOVERNANCE", env.store.head(keys.manifest_key(second, 1)).retain_until),  # type: ignore[union-attr]
        content_type="application/timestamp-reply",
    )
    result = verify_debt(env.store, second, timestamps=_trust(tsa_authority))
    assert _kinds(result.problems) == ["TimestampMismatch"]
    problem = result.problems[0]
    assert problem.key == keys.manifest_token_key(second, 1)
    second_data, _ = manifest_of(env.store, second, 1)
    first_data, _ = manifest_of(env.store, first, 1)
    assert problem.expected == sha256_hex(second_data)
    assert problem.found == sha256_hex(first_data)
    assert verify_debt(env.store, first, timestamps=_trust(tsa_authority)).ok


def test_a_token_signed_by_an_unknown_tsa_is_a_problem(
    env: Env, tsa_authority: TestTsa, other_authority: TestTsa
) -> None:
    debt_id = env.debts()[0]
    with LocalTsaServer(other_authority) as unknown:
        # Configured without trusted roots, the run keeps whatever token the TSA signs.
        _with_tsa(env, [unknown.url], None)
        (res,) = env.run([debt_id]).debts
    assert res.timestamp_keys == [keys.manifest_token_key(debt_id, 1)]
    result = verify_debt(env.store, debt_id, timestamps=_trust(tsa_authority))
    assert _kinds(result.problems) == ["TimestampUntrusted"]
    assert "Other Root CA" in result.problems[0].message
    # Against its own root it is fine; with no roots at all it is a notice, not a pass.
    assert verify_debt(env.store, debt_id, timestamps=_trust(other_authority)).ok
    unchecked = verify_debt(env.store, debt_id)
    assert unchecked.ok and _kinds(unchecked.notices) == ["TimestampUntrusted"]


def test_an_unknown_tsa_is_refused_at_archive_time_when_roots_are_configured(
    env: Env, tsa_authority: TestTsa, other_authority: TestTsa
) -> None:
    debt_id = env.debts()[0]
    with LocalTsaServer(other_authority) as unknown:
        _with_tsa(env, [unknown.url], tsa_authority.ca_pem)
        (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.timestamp_keys == []
    assert [p["type"] for p in res.problems] == ["TimestampMissing"]
    assert "do not certify" in res.problems[0]["message"]
    assert env.store.head(keys.manifest_token_key(debt_id, 1)) is None


def test_a_tsa_down_does_not_stop_archiving_and_the_next_run_fills_the_token_in(
    env: Env, tsa: LocalTsaServer, tsa_authority: TestTsa, down_url: str
) -> None:
    debt_id = env.debts()[0]
    tkey = keys.manifest_token_key(debt_id, 1)
    _with_tsa(env, [down_url], tsa_authority.ca_pem)
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.sequence == 1
    (warning,) = res.problems
    assert warning["type"] == "TimestampMissing" and warning["severity"] == "warning"
    assert warning["key"] == tkey and "no timestamp token for manifest 1" in warning["message"]
    assert env.store.head(tkey) is None

    noted = verify_debt(
        env.store, debt_id, rerender=rerender_stored, timestamps=_trust(tsa_authority)
    )
    assert noted.ok, noted.problems
    assert _kinds(noted.notices) == ["TimestampMissing"] and noted.notices[0].key == tkey

    # The TSA is back: the next run (nothing new: unchanged) asks for the missing token.
    _with_tsa(env, [tsa.url], tsa_authority.ca_pem)
    (again,) = env.run([debt_id]).debts
    assert again.status == "unchanged" and again.problems == []
    assert again.timestamp_keys == [tkey]
    clean = verify_debt(
        env.store, debt_id, rerender=rerender_stored, timestamps=_trust(tsa_authority)
    )
    assert clean.ok and clean.notices == [] and clean.timestamps == 1
    # The dossier stored before the token still re-renders to its own bytes (no token shown).
    assert "timestamps" not in env.store.head(keys.dossier_key(debt_id, 1)).metadata  # type: ignore[union-attr]

    # As archived it is still those bytes; rendered on demand it shows the token now stored.
    as_archived = stored_dossier_input(env.store, debt_id, 1)
    assert as_archived.timestamps == {}
    stored_pdf = env.store.read_bytes(keys.dossier_key(debt_id, 1))
    assert render_dossier_bytes(as_archived) == stored_pdf
    on_demand = stored_dossier_input(env.store, debt_id, 1, later_events=True)
    assert list(on_demand.timestamps) == [1]
    assert "CN=Test TSA" in _text(render_dossier_bytes(on_demand))
    assert "CN=Test TSA" not in _text(stored_pdf)

    # And the run after that asks nothing.
    (third,) = env.run([debt_id]).debts
    assert third.status == "unchanged" and third.timestamp_keys == [] and tsa.queries == 1


def test_missing_tokens_of_earlier_manifests_are_filled_in_oldest_first(
    env: Env, tsa: LocalTsaServer, tsa_authority: TestTsa, down_url: str
) -> None:
    debt_id = env.debts()[0]
    _with_tsa(env, [down_url], tsa_authority.ca_pem)
    env.run([debt_id])
    env.sim.add_followup(
        debt_id, type="email", status="sent"
    )  # something new: the next run writes manifest 2
    _with_tsa(env, [tsa.url], tsa_authority.ca_pem)
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.sequence == 2
    assert res.timestamp_keys == [
        keys.manifest_token_key(debt_id, 2),
        keys.manifest_token_key(debt_id, 1),
    ]
    result = verify_debt(
        env.store, debt_id, rerender=rerender_stored, timestamps=_trust(tsa_authority)
    )
    assert result.ok and result.timestamps == 2 and result.notices == []
    # Dossier 2 shows both manifests' timestamps.
    assert env.store.head(keys.dossier_key(debt_id, 2)).metadata["timestamps"] == "1-2"  # type: ignore[union-attr]


def test_two_tsas_one_down_the_other_gives_the_token(
    env: Env, tsa: LocalTsaServer, tsa_authority: TestTsa, down_url: str
) -> None:
    debt_id = env.debts()[0]
    _with_tsa(env, [down_url, tsa.url], tsa_authority.ca_pem)
    (res,) = env.run([debt_id]).debts
    assert res.status == "archived" and res.problems == []
    assert res.timestamp_keys == [keys.manifest_token_key(debt_id, 1)]
    assert verify_debt(env.store, debt_id, timestamps=_trust(tsa_authority)).ok


def test_a_refusing_tsa_is_a_warning_too(
    env: Env, tsa: LocalTsaServer, tsa_authority: TestTsa
) -> None:
    tsa.refuse = True
    _with_tsa(env, [tsa.url], tsa_authority.ca_pem)
    (res,) = env.run([env.debts()[0]]).debts
    assert res.status == "archived"
    assert [(p["type"], p["severity"]) for p in res.problems] == [("TimestampMissing", "warning")]
    assert "refused the request" in res.problems[0]["message"]


def test_cli_archive_and_verify_use_the_configured_tsa(
    env: Env, tsa: LocalTsaServer, tsa_authority: TestTsa, other_authority: TestTsa
) -> None:
    debt_id = env.debts()[0]
    cli_env = {
        **env.cli_env(),
        "ARCHIVER_TSA_URL": tsa.url,
        "ARCHIVER_TSA_CA": str(tsa_authority.ca_pem),
    }
    r = CliRunner().invoke(main, ["archive", debt_id, "--json"], env=cli_env)
    assert r.exit_code == 0, r.output
    assert env.store.head(keys.manifest_token_key(debt_id, 1)) is not None
    r = CliRunner().invoke(main, ["verify", debt_id], env=cli_env)
    assert r.exit_code == 0, r.output
    # Trusting another root only, the same token is a problem: exit 1, named.
    other = {**cli_env, "ARCHIVER_TSA_CA": str(other_authority.ca_pem)}
    r = CliRunner().invoke(main, ["verify", debt_id], env=other)
    assert r.exit_code == 1 and "TimestampUntrusted" in r.output


def test_a_pack_carries_the_tsa_roots_and_pack_verify_checks_the_signatures(
    env: Env,
    tsa_authority: TestTsa,
    other_authority: TestTsa,
    tmp_path: Path,
) -> None:
    """The pack holds data/tsa-ca.pem (the operator's ARCHIVER_TSA_CA): `pack verify` checks
    each token's signature and chain with it, offline. A token signed by a TSA those roots
    do not certify is a problem there, as in `verify`."""
    from archiver.pack import verify_pack
    from archiver.pack.build import PackSettings, build_pack

    trusted, unknown = env.debts()[0], env.debts()[2]
    with LocalTsaServer(tsa_authority) as good:
        _with_tsa(env, [good.url], tsa_authority.ca_pem)
        env.run([trusted])
    with LocalTsaServer(other_authority) as stranger:
        _with_tsa(env, [stranger.url], None)  # nothing checked at archive time
        env.run([unknown])
    settings = PackSettings(
        organization="Test Collections",
        actor="tester",
        tsa_ca_pem=tsa_authority.ca_pem.read_bytes(),
    )
    for debt_id in (trusted, unknown):
        build_pack(env.store, debt_id, tmp_path / debt_id, settings)
        assert (tmp_path / debt_id / "data/tsa-ca.pem").read_bytes() == settings.tsa_ca_pem
    clean = verify_pack(tmp_path / trusted)
    assert clean.ok and clean.tokens == 1, clean.problems
    bad = verify_pack(tmp_path / unknown)
    assert not bad.ok
    assert [p.key for p in bad.problems] == ["data/manifests/00000001.tsr"]
