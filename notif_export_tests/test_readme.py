"""The README as a new user follows it: its first command starts the demo, then every shell and
Python example runs exactly as written, in order, in one shell (as typed into a second
terminal); Ctrl-C then stops the demo with nothing left running.

An example that cannot run here says why in a `<!-- readme-test: skip: why -->` line above it;
`<!-- readme-test: until-ctrl-c -->` marks commands that run until Ctrl-C (each gets one after a
few seconds and must then exit cleanly).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from notif_export.dev.local_s3 import find_free_port
from notif_export.lib.settings import PROJECT_DIR

README = PROJECT_DIR / "README.md"
DIRECTIVE = re.compile(r"<!-- readme-test: (skip: (?P<why>.+)|until-ctrl-c) -->")
FENCE = re.compile(r"^```(?P<language>\w*)$")


@dataclass(frozen=True)
class Example:
    language: str
    code: str
    line: int
    skip: str | None = None  # why it cannot run here
    until_ctrl_c: bool = False


def readme_examples(text: str) -> list[Example]:
    examples, lines = [], text.splitlines()
    n = 0
    while n < len(lines):
        fence = FENCE.match(lines[n])
        if not fence or not fence["language"]:
            n += 1
            continue
        start = n
        n += 1
        body = []
        while lines[n] != "```":
            body.append(lines[n])
            n += 1
        directive = DIRECTIVE.fullmatch(lines[start - 1]) if start else None
        examples.append(Example(fence["language"], "\n".join(body), start + 1,
                                skip=directive["why"] if directive else None,
                                until_ctrl_c=bool(directive) and directive.group(1) == "until-ctrl-c"))
        n += 1
    return examples


def as_shell_script(examples: list[Example]) -> str:
    """The examples in order, as one bash session; Python examples through the shell's python."""
    parts = ["set -euo pipefail"]
    for example in examples:
        if example.skip:
            continue
        parts.append(f"echo '### README.md line {example.line}' >&2")
        if example.language == "python":
            parts.append(f"python - <<'README_PYTHON'\n{example.code}\nREADME_PYTHON")
        elif example.until_ctrl_c:
            # Ctrl-C after a few seconds; --preserve-status: the command's own exit code must be 0.
            parts += [f"timeout --preserve-status -s INT 8 {line} </dev/null"
                      for line in example.code.splitlines() if line.strip()]
        else:
            parts.append(example.code)
    return "\n".join(parts) + "\n"


def test_every_example_runs_or_says_why_not():
    examples = readme_examples(README.read_text())
    assert {e.language for e in examples} <= {"bash", "python"}
    assert len([e for e in examples if not e.skip]) >= 12
    assert all(e.skip.strip() for e in examples if e.skip)
    script = as_shell_script(examples)
    assert "notif-export query" in script and "notif-export backfill" in script and "import polars" in script


def demo_processes(home: Path) -> list[str]:
    """Every process started for this demo, as `ps` lists them with their environment: each
    one's names the demo's folder."""
    listing = subprocess.run(["ps", "axeww", "-o", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [line[:160] for line in listing.splitlines() if f"NOTIF_EXPORT_HOME={home} " in line + " "]


def wait_for_line(console: Path, pattern: str, demo: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = console.read_text()
        if re.search(pattern, text):
            return text
        assert demo.poll() is None, f"the demo exited ({demo.returncode}):\n{text}"
        time.sleep(1)
    raise AssertionError(f"no line matching {pattern!r} within {timeout:.0f}s:\n{console.read_text()}")


def test_readme_examples_run_against_the_demo_and_ctrl_c_stops_it(tmp_path):
    home = tmp_path / "home"
    # Ranges apart: the S3 server also takes its port + 1 to 4 and each + 10,000.
    ui_port, s3_port, intake_port = find_free_port(), find_free_port(30_000, 39_000), find_free_port(50_000, 55_000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NOTIF_EXPORT_", "DAGSTER_"))}
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    env.update(NOTIF_EXPORT_HOME=str(home), NOTIF_EXPORT_DAGSTER_URL=f"http://127.0.0.1:{ui_port}",
               # a small backfill on the first start: today's hours only
               NOTIF_EXPORT_START=f"{today:%Y-%m-%d}")
    console = tmp_path / "console.txt"
    with open(console, "wb") as out:
        # Its own session, like a terminal's foreground job: Ctrl-C goes to the whole group.
        demo = subprocess.Popen([str(PROJECT_DIR / "scripts" / "demo.sh"), "--port", str(ui_port), "--s3-port",
                                 str(s3_port), "--intake-port", str(intake_port),
                                 "--history-hours", "2"], cwd=PROJECT_DIR, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        text = wait_for_line(console, r"backfill messages: .* rows \(success", demo, timeout=420)
        assert f"Dagster UI: http://127.0.0.1:{ui_port}" in text and "first start: backfilling" in text
        assert "Warning" not in text and "DEBUG" not in text  # framework noise goes to the log files

        script = tmp_path / "readme.sh"
        script.write_text(as_shell_script(readme_examples(README.read_text())))
        result = subprocess.run(["bash", str(script)], cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, f"README examples failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        out = result.stdout
        assert "channel_slug" in out and "message_status" in out  # the first query's table
        assert "backfill " in out and ": completed" in out       # notif-export backfill --wait
        assert "0 hours drifted" in out                          # notif-export verify
        assert "i64" in out  # Polars: the partition columns as the README declares them
    finally:
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C in the demo's terminal
        stopped = time.monotonic()
        demo.wait(30)
        while demo_processes(home) and time.monotonic() - stopped < 10:
            time.sleep(0.5)
        left = demo_processes(home)
    assert not left, f"still running {time.monotonic() - stopped:.0f}s after Ctrl-C:\n" + "\n".join(left)
    assert demo.returncode == 0, console.read_text()
    assert console.read_text().rstrip().endswith("stopped")


@pytest.mark.parametrize("text, expected", [
    ("<!-- readme-test: skip: needs AWS -->\n```bash\nx\n```\n", [Example("bash", "x", 2, skip="needs AWS")]),
    ("```python\nprint(1)\n```\n\n```\nplain text\n```\n", [Example("python", "print(1)", 1)]),
])
def test_examples_are_found_with_their_directives(text, expected):
    assert readme_examples(text) == expected
