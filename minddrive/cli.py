"""``minddrive <verb>``: one entry point; each verb lives in the module that owns its logic.

A verb module exposes ``add_arguments(parser, verb)`` and ``run(args) -> int | None``
(``args.verb`` says which verb, for modules that own several). Modules are
imported only when their verb runs, so ``minddrive score`` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from minddrive.errors import UserError

# verb -> (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "score": ("minddrive.eval.scoring_cli", "score a Bench2Drive / leaderboard result JSON (file or folder)"),
    "sim-eval": ("minddrive.eval.sim_cli", "drive seeded embedded-simulator routes with a built-in policy and score them"),
    "sim-bench": ("minddrive.sim.cli", "measure embedded-simulator stepping throughput"),
    "sim-view": ("minddrive.sim.data_cli", "render an episode as an animated BEV picture"),
    "sim-data": ("minddrive.data.sim_data_cli", "write expert-driven clips in the Bench2Drive layout plus Chat-B2D VQA"),
    "prepare-data": ("minddrive.data.cli", "build the train/val info index from Bench2Drive-layout clips"),
    "train": ("minddrive.train.cli", "imitation learning (stages 1-3) from a config"),
    "test": ("minddrive.train.cli", "open-loop evaluation: L2, collision rate, meta-action accuracy"),
    "convert": ("minddrive.models.cli", "copy the action expert's LoRA into the decision expert and value net"),
    "collect": ("minddrive.rl.cli", "roll the policy out in parallel simulators and store buffers"),
    "decouple": ("minddrive.rl.cli", "split rollout buffers into per-step files and dataset_index.pkl"),
    "rl-convert-index": ("minddrive.rl.cli", "convert a decoupled rollout index between this layout and upstream's"),
    "ppo": ("minddrive.rl.cli", "PPO on the decision expert from a decoupled index"),
    "rl-loop": ("minddrive.rl.cli", "iterate collect -> decouple -> PPO -> evaluate"),
    "eval": ("minddrive.eval.cli", "closed-loop evaluation on the embedded benchmark suite"),
    "compare": ("minddrive.eval.compare", "paired per-route Driving Score gain of one or more runs over a baseline"),
    "demo": ("minddrive.demo", "the whole pipeline end to end on the embedded simulator (tiny model, CPU)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minddrive", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb, (_, help_text) in VERBS.items():
        sub.add_parser(verb, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in VERBS:
        top.parse_args(argv[:1] or ["--help"])  # prints help or "invalid choice" and exits
        return 2
    verb, rest = argv[0], argv[1:]
    module = importlib.import_module(VERBS[verb][0])
    parser = argparse.ArgumentParser(prog=f"minddrive {verb}", description=VERBS[verb][1])
    module.add_arguments(parser, verb)
    args = parser.parse_args(rest)
    args.verb = verb
    try:
        code = module.run(args)
    except UserError as exc:
        print(f"minddrive {verb}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `minddrive score X | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"minddrive {verb}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
