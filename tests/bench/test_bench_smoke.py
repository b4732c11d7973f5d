"""The benchmark harness at tiny sizes: it runs end to end and loses nothing.

No timing is asserted here: the figures belong to `make bench`, on a quiet machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_the_harness_runs_at_smoke_size_and_loses_nothing(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--mode",
            "smoke",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
            "--no-profile",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    data = json.loads((out / "benchmarks.json").read_text())
    results = data["results"]

    latency = {(e["server"], e["transport"]) for e in results["latency"]}
    assert {("pixlive", "ws"), ("pixlive", "sse"), ("pixlive", "longpoll")} <= latency
    for entry in results["latency"] + results["two_workers"]:
        assert entry["samples"] > 0, entry
        assert entry["lost"] == 0, entry
        assert entry["idle_dropped"] == 0, entry
        assert all(rep["errors"] == 0 for rep in entry["reps"]), entry

    assert any(e["database"] == "sqlite" for e in results["throughput"])
    for entry in results["throughput"]:
        for rep in entry["reps"]:
            assert rep["n"] > 0, entry
            assert rep["statuses"] == {"200": rep["n"]}, entry
            assert rep["not_paid"] == 0, entry

    transports = {e["transport"] for e in results["transports"]}
    assert {"ws", "sse", "longpoll", "polling"} <= transports
    for entry in results["transports"]:
        assert entry["lost"] == 0, entry
        assert entry["idle_dropped"] == 0, entry
        assert all(rep["delivered"] == data["config"]["cost_deliver"] for rep in entry["reps"])
        assert all(rep["bytes"] > 0 for rep in entry["reps"]), entry

    assert (out / "benchmarks.md").read_text().startswith("# Benchmarks")
