"""`hubsync serve` prepares prometheus-client's multiprocess directory before its workers
start: a previous run's counters must not be added to this run's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.cli.serve import MULTIPROCESS_ENV, prepare_metrics_directory


def test_one_process_needs_no_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROCESS_ENV, "")  # empty is unset; restored after the test
    assert prepare_metrics_directory(1) is None


def test_several_processes_get_a_fresh_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROCESS_ENV, "")  # empty is unset; restored after the test
    directory = prepare_metrics_directory(3)
    assert directory is not None
    assert Path(directory).is_dir()
    assert not list(Path(directory).iterdir())
    # set for the worker processes, which read it when prometheus-client is imported
    assert os.environ[MULTIPROCESS_ENV] == directory
    Path(directory).rmdir()


def test_a_given_directory_loses_only_a_previous_runs_metrics(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("counter_123.db", "histogram_123.db", "gauge_livesum_9.db", "notes.db"):
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.setenv(MULTIPROCESS_ENV, str(tmp_path))
    assert prepare_metrics_directory(2) == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]
