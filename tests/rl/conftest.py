import sys
from pathlib import Path

# rl_fakes lives beside the tests; worker subprocesses find it through PYTHONPATH.
sys.path.insert(0, str(Path(__file__).resolve().parent))
