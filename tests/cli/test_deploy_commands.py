"""``canvascraft deploy``'s report of a failed Prefect CLI call: the exception line, not the frames."""

from __future__ import annotations

import subprocess
import sys

from cli.deploy_commands import _gist


def test_gist_keeps_the_exception_line_of_a_real_traceback() -> None:
    failed = subprocess.run([sys.executable, "-c", "def f():\n    raise ValueError('pool type ecs')\nf()"],
                            capture_output=True, text=True, check=False)
    assert "Traceback" in failed.stderr and 'File "<string>"' in failed.stderr
    assert _gist(failed.stdout + failed.stderr) == "ValueError: pool type ecs"
    assert _gist("Work pool 'gpu-pool' not found.\n\n") == "Work pool 'gpu-pool' not found."
