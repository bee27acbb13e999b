"""Every ```python block of README.md and docs/*.md runs, so an example cannot go stale.

The blocks of one page run in order in one fresh interpreter (a later block may use an earlier
one's names, as a reader would), in a temporary folder, with the repository importable.  A
settings block states its values with ``assert``, so a preset that changes fails here until the
page says what the code does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
WITH_EXAMPLES = [page for page in PAGES if FENCE.search(page.read_text())]


def test_the_pages_that_teach_the_api_have_examples() -> None:
    assert {"attacks.md", "classifiers.md", "performance.md", "plugins.md", "report.md"} <= {page.name for page in WITH_EXAMPLES}


@pytest.mark.parametrize("page", WITH_EXAMPLES, ids=lambda page: page.name)
def test_every_python_example_of_the_page_runs(page: Path, tmp_path: Path) -> None:
    blocks = FENCE.findall(page.read_text())
    script = "\n".join(f"# -- {page.name}, example {number}\n{block}" for number, block in enumerate(blocks, 1))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"an example of {page.name} failed:\n{result.stderr[-4000:]}"
