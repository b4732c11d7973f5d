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
    # py-spy gets a fraction of the samples it asks for on this VM: ask for 400 Hz
    args = ["record", "--pid", str(pid), "--duration", str(int(seconds + 0.999))]
    args += ["--rate", "400", "--format", "raw", "--threads", "--output", str(out)]
    return await asyncio.create_subprocess_exec(
        exe, *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
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
BORING = ("Runner.run", "run_until_complete", "Server.serve", "Server.run", "main (", "<module>")
BORING += ("_run (", "asyncio_run", "run (uvicorn", "Thread.", "_bootstrap", "_run_code")
BORING += ("_run_module_as_main", "_serve (")


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares of the busiest thread's samples (the event loop's)."""
    if not path.exists():
        return {"error": "py-spy wrote nothing (is ptrace allowed?)"}
    by_thread: dict[str, list[tuple[list[str], int]]] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            frames = stack.split(";")
            thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
            by_thread.setdefault(thread, []).append((frames, int(count)))

    def serving(thread: str) -> int:  # the event loop's thread runs uvicorn's server
        return sum(n for f, n in by_thread[thread] if any("Server.serve" in x for x in f))

    rows = by_thread[max(by_thread, key=serving)]
    total = sum(n for _, n in rows)
    busy_rows = [(f, n) for f, n in rows if not f[-1].startswith(IDLE)]
    busy = max(1, sum(n for _, n in busy_rows))
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in busy_rows:
        own[short(frames[-1])] += n
        for frame in {short(f) for f in frames[1:]}:
            inclusive[frame] += n
    interesting = [(f, n) for f, n in inclusive.most_common(300) if not f.startswith(BORING)]
    return {
        "samples": total,
        "busy_share": busy / total if total else 0.0,
        "threads": {t: sum(n for _, n in r) for t, r in by_thread.items()},
        "self": [(f, n / busy) for f, n in own.most_common(top)],
        "inclusive": [(f, n / busy) for f, n in interesting if "runpy" not in f][: top + 15],
    }


def short(frame: str) -> str:
    """ "func (path/to/module.py:123)" -> "func (to/module.py:123)"."""
    name, _, where = frame.partition(" (")
    return f"{name} ({'/'.join(where.rstrip(')').split('/')[-2:])})" if where else name
