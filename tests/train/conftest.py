"""Make the toy model/dataset module importable by name (tests and their subprocesses use it)."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
