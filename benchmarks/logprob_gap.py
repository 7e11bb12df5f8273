"""How far the rollout's decision log-probs are from the PPO learner's on the same inputs.

    .venv/bin/python benchmarks/logprob_gap.py [--config adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py]
        [--runtime '{"dtype": "bfloat16", "merge_adapters": true}'] [--batches 4] [--device cpu]

PPO's ratio is exp(learner log-prob - stored log-prob). The rollout stores what ``rollout.policy`` computed
(bf16 weights, merged adapters on the GPU); the learner recomputes with float32 master weights under bf16
autocast. Before any update the two should agree; whatever they don't is noise the clip treats as policy change
(``ppo.recompute_old_log_probs`` removes it). Random adapters (LoRA B drawn at 0.3, as after training) on a
freshly built model from the config; synthetic rollout-shaped batches. Prints JSON: the max and mean absolute
gap of the taken (greedy) action's log-prob and of the whole distribution, and how often the greedy decisions
differ.
"""

from __future__ import annotations

import argparse
import copy
import json

import torch

from minddrive.config import load_config
from minddrive.models.acceleration import accelerate_for_inference
from minddrive.models.policy import MindDrivePolicy, policy_options
from minddrive.registry import MODELS, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="adzoo/minddrive/configs/minddrive_tiny_rl_ppo_train.py")
    parser.add_argument("--runtime", default='{"dtype": "bfloat16", "merge_adapters": true}',
                        help="rollout.policy runtime of the rollout side (JSON)")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", default="128x224", help="HxW of the synthetic camera images")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    import gpu_bench

    torch.manual_seed(0)
    cfg = load_config(args.config)
    model = build(dict(cfg.model), MODELS, where="model").eval()
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    learner = MindDrivePolicy(model, args.device)  # float32 masters; autocast on the GPU, as PPO runs them
    runtime = json.loads(args.runtime)
    rollout = accelerate_for_inference(MindDrivePolicy(copy.deepcopy(model), args.device, **policy_options(runtime)),
                                       runtime)
    height, width = (int(v) for v in args.image_size.split("x"))
    gaps, full, flips, count = [], [], 0, 0
    for k in range(args.batches):
        batch = gpu_bench.runtime_batch(args.batch_size, (height, width), torch.device(args.device), seed=100 + k)
        stored = rollout.act(batch, sample=False)
        autocast = torch.autocast(args.device, dtype=torch.bfloat16)  # the learner's mixed precision
        with torch.no_grad(), autocast:
            scored, _, _ = learner.evaluate_decisions(batch, stored.decision)
        taken = stored.decision[:, None]
        gaps.append((scored.gather(1, taken) - stored.log_probs.gather(1, taken)).abs().flatten())
        full.append((scored - stored.log_probs).abs().flatten())
        flips += int((scored.argmax(-1) != stored.decision).sum())
        count += len(stored.decision)
    gap, whole = torch.cat(gaps), torch.cat(full)
    print(json.dumps(dict(config=args.config, runtime=json.loads(args.runtime), device=args.device, decisions=count,
                          taken_max=round(float(gap.max()), 4), taken_mean=round(float(gap.mean()), 4),
                          all_actions_max=round(float(whole.max()), 4), greedy_decision_differs=flips)))


if __name__ == "__main__":
    main()
