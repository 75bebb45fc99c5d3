"""The README reads as a tour, then a reference without repeats: no run of ten words said
twice in its prose, every `hubsync` command in the command list, and pausing under its own
heading rather than inside "How it runs"."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from app.cli import build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
RUN = 10


def section(title: str) -> str:
    start = README.index(f"\n{title}\n")
    following = re.search(r"\n#{2,3} ", README[start + len(title) + 2 :])
    end = start + len(title) + 2 + following.start() if following else len(README)
    return README[start:end]


def test_no_run_of_ten_words_is_said_twice() -> None:
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    words = prose.split()
    runs = Counter(tuple(words[i : i + RUN]) for i in range(len(words) - RUN))
    assert [" ".join(run) for run, times in runs.items() if times > 1] == []


def test_the_tour_comes_before_the_reference() -> None:
    assert README.index("## Quick tour") < README.index("## Two commands")
    assert README.index("## Quick tour") < README.index("## Configuration")


def test_every_command_is_in_the_command_list() -> None:
    commands = section("### The `hubsync` command")
    subparsers = next(action for action in build_parser()._actions if action.dest == "command")
    missing = [name for name in subparsers.choices if f"`hubsync {name}" not in commands]
    assert missing == []


def test_pausing_has_its_own_heading_and_how_it_runs_holds_no_commands() -> None:
    assert "### Pausing a direction" in README
    how = section("### How it runs")
    assert "`hubsync pause" not in how
    assert "docker build" not in how
    assert "**full run**" not in section("### The `hubsync` command")  # its own heading
    assert "**full run**" in section("### Reconciliation and scheduled jobs")
