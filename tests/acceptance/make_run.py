"""`make run`, as the Makefile says it, on a temporary directory: its `run` recipe's commands
(read from the Makefile, so a change there is what the tests run) with the installed
`hubsync` replaced by this worktree's code and port 8000 by a free one. The directory gets
a `.venv/bin/hubsync` that runs the same code, so the README's commands work there as typed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.acceptance.deployment import clean_env, free_port

ROOT = Path(__file__).resolve().parents[2]
MAKE_PORT = "8000"


def run_recipe() -> list[list[str]]:
    """The `run:` target's command lines, split as the shell would."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("run:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(shlex.split(line.strip()))
    return recipe


def as_command(words: list[str], port: int) -> tuple[dict[str, str], list[str]]:
    """(environment, argv) of one recipe line: `VAR=value` words set the environment,
    `$(BIN)/hubsync` is this worktree's, `--port 8000` a free port."""
    env: dict[str, str] = {}
    while words and re.match(r"^[A-Z_]+=", words[0]):
        name, _, value = words[0].partition("=")
        env[name] = value
        words = words[1:]
    assert words[0] == "$(BIN)/hubsync", words
    argv = [sys.executable, "-m", "app.cli", *words[1:]]
    return env, [str(port) if w == MAKE_PORT else w for w in argv]


@dataclass
class DemoRun:
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)  # what the recipe set (HUBSYNC_MODE)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "make-run.log"

    def install_command(self) -> None:
        """`.venv/bin/hubsync` in the directory, running this worktree's code."""
        bin_dir = self.directory / ".venv" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        script = bin_dir / "hubsync"
        script.write_text(
            f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m app.cli "$@"\n'
        )
        script.chmod(0o755)

    def start(self) -> DemoRun:
        self.install_command()
        *before, serve = run_recipe()
        for words in before:  # `hubsync migrate`
            env, argv = as_command(words, self.port)
            subprocess.run(  # noqa: S603 -- the Makefile's command
                argv, env=clean_env(env), cwd=self.directory, check=True, capture_output=True
            )
        self.env, argv = as_command(serve, self.port)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 -- the Makefile's command
                argv,
                env=clean_env(self.env),
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not ready: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def shell(self, script: str, extra_env: dict[str, str] | None = None) -> str:
        """Run `script` with bash in the directory, as a person in a shell beside `make run`
        would (port 8000 means this run's port); its stdout, or an AssertionError."""
        env = clean_env({**(extra_env or {})})
        env["PATH"] = f"{self.directory / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        command = [
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script.replace(f":{MAKE_PORT}", f":{self.port}"),
        ]
        done = subprocess.run(  # noqa: S603 -- the README's commands, by design
            command,
            env=env,
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        outcome = f"{script}\n-> {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert done.returncode == 0, outcome
        return done.stdout
