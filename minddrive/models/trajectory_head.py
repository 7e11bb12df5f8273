"""Trajectory heads: waypoint-token hidden states -> speed waypoints (6 x 2) and path points (NUM_PATH_POINTS x 2).

:class:`GenerativeTrajectoryHead` follows upstream's generative planner: a conditional VAE with a 32-d
latent (prior p(z | h), posterior q(z | h, ground truth) in training) and a GRU that rolls future states
forward one step at a time, each state decoded to a displacement; positions are the cumulative sum.
Inference decodes from the prior mean, so ``act`` is deterministic given its inputs.

Training returns two decodes per branch: the posterior sample (the CVAE reconstruction, with the KL to the
prior as a loss) and the prior mean (what inference uses). Supervising both is the hybrid CVAE objective of
Sohn et al. 2015 ("Learning Structured Output Representation using Deep Conditional Generative Models"):
the posterior sees the ground truth, so its reconstruction alone can fall while the prior-mean plan that
``act`` returns stays poor -- the KL only pulls the two latents together slowly.

Both branches (speed profile from ``<waypoint_ego>``, spatial path from ``<path_waypoint_ego>``) share the
class but not the weights -- upstream's decoupling of when from where. :class:`MLPTrajectoryHead`
regresses all points at once.
"""

from __future__ import annotations

import torch
from torch import nn

from minddrive.constants import NUM_FUTURE_WAYPOINTS, NUM_PATH_POINTS, PATH_POINT_SPACING
from minddrive.registry import MODELS

GT_SCALE = 20.0  # metres -> O(1) inputs for the posterior encoder
# Per-step displacements are predicted in these units, so O(1) network outputs are metre-scale steps.
SPEED_STEP_SCALE = 2.5  # metres per 0.5 s at 5 m/s
# Initial log-variance of prior and posterior: std 0.37 keeps the early reconstruction from drowning in
# latent noise (unit noise in 32 dims swamps the condition and stalls the fit) while leaving room to grow.
INIT_LOGVAR = -2.0


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


class _VAEGRUDecoder(nn.Module):
    """Condition c = f(h); latent z; a GRU over ``steps`` whose every input is [c, z] + a step embedding,
    and whose per-step output reads [state, c]. Feeding c at every step (rather than only into the initial
    state) lets the displacements depend on the condition directly instead of through a tanh-bounded
    memory, which is what made the original head learn ~3x slower than an MLP on the same features."""

    def __init__(self, in_dim: int, hidden: int, latent: int, steps: int, step_scale: float):
        super().__init__()
        self.steps, self.latent, self.step_scale = steps, latent, step_scale
        self.cond = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.prior = _mlp(hidden, hidden, 2 * latent)
        self.posterior = _mlp(hidden + steps * 2, hidden, 2 * latent)
        for net in (self.prior, self.posterior):
            nn.init.constant_(net[-1].bias[latent:], INIT_LOGVAR)
        self.init_state = nn.Linear(hidden + latent, hidden)
        self.step_embed = nn.Parameter(torch.zeros(steps, hidden + latent))
        self.gru = nn.GRU(hidden + latent, hidden, batch_first=True)
        self.out = _mlp(2 * hidden, hidden, 2)

    def decode(self, c: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(B, steps, 2) positions: cumulative sum of the per-step displacements."""
        cz = torch.cat([c, z], -1)
        state = torch.tanh(self.init_state(cz)).unsqueeze(0)
        states, _ = self.gru(cz.unsqueeze(1) + self.step_embed.unsqueeze(0), state)
        feats = torch.cat([states, c.unsqueeze(1).expand(-1, self.steps, -1)], -1)
        return (self.out(feats) * self.step_scale).cumsum(1)

    def forward(self, h: torch.Tensor, gt: torch.Tensor | None, gt_mask: torch.Tensor | None, sample: bool):
        """-> (plan, prior-mean plan or None, KL). Without ``gt`` the plan is the prior-mean decode."""
        c = self.cond(h.float())
        mu_p, logvar_p = self.prior(c).chunk(2, -1)
        prior_plan = self.decode(c, mu_p)
        if gt is None:
            return prior_plan, None, c.new_zeros(())
        mask = gt_mask.unsqueeze(-1) if gt_mask is not None else torch.ones_like(gt[..., :1])
        mu_q, logvar_q = self.posterior(torch.cat([c, (gt.float() * mask).flatten(1) / GT_SCALE], -1)).chunk(2, -1)
        kl = gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).mean()
        z = mu_q + torch.randn_like(mu_q) * (0.5 * logvar_q).exp() if sample else mu_q
        return self.decode(c, z), prior_plan, kl


def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) summed over latent dims, per sample."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)


@MODELS.register_module()
class GenerativeTrajectoryHead(nn.Module):
    """Returns ``speed_waypoints``, ``path`` and ``kl``; with ground truth also ``prior_speed_waypoints`` and
    ``prior_path`` (the inference-time decode) for the hybrid loss."""

    def __init__(self, in_dim: int, hidden: int = 256, latent_dim: int = 32,
                 num_waypoints: int = NUM_FUTURE_WAYPOINTS, num_path_points: int = NUM_PATH_POINTS):
        super().__init__()
        self.speed = _VAEGRUDecoder(in_dim, hidden, latent_dim, num_waypoints, SPEED_STEP_SCALE)
        self.path = _VAEGRUDecoder(in_dim, hidden, latent_dim, num_path_points, PATH_POINT_SPACING)

    def forward(self, h_waypoint, h_path, gt_waypoints=None, waypoint_mask=None, gt_path=None, path_mask=None,
                sample: bool = False) -> dict[str, torch.Tensor]:
        wp, prior_wp, kl_wp = self.speed(h_waypoint, gt_waypoints, waypoint_mask, sample)
        path, prior_path, kl_path = self.path(h_path, gt_path, path_mask, sample)
        out = {"speed_waypoints": wp, "path": path, "kl": kl_wp + kl_path}
        if prior_wp is not None and prior_path is not None:
            out.update(prior_speed_waypoints=prior_wp, prior_path=prior_path)
        return out


@MODELS.register_module()
class MLPTrajectoryHead(nn.Module):
    """Deterministic alternative: one MLP per branch regressing cumulative displacements."""

    def __init__(self, in_dim: int, hidden: int = 256, num_waypoints: int = NUM_FUTURE_WAYPOINTS,
                 num_path_points: int = NUM_PATH_POINTS):
        super().__init__()
        self.shapes = (num_waypoints, num_path_points)
        self.speed = _mlp(in_dim, hidden, num_waypoints * 2)
        self.path = _mlp(in_dim, hidden, num_path_points * 2)

    def forward(self, h_waypoint, h_path, *args, **kwargs) -> dict[str, torch.Tensor]:
        b = h_waypoint.shape[0]
        wp = (self.speed(h_waypoint.float()).view(b, self.shapes[0], 2) * SPEED_STEP_SCALE).cumsum(1)
        path = (self.path(h_path.float()).view(b, self.shapes[1], 2) * PATH_POINT_SPACING).cumsum(1)
        return {"speed_waypoints": wp, "path": path, "kl": wp.new_zeros(())}
