"""A dreamed episode beside the real one: the same controller acting in the real env and in M's dream.

Both start from the same real first frame (the dream from V's posterior of it) and run closed-loop: in
the real env C reads V's z of each real frame and M's state; in the dream C reads M's own sampled z.
The dream is drawn by V's decoder, or by a GAN generator trained on V's latents. The picture shows where M's
imagination drifts from the game.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from worldmodels.checkpoint import load_gan, read_checkpoint, vae_identity
from worldmodels.dream import DreamSettings, DreamSimulator, StartLatents
from worldmodels.real_rollouts import RealEnvWorkerSpec

log = logging.getLogger(__name__)

SEPARATOR_PX = 2
"""Width of the white bar between the real (left) and dreamed (right) frame."""


@dataclass
class SideBySide:
    """Frames (T, 64, 2 * 64 + SEPARATOR_PX, 3) uint8: real on the left, dream on the right; each episode's
    last frame is held once it has ended. Returns are summed rewards (the dream's by its reward_mode)."""

    frames: np.ndarray
    real_return: float
    dream_return: float
    real_steps: int
    dream_steps: int
    dream_reward: str
    """How the dream's return was counted: "head" (M's reward head) or "survival" (+1 per step alive)."""
    dream_can_end: bool
    """M has a done head; without one a dream only ends at ``max_steps``."""

    def describe_dream(self) -> str:
        """The dream's length and return, saying what the return counts."""
        if self.dream_reward == "head":
            text = f"{self.dream_steps} steps, return {self.dream_return:.1f} (M's reward head)"
        else:
            text = f"{self.dream_steps} steps, return {self.dream_return:.0f} (survival: +1 per step alive)"
        return text + ("" if self.dream_can_end else ", cut at dream.max_steps (M has no done head)")


def dream_beside_real(spec: RealEnvWorkerSpec, settings: DreamSettings, params: np.ndarray | None, seed: int,
                      device: torch.device | str = "cpu",
                      renderer: Callable[[np.ndarray], np.ndarray] | None = None) -> SideBySide:
    """Run controller ``params`` (D,) (None: all zeros) in the real env from ``seed`` and in M's dream from that
    episode's first frame. A dream without a reward head counts survival (+1 per step) when ``settings`` asks
    for the head. ``renderer`` draws the dream's z (T, Z) as frames (T, 64, 64, 3) uint8 (default: V's decoder;
    a GAN generator trained on V's latents: :func:`load_dream_renderer`)."""
    worker = spec()
    if params is None:
        params = np.zeros(worker.num_params, np.float32)
    try:
        episode = worker.record(params, seed)
    finally:
        worker.close()
    real_return, real = episode.episode_return, episode.frames  # (T_real + 1, 64, 64, 3)
    vae, mdnrnn = worker.vae.to(device), worker.mdnrnn
    with torch.inference_mode():
        first = torch.from_numpy(real[:1]).to(device).permute(0, 3, 1, 2).float() / 255  # (1, 3, 64, 64)
        mu, logvar = (t.cpu().numpy() for t in vae.encode(first))  # (1, Z) each
    if settings.reward_mode == "head" and mdnrnn.reward_head is None:
        settings = replace(settings, reward_mode="survival")
    simulator = DreamSimulator(mdnrnn, StartLatents(mu, logvar), settings, vae, device)
    result = simulator.record(np.asarray(params, np.float32)[None], np.array([seed]))
    steps = int(result.lengths[0])
    dream = (renderer or simulator.decode)(result.z[0, : steps + 1])  # (T_dream + 1, 64, 64, 3)
    return SideBySide(_beside(real, dream), real_return, float(result.returns[0]), len(real) - 1, steps,
                      settings.reward_mode, mdnrnn.done_head is not None)


def _beside(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Frames (T, H, W, 3) of two sequences side by side, the shorter one holding its last frame."""
    length = max(len(left), len(right))
    hold = [np.concatenate([seq, np.repeat(seq[-1:], length - len(seq), axis=0)]) for seq in (left, right)]
    bar = np.full((length, left.shape[1], SEPARATOR_PX, 3), 255, np.uint8)
    return np.concatenate([hold[0], bar, hold[1]], axis=2)


def load_dream_renderer(path: str | Path, z_size: int, device: torch.device | str = "cpu",
                        vae_path: str | Path | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A GAN generator trained on V's latents (latent_source "vae") as a renderer: z (T, Z) -> frames
    (T, 64, 64, C) uint8, drawn in V's decoder's place.

    :param vae_path: the dream's V; a GAN trained on another V's latents is refused (one trained before V's
        identity was recorded is accepted with a warning). None checks only the size.
    :raises CheckpointError: ``path`` is not a readable GAN checkpoint.
    :raises ValueError: the GAN was trained on noise, on latents of another size than ``z_size``, or of another V.
    """
    checkpoint = read_checkpoint(path, kind="gan")
    if checkpoint.config.get("latent_source", "noise") != "vae":
        raise ValueError(f"{path} is a GAN trained on noise, so its frames do not follow a dream's z: train one "
                         "on V's latents with `worldmodels train-gan --set gan.latent_source=vae --vae RUN/vae.pt`")
    if checkpoint.model_args["latent_size"] != z_size:
        raise ValueError(f"{path} draws from latents of size {checkpoint.model_args['latent_size']}, but this M "
                         f"dreams z of size {z_size}: the GAN was trained on another run's V")
    if vae_path is not None:
        identity = vae_identity(vae_path)
        if checkpoint.vae_identity is None:
            log.warning("%s does not record which V it was trained on (trained before that was recorded); assuming "
                        "%s", path, vae_path)
        elif checkpoint.vae_identity != identity:
            raise ValueError(f"{path} was trained on the latents of V {checkpoint.vae_identity}, but this dream's V "
                             f"{vae_path} is V {identity}, so its frames would not follow this V's z: train a GAN on "
                             f"this V (`worldmodels train-gan --set gan.latent_source=vae --vae {vae_path}` into "
                             "another --run) and pass it with --gan")
    model = load_gan(path, device)
    return lambda z: model.draw(torch.as_tensor(z))
