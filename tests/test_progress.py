"""Progress of long CLI jobs (issue 12, "See what it does"): `fingerprint add`, `report` and a bulk
`scan` draw a progress bar on a terminal (a real pseudo-terminal here) and nothing when piped."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import pytest
from support import REPO, document, user_env

# What rich draws: the bar, the spinner (braille), cursor and erase escapes.
DRAWN = re.compile(r"[━╸╺\u2800-\u28ff]|\x1b\[")


def run(args: list[str], *, stdin: str | None = None, terminal: bool, env: dict) -> tuple[str, str]:
    """The command's stdout (always a pipe: it is data) and its stderr, from a pty when `terminal`."""
    cmd = [sys.executable, "-m", "gateway", *args]
    if not terminal:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave, cwd=REPO,
                            env={**env, "TERM": "xterm-256color", "COLUMNS": "100"}, text=True)
    os.close(slave)
    out, _ = proc.communicate(stdin, timeout=300)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return out, b"".join(chunks).decode(errors="replace")


@pytest.fixture
def documents(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(3):
        (folder / f"spec-{i}.md").write_text(document(i, 400))
    return folder


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
def test_fingerprint_add_shows_progress_on_a_terminal_only(tmp_path, documents, terminal):
    out, err = run(["fingerprint", "add", "--label", "specs", str(documents), "--data-dir", str(tmp_path / "data")],
                   terminal=terminal, env=user_env())
    assert out.count("indexed  ") == 3
    if terminal:
        assert "indexing" in err and DRAWN.search(err), err
    else:
        assert not DRAWN.search(out + err) and "indexing" not in err, err


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
def test_bulk_scan_shows_progress_on_a_terminal_only_and_its_output_stays_data(terminal):
    lines = "".join(json.dumps({"text": f"mail user{i}@example.com"}) + "\n" for i in range(150))
    out, err = run(["scan", "--workers", "1"], stdin=lines, terminal=terminal, env=user_env())
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == 150 and all(r["findings"] for r in results)
    if terminal:
        assert "scanning" in err and DRAWN.search(err), err
        assert "user1@example.com" not in err  # counts, never the data
    else:
        assert not DRAWN.search(out + err), err


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
async def test_report_shows_progress_on_a_terminal_only(traffic, tmp_path, terminal):
    html = tmp_path / "report.html"
    out, err = run(["report", "--data-dir", str(traffic.data_dir), "--html", str(html)], terminal=terminal,
                   env=user_env())
    assert html.exists() and "wrote" in out
    if terminal:
        assert "counting records" in err and DRAWN.search(err), err
    else:
        assert not DRAWN.search(out + err), err
