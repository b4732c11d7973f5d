"""py-spy on the server process while it takes webhooks: the top frames of its event-loop
thread (self time, and inclusive time of pixlive's and the frameworks' own functions)."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def available() -> bool:
    return py_spy() is not None


async def start(pid: int, out: Path, seconds: float) -> asyncio.subprocess.Process:
    exe = py_spy()
    assert exe is not None
    return await asyncio.create_subprocess_exec(
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds + 0.999)),
        # On this VM py-spy gets only a fraction of the samples it asks for (38 of 600 at
        # 100 Hz in one run): ask for more.
        "--rate",
        "400",
        "--format",
        "raw",
        "--threads",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def finish(process: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(process.wait(), 60)
    except TimeoutError:
        process.kill()
        await process.wait()


# Frames in which the loop thread waits rather than works (uvloop's run is native code, so
# py-spy shows an idle loop as a sample of the Runner itself).
IDLE = ("Runner.run (asyncio/runners.py", "select (selectors.py", "_run_once (asyncio")


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares of the busiest thread's samples (the event loop's)."""
    by_thread: dict[str, list[tuple[list[str], int]]] = {}
    if not path.exists():
        return {"error": "py-spy wrote nothing (is ptrace allowed?)"}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0] if frames and frames[0].startswith(("thread", "process")) else "?"
        by_thread.setdefault(thread, []).append((frames, int(count)))
    threads = {t: sum(n for _, n in rows) for t, rows in by_thread.items()}
    # the event loop's thread is the one whose stacks run uvicorn's server
    loop_thread = max(
        by_thread,
        key=lambda t: sum(
            n for f, n in by_thread[t] if any("Server.serve" in x or "Server.run" in x for x in f)
        ),
    )
    rows = by_thread[loop_thread]
    total = sum(n for _, n in rows)
    busy_rows = [(f, n) for f, n in rows if not f[-1].startswith(IDLE)]
    busy = sum(n for _, n in busy_rows)
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in busy_rows:
        own[_short(frames[-1])] += n
        for frame in {_short(f) for f in frames[1:]}:
            inclusive[frame] += n
    denominator = max(busy, 1)
    return {
        "samples": total,
        "busy_share": busy / total if total else 0.0,
        "threads": {t: n for t, n in sorted(threads.items(), key=lambda kv: -kv[1])[:6]},
        "self": [(f, n / denominator) for f, n in own.most_common(top)],
        "inclusive": [
            (f, n / denominator) for f, n in inclusive.most_common(300) if _interesting(f)
        ][: top + 15],
    }


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py:123)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    parts = where.split("/")
    return f"{name} ({'/'.join(parts[-2:])})" if where else name


def _interesting(frame: str) -> bool:
    boring = (
        "Runner.run",
        "run_until_complete",
        "Server.serve",
        "Server.run",
        "main (",
        "<module>",
        "_run (",
        "asyncio_run",
        "run (uvicorn",
        "Thread.",
        "_bootstrap",
        "_run_code",
        "_run_module_as_main",
        "_serve (",
    )
    return not frame.startswith(boring) and "runpy" not in frame
