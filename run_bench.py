"""Run the whole scramblebench comparison in one command: ``python run_bench.py [--help]``."""

from __future__ import annotations

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
