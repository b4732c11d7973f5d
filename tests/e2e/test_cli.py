"""The `pixlive` command as an operator uses it: keys, simulate-payment, and `serve` in
production mode (refusing to start without its settings) and in sandbox mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pixlive.domain.brcode import parse_tlv, verify_crc
from tests.e2e.conftest import Server, assert_error, free_port, pixlive, server_env, start_server

PRODUCTION_SETTINGS = (
    "PIXLIVE_WEBHOOK_SECRET",
    "PIXLIVE_PIX_KEY",
    "PIXLIVE_MERCHANT_NAME",
    "PIXLIVE_MERCHANT_CITY",
)
PROD_SECRET = "whsec_prod_VERY-SECRET-value-0123456789"


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# API keys ------------------------------------------------------------------------------


def test_apikey_create_list_revoke(shared_server: Server) -> None:
    made = shared_server.cli("apikey", "create", "shop-backend")
    assert made.returncode == 0, made.stderr
    key = last_line(made.stdout)
    assert re.fullmatch(r"pxl_[A-Za-z0-9_\-]{40,}", key), made.stdout
    headers = {"Authorization": f"Bearer {key}"}
    created = shared_server.http.post("/payments/pix", json={"value": "1.00"}, headers=headers)
    assert created.status_code == 201, created.text
    assert shared_server.http.get("/payments/pix", headers=headers).status_code == 200

    listed = shared_server.cli("apikey", "list")
    assert listed.returncode == 0, listed.stderr
    assert "shop-backend" in listed.stdout
    assert key not in listed.stdout and key[8:] not in listed.stdout
    assert shared_server.api_key not in listed.stdout
    line = next(x for x in listed.stdout.splitlines() if x.startswith("shop-backend"))
    assert "active" in line

    # One active key per name.
    again = shared_server.cli("apikey", "create", "shop-backend")
    assert again.returncode != 0
    assert "shop-backend" in again.stderr
    assert "pxl_" not in again.stdout

    revoked = shared_server.cli("apikey", "revoke", "shop-backend")
    assert revoked.returncode == 0, revoked.stderr
    assert_error(shared_server.http.get("/payments/pix", headers=headers), 401)
    listed = shared_server.cli("apikey", "list")
    line = next(x for x in listed.stdout.splitlines() if x.startswith("shop-backend"))
    assert "revoked" in line
    assert key not in listed.stdout

    # Revoking what is not there says so.
    assert shared_server.cli("apikey", "revoke", "shop-backend").returncode != 0
    assert shared_server.cli("apikey", "revoke", "never-existed").returncode != 0

    # The name can be used again, for a new key.
    renewed = shared_server.cli("apikey", "create", "shop-backend")
    assert renewed.returncode == 0
    new_key = last_line(renewed.stdout)
    assert new_key != key
    new_headers = {"Authorization": f"Bearer {new_key}"}
    assert shared_server.http.get("/payments/pix", headers=new_headers).status_code == 200
    assert_error(shared_server.http.get("/payments/pix", headers=headers), 401)


# simulate-payment ----------------------------------------------------------------------


def test_simulate_payment_pays_the_charge(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    done = shared_server.cli("simulate-payment", charge["id"], "--url", shared_server.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"paid"' in done.stdout
    paid = shared_server.charge(charge["id"])
    assert paid["status"] == "PAID"
    assert paid["end_to_end_id"] and paid["paid_at"]


def test_simulate_payment_uses_public_url_by_default(shared_server: Server) -> None:
    charge = shared_server.create_charge("3.21")
    done = shared_server.cli("simulate-payment", charge["id"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert shared_server.charge(charge["id"])["status"] == "PAID"


def test_simulate_payment_with_another_value_is_a_mismatch(shared_server: Server) -> None:
    charge = shared_server.create_charge("12.34")
    done = shared_server.cli(
        "simulate-payment", charge["id"], "--value", "1.00", "--url", shared_server.url
    )
    assert done.returncode != 0
    assert '"mismatch"' in done.stdout
    assert "mismatch" in done.stderr
    assert "Traceback" not in done.stderr
    assert shared_server.charge(charge["id"])["status"] == "ACTIVE"

    # Paying a charge twice: the command says it is paid already, and sends nothing.
    assert shared_server.cli("simulate-payment", charge["id"]).returncode == 0
    paid = shared_server.charge(charge["id"])
    second = shared_server.cli("simulate-payment", charge["id"])
    assert second.returncode != 0
    assert "already paid" in second.stderr and "mismatch" not in second.stderr
    assert shared_server.charge(charge["id"]) == paid  # no mismatch event either


def test_simulate_payment_failures_exit_non_zero(shared_server: Server) -> None:
    unknown = shared_server.cli("simulate-payment", "Q" * 25, "--url", shared_server.url)
    assert unknown.returncode != 0
    assert "404" in unknown.stderr

    malformed = shared_server.cli(
        "simulate-payment", "Q" * 25, "--value", "1,00", "--url", shared_server.url
    )
    assert malformed.returncode != 0

    wrong_secret = shared_server.cli(
        "simulate-payment",
        shared_server.create_charge("1.00")["id"],
        "--url",
        shared_server.url,
        PIXLIVE_WEBHOOK_SECRET="whsec_not_the_servers_secret_000",
    )
    assert wrong_secret.returncode != 0
    assert "invalid_signature" in wrong_secret.stdout

    nobody = shared_server.cli(
        "simulate-payment", "Q" * 25, "--url", f"http://127.0.0.1:{free_port()}"
    )
    assert nobody.returncode != 0
    assert "Traceback" not in nobody.stderr
    assert "cannot reach" in nobody.stderr


# serve in production mode --------------------------------------------------------------


def _serve(tmp_path: Path, unset: tuple[str, ...] = (), **settings: str) -> tuple[int, str]:
    port = free_port()
    env = server_env(tmp_path, port, unset=unset, PIXLIVE_ENV="production", **settings)
    done = pixlive(env, tmp_path, "serve", "--port", str(port))
    return done.returncode, done.stdout + done.stderr


def test_production_refuses_to_start_without_its_settings(tmp_path: Path) -> None:
    code, output = _serve(tmp_path, unset=PRODUCTION_SETTINGS)
    assert code != 0
    for name in PRODUCTION_SETTINGS:
        assert name in output, output
    assert "Traceback" not in output


def test_production_names_only_what_is_missing_and_never_a_secret(tmp_path: Path) -> None:
    code, output = _serve(
        tmp_path,
        unset=("PIXLIVE_MERCHANT_NAME",),
        PIXLIVE_WEBHOOK_SECRET=PROD_SECRET,
        PIXLIVE_PIX_KEY="chave-secreta@loja.example",
        PIXLIVE_MERCHANT_CITY="   ",
    )
    assert code != 0
    assert "PIXLIVE_MERCHANT_NAME" in output
    assert "PIXLIVE_MERCHANT_CITY" in output  # blank is not set
    assert "PIXLIVE_WEBHOOK_SECRET" not in output
    assert "PIXLIVE_PIX_KEY" not in output
    assert PROD_SECRET not in output
    assert "VERY-SECRET" not in output


def test_production_with_an_empty_secret_refuses_to_start(tmp_path: Path) -> None:
    code, output = _serve(
        tmp_path,
        PIXLIVE_WEBHOOK_SECRET="",
        PIXLIVE_PIX_KEY="loja@example.com",
        PIXLIVE_MERCHANT_NAME="Loja",
        PIXLIVE_MERCHANT_CITY="Recife",
    )
    assert code != 0
    assert "PIXLIVE_WEBHOOK_SECRET" in output


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("production") / "server",
        PIXLIVE_ENV="production",
        PIXLIVE_WEBHOOK_SECRET=PROD_SECRET,
        PIXLIVE_PIX_KEY="financeiro@padaria.example",
        PIXLIVE_MERCHANT_NAME="Padaria São João",
        PIXLIVE_MERCHANT_CITY="São Paulo",
    )
    try:
        yield running
    finally:
        running.stop()


def test_production_starts_with_its_settings(production: Server) -> None:
    assert production.http.get("/healthz").status_code == 200
    assert production.http.get("/readyz").status_code == 200

    charge = production.create_charge("12.34")
    code = charge["pix_copia_e_cola"]
    assert verify_crc(code)
    fields = parse_tlv(code)
    assert parse_tlv(fields["26"])["01"] == "financeiro@padaria.example"
    assert fields["59"] == "Padaria Sao Joao"
    assert fields["60"] == "Sao Paulo"

    # The webhook takes a delivery signed with the configured secret.
    assert production.pay(charge["id"], "12.34").json()["results"][0]["outcome"] == "paid"


def test_production_has_no_sandbox(production: Server) -> None:
    assert_error(production.http.get("/"), 404)
    assert_error(production.http.post("/sandbox/charges", data={"value": "10.00"}), 404)
    charge = production.create_charge("12.34")
    simulate = production.http.post(f"{production.url}/sandbox/payments/{charge['id']}/simulate")
    assert simulate.status_code in (404, 405)
    page = production.http.get(charge["payment_url"], headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "Simular pagamento" not in page.text
    assert "sandbox" not in page.text.lower()
    assert production.charge(charge["id"])["status"] == "ACTIVE"


def test_production_takes_only_https_return_urls(production: Server) -> None:
    before = production.charges()
    answer = production.http.post(
        "/payments/pix",
        json={"value": "12.34", "return_url": "http://padaria.example/obrigado"},
        headers=production.auth,
    )
    assert_error(answer, 422, "invalid_return_url")
    assert "https" in answer.json()["error"]["message"]
    assert production.charges() == before
    charge = production.create_charge("12.34", return_url="https://padaria.example/obrigado")
    assert charge["return_url"] == "https://padaria.example/obrigado"


def test_production_never_prints_the_secret(production: Server) -> None:
    assert production.log is not None
    output = production.log.read_text()
    assert PROD_SECRET not in output
    assert "VERY-SECRET" not in output


# serve in sandbox mode: what `make run` does -------------------------------------------


def test_sandbox_without_a_secret_generates_one_that_simulate_payment_uses(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "server", unset=("PIXLIVE_WEBHOOK_SECRET",))
    try:
        assert server.log is not None
        output = server.log.read_text()
        printed = re.search(r"webhook secret\s+(\S+)", output)
        assert printed, output
        secret = printed.group(1)
        assert secret == (server.workdir / ".pixlive-sandbox-secret").read_text().strip()
        assert secret == server.secret

        # The key that `serve` prints works too.
        key = re.search(r"API key\s+(pxl_\S+)", output)
        assert key, output
        headers = {"Authorization": f"Bearer {key.group(1)}"}
        made = server.http.post("/payments/pix", json={"value": "12.34"}, headers=headers)
        assert made.status_code == 201, made.text
        charge = made.json()

        done = server.cli("simulate-payment", charge["id"])
        assert done.returncode == 0, done.stdout + done.stderr
        assert server.charge(charge["id"])["status"] == "PAID"
    finally:
        server.stop()

    # A restart keeps the same secret (a PSP or a script configured with it still works).
    again = start_server(tmp_path / "server", migrate=False, unset=("PIXLIVE_WEBHOOK_SECRET",))
    try:
        assert again.secret == secret
        other = again.create_charge("1.00")
        assert again.pay(other["id"], "1.00").json()["results"][0]["outcome"] == "paid"
    finally:
        again.stop()


def test_sandbox_follows_its_port_and_keeps_its_key_and_secret_beside_the_database(
    tmp_path: Path,
) -> None:
    """`make run PORT=8001`: the links and simulate-payment follow the port; the key that
    `serve` prints stays valid across restarts (and across a start that fails) until it is
    revoked; simulate-payment run from another directory signs with the server's secret."""
    unset = ("PIXLIVE_WEBHOOK_SECRET", "PIXLIVE_PUBLIC_URL")
    first = start_server(tmp_path / "server", unset=unset)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        assert first.log is not None
        output = first.log.read_text()
        port = first.url.rsplit(":", 1)[1]
        assert f"open            http://127.0.0.1:{port}/" in output
        found = re.search(r"API key\s+(pxl_\S+)", output)
        assert found, output
        key = found.group(1)
        headers = {"Authorization": f"Bearer {key}"}
        made = first.http.post("/payments/pix", json={"value": "12.34"}, headers=headers)
        assert made.status_code == 201, made.text
        charge = made.json()
        assert charge["payment_url"] == f"http://127.0.0.1:{port}/payments/pix/{charge['id']}"
        # Nothing of the sandbox's own lands in the directory the commands run from.
        assert (first.workdir / ".pixlive-sandbox-secret").exists()

        done = pixlive(first.env, elsewhere, "simulate-payment", charge["id"])
        assert done.returncode == 0, done.stdout + done.stderr
        assert first.charge(charge["id"])["status"] == "PAID"
        assert list(elsewhere.iterdir()) == []

        # A second start on the same port fails to bind: the running server's key still works.
        clash = subprocess.run(
            [sys.executable, "-m", "pixlive.cli", "serve", "--port", port],
            env=first.env,
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert clash.returncode != 0
        assert key in clash.stdout  # printed again: the same key
        listed = first.http.get("/payments/pix", headers=headers)
        assert listed.status_code == 200, listed.text
    finally:
        first.stop()

    again = start_server(tmp_path / "server", migrate=False, api_key=key, unset=unset)
    try:
        assert again.log is not None
        assert key in again.log.read_text()
        assert again.http.get("/payments/pix", headers=headers).status_code == 200
        assert again.cli("apikey", "revoke", "sandbox").returncode == 0
        assert_error(again.http.get("/payments/pix", headers=headers), 401)
    finally:
        again.stop()

    renewed = start_server(tmp_path / "server", migrate=False, api_key=key, unset=unset)
    try:
        assert renewed.log is not None
        new = re.findall(r"API key\s+(pxl_\S+)", renewed.log.read_text())[-1]
        assert new != key
        assert renewed.http.get("/payments/pix", headers={"Authorization": f"Bearer {new}"})
    finally:
        renewed.stop()


def test_a_sandbox_signature_that_fails_says_where_the_secret_is(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server", unset=("PIXLIVE_WEBHOOK_SECRET",))
    try:
        charge = server.create_charge("1.00")
        other = tmp_path / "other"
        other.mkdir()
        # Another database, so another sandbox secret: the server refuses its signature.
        env = {**server.env, "PIXLIVE_DATABASE_URL": f"sqlite+aiosqlite:///{other}/pixlive.db"}
        done = pixlive(env, other, "simulate-payment", charge["id"], "--url", server.url)
        assert done.returncode != 0
        assert "refused the signature" in done.stderr
        assert str(other / ".pixlive-sandbox-secret") in done.stderr
        assert "PIXLIVE_DATABASE_URL" in done.stderr
    finally:
        server.stop()


# the command itself ------------------------------------------------------------------


def test_bare_pixlive_prints_help_and_version(tmp_path: Path) -> None:
    env = server_env(tmp_path, free_port())
    bare = pixlive(
        env,
        tmp_path,
    )
    assert bare.returncode == 0, bare.stderr
    for command in ("serve", "migrate", "apikey", "simulate-payment"):
        assert command in bare.stdout
    version = pixlive(env, tmp_path, "--version")
    assert version.returncode == 0
    assert re.fullmatch(r"pixlive \d+\.\d+\.\d+\S*", version.stdout.strip()), version.stdout


def test_every_serve_option_says_what_it_does_and_its_default(tmp_path: Path) -> None:
    env = server_env(tmp_path, free_port())
    text = " ".join(pixlive(env, tmp_path, "serve", "--help").stdout.split())
    for option, default in (("--host", "127.0.0.1"), ("--port", "8000"), ("--workers", "1")):
        assert re.search(rf"{option} \S+ [a-z].*?\(default: {re.escape(default)}\)", text), text
    for option in ("--tls-cert", "--tls-key", "--client-ca"):
        assert re.search(rf"{option} FILE [a-z]", text), text


def test_simulate_payment_help_is_in_one_language(tmp_path: Path) -> None:
    env = server_env(tmp_path, free_port())
    text = pixlive(env, tmp_path, "simulate-payment", "--help").stdout
    assert "amount" in text
    for portuguese in ("valor", "cobrança", "pagamento"):
        assert portuguese not in text.lower(), text


def test_migrate_says_what_it_did(tmp_path: Path) -> None:
    env = server_env(tmp_path, free_port())
    first = pixlive(env, tmp_path, "migrate")
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(r"created the schema \(revision \d{4}\)", first.stdout.strip())
    again = pixlive(env, tmp_path, "migrate")
    assert again.returncode == 0, again.stderr
    assert "already up to date" in again.stdout and "created" not in again.stdout


def test_serve_needs_both_tls_files(tmp_path: Path) -> None:
    env = server_env(tmp_path, free_port())
    done = pixlive(env, tmp_path, "serve", "--tls-cert", str(tmp_path / "cert.pem"))
    assert done.returncode == 2
    assert "--tls-key" in done.stderr


# configuration mistakes: one line, a non-zero exit, never a traceback -----------------


def _one_clear_line(done: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def _serve_and_migrate(tmp_path: Path, **settings: str) -> list[subprocess.CompletedProcess[str]]:
    port = free_port()
    env = server_env(tmp_path, port, **settings)
    return [
        pixlive(env, tmp_path, "migrate"),
        pixlive(env, tmp_path, "serve", "--port", str(port)),
    ]


def test_a_mistyped_mode_stops_serve_and_migrate(tmp_path: Path) -> None:
    for done in _serve_and_migrate(tmp_path, PIXLIVE_ENV="prod"):
        _one_clear_line(done, "PIXLIVE_ENV", "'sandbox' or 'production'", "'prod'")
    assert not (tmp_path / "pixlive.db").exists()


def test_a_misspelt_setting_stops_serve_and_migrate(tmp_path: Path) -> None:
    for done in _serve_and_migrate(tmp_path, PIXLIVE_BUS_ULR="redis://127.0.0.1:6379/0"):
        _one_clear_line(done, "PIXLIVE_BUS_ULR", "did you mean PIXLIVE_BUS_URL?")


def test_a_three_character_secret_stops_production(tmp_path: Path) -> None:
    code, output = _serve(
        tmp_path,
        PIXLIVE_WEBHOOK_SECRET="abc",
        PIXLIVE_PIX_KEY="loja@example.com",
        PIXLIVE_MERCHANT_NAME="Loja",
        PIXLIVE_MERCHANT_CITY="Recife",
    )
    assert code == 2
    assert "PIXLIVE_WEBHOOK_SECRET must be at least 32 characters" in output
    assert "Traceback" not in output


@pytest.mark.postgres
def test_a_postgres_database_that_does_not_exist_is_one_line(
    tmp_path: Path, pg_server_url: str
) -> None:
    missing = urlsplit(pg_server_url)._replace(path="/pixlive_no_such_database").geturl()
    url = missing.replace("postgresql://", "postgresql+asyncpg://", 1)
    for done in _serve_and_migrate(tmp_path, PIXLIVE_DATABASE_URL=url):
        _one_clear_line(done, "PIXLIVE_DATABASE_URL", '"pixlive_no_such_database" does not exist')
    production = {
        "PIXLIVE_ENV": "production",
        "PIXLIVE_WEBHOOK_SECRET": PROD_SECRET,
        "PIXLIVE_PIX_KEY": "loja@example.com",
        "PIXLIVE_MERCHANT_NAME": "Loja",
        "PIXLIVE_MERCHANT_CITY": "Recife",
    }
    # Production starts while its database is down, but not against one that is not there.
    for done in _serve_and_migrate(tmp_path, PIXLIVE_DATABASE_URL=url, **production):
        _one_clear_line(done, "does not exist")
        assert PROD_SECRET not in done.stdout + done.stderr


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """The file cannot be written, even by root (who ignores its mode): immutable then."""
    as_root = os.geteuid() == 0
    if as_root:
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if made.returncode != 0:
            pytest.skip(f"cannot make {path} immutable here: {made.stderr.decode().strip()}")
    else:
        path.chmod(0o444)
    try:
        with pytest.raises(OSError):
            path.open("r+b").close()
        yield
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o644)


def test_a_read_only_database_file_is_one_line(tmp_path: Path) -> None:
    env = server_env(tmp_path, free_port())
    assert pixlive(env, tmp_path, "migrate").returncode == 0
    database = tmp_path / "pixlive.db"
    with read_only(database):
        for done in _serve_and_migrate(tmp_path):
            _one_clear_line(done, "PIXLIVE_DATABASE_URL", str(database), "cannot be written")
