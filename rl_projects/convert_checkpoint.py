"""Upstream-compatible entry: ``python rl_projects/convert_checkpoint.py --ckpt IN --out OUT``.

Same as ``minddrive convert``: copies the action expert's LoRA into the decision expert and the value net.
"""

import sys

from minddrive.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
