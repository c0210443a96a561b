"""Where does a dream go wrong? Three measurements of a run's M with a done head (docs/results.md, Doom from random
data), printed as tables:

1. **M's horizon.** M trains on ``mdnrnn.seq_len``-step windows from a zero state, but dreams run for thousands of
   steps. On held-out episodes (``--heldout``: encoded by the run's V, never seen by its M), M run over each whole
   episode (a dream's situation) against M restarted from a zero state every ``seq_len`` steps (its training
   windows): the done probability at the death steps and at the other steps, and the z NLL (nats per dimension),
   by position in the episode.
2. **Teacher-forced deaths.** ``--controller-episodes`` real episodes of the run's controller (seeds ``--seed`` and
   up: neither training nor evaluation seeds), encoded by V, fed to M: does M predict the deaths the controller
   meets (P(done) > 0.5 at the death step) when it sees the real frames? If it does, while the dream lives much
   longer than the game, M's flaw is in dreaming the danger (its z dynamics), not in recognising it.
3. **The scale of C's inputs.** ``--dreams`` dreams of the run's controller (dream seed ``--seed``): the mean and
   99th percentile of |z|, |h| and |c| and the largest |c| at a few steps. h is bounded by 1; an LSTM's cell state
   is not, and cell units that integrate without bound saturate tanh(W [z, c, h]) from CMA-ES's first generation.

A run without a controller yet (``controller/mean.npy``) gets measurement 1, and 3 with the all-zeros controller.

    python benchmarks/m_diagnostics.py --run RUN --heldout OTHER_RUN/episodes --episodes 200 \\
        --heldout-first 2000 --controller-episodes 16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium
import numpy as np
import torch

import envs  # noqa: F401  (registers the worldmodels/ ids)
from agents.dream_training import dream_spec
from rollouts.collect import run_episodes
from rollouts.storage import episode_path, read_episode, read_latents
from worldmodels.checkpoint import ModelWeights, load_mdnrnn, load_vae
from worldmodels.config import load_config
from worldmodels.controller_policy import WorldModelPolicySpec
from worldmodels.encode import encode_frames
from worldmodels.mdnrnn import MDNRNN, mdn_nll
from worldmodels.run_layout import (
    CONFIG_NAME,
    CONTROLLER_DIR,
    EPISODES_DIR,
    MDNRNN_CHECKPOINT_NAME,
    MEAN_PARAMS_NAME,
    VAE_CHECKPOINT_NAME,
)

BUCKETS = ((0, 100), (100, 200), (200, 400), (400, 10**9))
SCALE_STEPS = (1, 10, 50, 100, 300)


def m_outputs(m: MDNRNN, z: torch.Tensor, actions: torch.Tensor, window: int | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """P(done) (T,) and z NLL (T,) of M over one episode's latents z (T + 1, Z) and actions (T, A): run over the
    whole episode (``window`` None) or from a zero state every ``window`` steps."""
    steps = len(actions)
    starts = [0] if window is None else list(range(0, steps, window))
    done, nll = [], []
    with torch.no_grad():
        for start in starts:
            stop = steps if window is None else min(start + window, steps)
            out = m(z[None, start:stop], actions[None, start:stop])
            done.append(torch.sigmoid(out.done_logit[0]))
            target = z[None, start + 1:stop + 1]  # (1, t, Z)
            per_step = [mdn_nll(target[:, t:t + 1], out.log_pi[:, t:t + 1], out.mu[:, t:t + 1],
                                out.log_sigma[:, t:t + 1]).item() for t in range(stop - start)]
            nll.append(torch.tensor(per_step))
    return torch.cat(done).numpy(), torch.cat(nll).numpy()


def horizon_table(m: MDNRNN, heldout: Path, first: int, count: int, window: int) -> str:
    """Measurement 1 over held-out episodes ``first .. first + count - 1`` of folder ``heldout``."""
    rows = {name: {"death": [], "alive": {b: [] for b in BUCKETS}, "nll": {b: [] for b in BUCKETS}}
            for name in ("whole episode", f"{window}-step windows")}
    for index in range(first, first + count):
        path = episode_path(heldout, index)
        episode, (mu, _) = read_episode(path), read_latents(path)
        z, actions = torch.from_numpy(mu), torch.from_numpy(episode.actions).float()
        for name, size in zip(rows, (None, window)):
            done, nll = m_outputs(m, z, actions, size)
            if episode.terminated[-1]:
                rows[name]["death"].append(done[-1])
            for low, high in BUCKETS:
                part = slice(low, min(high, len(done) - 1))  # the death step left out
                rows[name]["alive"][(low, high)].extend(done[part].tolist())
                rows[name]["nll"][(low, high)].extend(nll[part].tolist())
    lines = ["| M run over | steps | P(done) at death steps | death steps > 0.5 | P(done) elsewhere | z NLL |",
             "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        deaths = np.asarray(row["death"])
        for low, high in BUCKETS:
            alive, nll = np.asarray(row["alive"][(low, high)]), np.asarray(row["nll"][(low, high)])
            span = f"{low}+" if high == BUCKETS[-1][1] else f"{low}-{high - 1}"
            lines.append(f"| {name} | {span} | {deaths.mean():.3f} ({len(deaths)}) | {np.mean(deaths > 0.5):.2f} | "
                         f"{alive.mean():.4f} | {nll.mean():.3f} |")
    return "\n".join(lines)


def _controller_params(run: Path) -> np.ndarray | None:
    """The run's controller mean (D,) float32, or None when it has not been trained."""
    path = run / CONTROLLER_DIR / MEAN_PARAMS_NAME
    return np.load(path).astype(np.float32) if path.is_file() else None


