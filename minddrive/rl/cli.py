"""``minddrive collect | decouple | ppo | rl-loop``: thin argument parsing over minddrive.rl."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from minddrive.config import load_config
from minddrive.errors import UserError
from minddrive.rl.settings import ReturnParams


def add_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    if verb == "decouple":
        parser.add_argument("rollouts", nargs="+", help="rollout folder(s) written by 'minddrive collect'")
        parser.add_argument("--out", required=True, help="output folder for step files and dataset_index.pkl")
        parser.add_argument("--gamma", type=float, default=None,
                            help=f"discount (default: config rl.gamma or {ReturnParams.gamma})")
        parser.add_argument("--gae-lambda", type=float, default=None,
                            help=f"GAE lambda (default: config rl.gae_lambda or {ReturnParams.gae_lambda})")
        parser.add_argument("--config", default=None, help="read rl.gamma / rl.gae_lambda from this config")
        parser.add_argument("--overwrite", action="store_true",
                            help="move an --out of another run aside (nothing is deleted) and start afresh")
        parser.add_argument("--layout", choices=("minddrive", "upstream"), default="minddrive",
                            help="minddrive: versioned index of .pt steps; upstream: upstream MindDrive's "
                                 "dataset_index.pkl + step_*.npz (needs --config and --ckpt)")
        parser.add_argument("--ckpt", default=None, help="checkpoint the rollouts were collected with (--layout upstream)")
        return
    if verb == "rl-convert-index":
        parser.add_argument("index", help="dataset_index.pkl in either layout")
        parser.add_argument("--to", required=True, choices=("minddrive", "upstream"), help="the layout to write")
        parser.add_argument("--out", required=True, help="output folder")
        parser.add_argument("--config", default=None, help="config of the collecting policy (ours -> upstream)")
        parser.add_argument("--ckpt", default=None, help="checkpoint of the collecting policy (ours -> upstream)")
        return
    parser.add_argument("config", help="mmengine Python config")
    parser.add_argument("--cfg-options", nargs="+", default=None, metavar="KEY=VALUE", help="override config keys")
    if verb == "collect":
        parser.add_argument("--ckpt", default=None, help="policy checkpoint directory (default: config model, untrained)")
        parser.add_argument("--out", required=True, help="rollout folder (re-run the same command to resume)")
        parser.add_argument("--workers", type=int, default=None, help="worker processes (default: rollout.num_workers)")
        parser.add_argument("--ray-address", default=None, help="run workers as Ray actors: 'auto' or ray://host:port")
        parser.add_argument("--route-offset", type=int, default=0, help="shift the RL route seeds (fresh routes)")
        parser.add_argument("--overwrite", action="store_true",
                            help="move an --out of another run aside (nothing is deleted) and start afresh")
    elif verb == "ppo":
        parser.add_argument("--ckpt", required=True, help="checkpoint the rollouts were collected with (IL or RL)")
        parser.add_argument("--index", required=True, help="dataset_index.pkl from 'minddrive decouple'")
        parser.add_argument("--work-dir", default=None, help="output folder (default: work_dirs/<config>_ppo)")
        parser.add_argument("--overwrite", action="store_true",
                            help="move a --work-dir of another run aside (nothing is deleted) and start afresh")
    elif verb == "rl-loop":
        parser.add_argument("--ckpt", required=True, help="the IL checkpoint to start from")
        parser.add_argument("--iterations", type=int, default=None,
                            help="collect -> PPO -> eval iterations (default: the config's rl_iterations, else 3)")
        parser.add_argument("--work-dir", default=None, help="output folder (default: work_dirs/<config>_rl)")
        parser.add_argument("--workers", type=int, default=None)
        parser.add_argument("--ray-address", default=None)
        parser.add_argument("--overwrite", action="store_true",
                            help="move a --work-dir of another run aside (nothing is deleted) and start afresh")


def _collecting_policy(config: str | None, ckpt: str | None, why: str):
    if config is None or ckpt is None:
        raise UserError(f"{why}: give --config and --ckpt of the policy that collected the rollouts")
    from minddrive.rollout.policy import load_policy

    return load_policy(load_config(config), ckpt)


def run(args: argparse.Namespace) -> int:
    if args.verb == "rl-convert-index":
        from minddrive.rl.index_convert import convert, index_layout

        policy = None
        if args.to == "upstream" and args.config is not None:
            policy = _collecting_policy(args.config, args.ckpt, "rl-convert-index --to upstream")
        path = convert(args.index, args.out, args.to, policy)
        print(f"rl-convert-index: {index_layout(args.index)} -> {args.to}: {path}")
        return 0
    if args.verb == "decouple":
        from minddrive.rl.decouple import decouple

        values = dict(load_config(args.config).get("rl") or {}) if args.config else {}
        values.update({key: value for key, value in (("gamma", args.gamma), ("gae_lambda", args.gae_lambda))
                       if value is not None})
        returns = ReturnParams.from_config(values, args.config or "decouple")
        if args.layout == "upstream":
            from minddrive.rl.index_convert import decouple_upstream

            policy = _collecting_policy(args.config, args.ckpt, "decouple --layout upstream")
            path = decouple_upstream(args.rollouts, args.out, policy, gamma=returns.gamma,
                                     gae_lambda=returns.gae_lambda)
            print(f"decouple: upstream layout -> {path}")
            return 0
        index = decouple(args.rollouts, args.out, gamma=returns.gamma, gae_lambda=returns.gae_lambda,
                         overwrite=args.overwrite)
        print(f"decouple: {len(index['steps'])} steps from {index['num_episodes']} episodes "
              f"(mean return {index['mean_return']:.3f}) -> {Path(args.out) / 'dataset_index.pkl'}")
        return 0
    cfg = load_config(args.config, args.cfg_options)
    for key in ("model", "rollout"):
        if key not in cfg:
            raise UserError(f"{args.config}: missing key '{key}'")
    name = Path(args.config).stem
    if args.verb == "collect":
        from minddrive.rl.collector import collect

        summary = collect(cfg, args.ckpt, args.out, num_workers=args.workers, ray_address=args.ray_address,
                          route_offset=args.route_offset, overwrite=args.overwrite)
    elif args.verb == "ppo":
        from minddrive.rl.ppo import train_ppo

        summary = train_ppo(cfg, args.ckpt, args.index, args.work_dir or f"work_dirs/{name}_ppo",
                            overwrite=args.overwrite)
    elif args.verb == "rl-loop":
        from minddrive.rl.loop import rl_loop

        if args.iterations is not None and args.iterations < 1:
            raise UserError(f"--iterations {args.iterations}: expected a positive integer")
        summary = rl_loop(cfg, args.ckpt, args.work_dir or f"work_dirs/{name}_rl", args.iterations,
                          num_workers=args.workers, ray_address=args.ray_address, overwrite=args.overwrite)
        summary = {k: v for k, v in summary.items() if k != "iterations"}
    else:
        raise UserError(f"unknown verb {args.verb!r}")
    print(json.dumps(summary, indent=2, default=str))
    return 0
