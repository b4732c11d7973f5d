"""`.env.example` lists every setting, and nothing that is not one."""

from __future__ import annotations

import re
from pathlib import Path

from pixlive.settings import known_names

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def test_env_example_lists_every_setting() -> None:
    listed = set(re.findall(r"^#? ?(PIXLIVE_[A-Z0-9_]+)=", EXAMPLE.read_text(), re.MULTILINE))
    assert listed == set(known_names())