def controller_deaths(run: Path, m: MDNRNN, episodes: int, seed: int, envs_at_once: int = 8) -> str:
    """Measurement 2: the run's controller in the real env, its episodes fed to M."""
    config = load_config(file=run / CONFIG_NAME)
    params = _controller_params(run)
    if params is None:
        return f"(no {CONTROLLER_DIR}/{MEAN_PARAMS_NAME} in {run}: no controller episodes to feed M)"
    spec = WorldModelPolicySpec(ModelWeights.read(run / VAE_CHECKPOINT_NAME, "vae"),
                                ModelWeights.read(run / MDNRNN_CHECKPOINT_NAME, "mdnrnn"), tuple(params.tolist()),
                                config.controller.inputs, config.controller.bias, config.controller.hidden_units)
    environments = [gymnasium.make(config.env.id) for _ in range(envs_at_once)]
    policy = spec.make_batch(environments[0].action_space, envs_at_once)
    vae = load_vae(run / VAE_CHECKPOINT_NAME).eval()
    lengths, at_death, elsewhere = [], [], []
    for start in range(seed, seed + episodes, envs_at_once):
        seeds = list(range(start, min(start + envs_at_once, seed + episodes)))
        for episode in run_episodes(environments[:len(seeds)], policy, seeds):
            mu, _ = encode_frames(vae, episode.observations)
            done, _ = m_outputs(m, torch.from_numpy(mu), torch.from_numpy(episode.actions).float(), None)
            lengths.append(episode.length)
            if episode.terminated[-1]:
                at_death.append(done[-1])
            elsewhere.extend(done[:-1].tolist())
    at_death, elsewhere = np.asarray(at_death), np.asarray(elsewhere)
    header = (f"| real episodes (seeds {seed}..{seed + episodes - 1}) | length | deaths | P(done) > 0.5 at death "
              "steps | P(done) > 0.5 elsewhere |\n|---|---|---|---|---|\n")
    return header + (f"| {episodes} | {np.mean(lengths):.0f} +- {np.std(lengths):.0f} | {len(at_death)} | "
                     f"{np.mean(at_death > 0.5):.2f} | {np.mean(elsewhere > 0.5):.4f} |")


def input_scale(run: Path, dreams: int, seed: int) -> str:
    """Measurement 3: the scale of z, h and c over ``dreams`` dreams of the run's controller (all zeros when it has
    none), at ``SCALE_STEPS`` (every dream stepped to the last of them, ended or not: the scale of M's state, not of
    survival)."""
    config = load_config(file=run / CONFIG_NAME)
    simulator = dream_spec(config, run, run / EPISODES_DIR)()
    params = _controller_params(run)
    if params is None:
        params = np.zeros(simulator.num_params, np.float32)
    rows = simulator.controller_rows(np.repeat(params[None], dreams, 0))
    generator = simulator.generator(seed)
    state = simulator.start(dreams, generator)
    lines = ["| step | mean abs z | p99 abs z | mean abs h | p99 abs h | mean abs c | p99 abs c | max abs c |",
             "|---|---|---|---|---|---|---|---|"]
    for t in range(1, SCALE_STEPS[-1] + 1):
        state = simulator.step(state, simulator.act(rows, state), simulator.draw_noise(dreams, generator)).state
        if t in SCALE_STEPS:
            z, h, c = (x.float().abs() for x in (state.z, state.h[0], state.c[0]))  # (B, Z), (B, H), (B, H)
            lines.append(f"| {t} | {z.mean():.2f} | {z.quantile(0.99):.2f} | {h.mean():.3f} | {h.quantile(0.99):.3f} "
                         f"| {c.mean():.2f} | {c.quantile(0.99):.2f} | {c.max():.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder: vae.pt, mdnrnn.pt (with a done head), "
                        "config.yaml, controller/mean.npy (optional), episodes/ (the dreams' start latents)")
    parser.add_argument("--heldout", type=Path, required=True, help="episode folder with latents from the run's V, "
                        "holding episodes its M never saw")
    parser.add_argument("--heldout-first", type=int, default=0, help="index of the first held-out episode")
    parser.add_argument("--episodes", type=int, default=200, help="held-out episodes")
    parser.add_argument("--controller-episodes", type=int, default=16, help="real episodes of the run's controller")
    parser.add_argument("--seed", type=int, default=4_000_000, help="seed of the first real episode, and of the "
                        "dreams")
    parser.add_argument("--dreams", type=int, default=256, help="dreams of the run's controller for the input scale")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(file=args.run / CONFIG_NAME)
    m = load_mdnrnn(args.run / MDNRNN_CHECKPOINT_NAME).eval()
    if m.done_head is None:
        raise SystemExit(f"{args.run / MDNRNN_CHECKPOINT_NAME} has no done head: there is no death to predict")
    print(horizon_table(m, args.heldout, args.heldout_first, args.episodes, config.mdnrnn.seq_len))
    print()
    print(controller_deaths(args.run, m, args.controller_episodes, args.seed))
    print()
    print(input_scale(args.run, args.dreams, args.seed))


if __name__ == "__main__":
    main()
