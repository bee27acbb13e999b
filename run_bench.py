"""Run the whole scramblebench comparison in one command: ``python run_bench.py [COMMAND] [--help]``
(the same program as the installed ``scramblebench``; ``run`` is the default command)."""

from __future__ import annotations

import sys

from harness.run.cli import main

if __name__ == "__main__":
    sys.exit(main())
