"""`pixlive listen` forwards a server's events, signed, to a local URL; `pixlive trigger`
makes the events happen."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import Server
from tests.e2e.webhook_receiver import receiver


def test_listen_forwards_what_trigger_makes_happen_signed_with_the_printed_secret(
    server: Server,
) -> None:
    with receiver() as hook:
        listening = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pixlive.cli",
                "listen",
                "--forward-to",
                hook.url,
                "--events",
                "payment.paid",
                "--url",
                server.url,
                "--api-key",
                server.api_key,
            ],
            env=server.env,
            cwd=server.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert listening.stdout is not None
            first = listening.stdout.readline()
            assert first.startswith("Your webhook signing secret is whsec_"), first
            hook.secrets = [first.rsplit(" ", 1)[1].strip()]
            ready = listening.stdout.readline()
            assert ready.startswith("Ready"), ready

            done = server.cli("trigger", "payment.paid", "--api-key", server.api_key)
            assert done.returncode == 0, done.stderr
            charge_id = done.stdout.strip().rsplit(" ", 1)[1]
            (got,) = hook.wait_count(1)
            assert got.verified
            assert got.json["type"] == "payment.paid"  # payment.created was filtered out
            assert got.json["data"]["charge"]["id"] == charge_id
            assert got.json["data"]["charge"]["status"] == "PAID"
            line = listening.stdout.readline()
            assert "payment.paid" in line and "200" in line, line
        finally:
            listening.terminate()
            listening.wait(10)
    assert server.charge(charge_id)["status"] == "PAID"


def test_trigger_cancelled_and_mismatch(server: Server) -> None:
    cancelled = server.cli("trigger", "payment.cancelled", "--api-key", server.api_key)
    assert cancelled.returncode == 0, cancelled.stderr
    assert server.charge(cancelled.stdout.split()[-1])["status"] == "CANCELLED"
    mismatch = server.cli("trigger", "payment.mismatch", "--api-key", server.api_key)
    assert mismatch.returncode == 0, mismatch.stderr
    assert server.charge(mismatch.stdout.split()[-1])["status"] == "ACTIVE"
