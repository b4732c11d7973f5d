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


@pytest.mark.timeout(420)
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
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    data = json.loads((out / "benchmarks.json").read_text())
    results = data["results"]

    latency = {(e["server"], e["transport"]) for e in results["latency"]}
    assert {("pixlive", "ws"), ("baseline", "socketio"), ("pixlive", "sse")} <= latency
    assert ("pixlive", "longpoll") in latency
    assert {e["database"] for e in results["throughput"]} >= {"sqlite"}
    assert {(e["server"], e["pinned"]) for e in results["pinned"]} == {
        ("pixlive", True),
        ("baseline", True),
    }
    assert {e["transport"] for e in results["transports"]} >= {"ws", "sse", "longpoll", "polling"}
    assert {e["measure"] for e in results["webhooks"]} == {
        "live",
        "commit_to_delivered",
        "deliveries",
    }
    for section in ("latency", "throughput", "pinned", "two_workers", "webhooks"):
        for entry in results[section]:
            assert entry["samples"] > 0, entry
            assert entry["lost"] == entry["idle_dropped"] == entry["not_paid"] == 0, entry
    for entry in results["transports"]:
        assert entry["lost"] == entry["idle_dropped"] == 0, entry
        assert entry["summary"]["bytes"]["median"] > 0, entry

    # the JSON keeps the summary of each figure, not its samples
    assert all(isinstance(e["reps"], int) for group in results.values() for e in group)
    report = (out / "benchmarks.md").read_text()
    assert report.startswith("# Benchmarks")
    assert "## 3b. One core" in report
