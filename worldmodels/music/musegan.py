"""MuseGAN as the generative-deep-learning book builds it: four-voice piano-rolls from four kinds of latent.

Piano-rolls are (B, bars, 16 steps, P pitches, 4 tracks) in [-1, 1] (a one-hot pitch per track and step,
scaled: 1 for the note, -1 elsewhere; all -1 is silence). Latents, Z each, packed as one tensor
(B, 2 + 2 * tracks, Z): [chords, style, melody of each track, groove of each track]:

    chords   (B, Z) -> a temporal network shared by all tracks -> (B, bars, Z)
    style    (B, Z), the same for every bar and track
    melody   (B, tracks, Z) -> a temporal network per track -> (B, tracks, bars, Z)
    groove   (B, tracks, Z), the same for every bar
    temporal network   z -> transposed conv along time (kernel 2, 4w channels) -> BN, ReLU -> (kernel bars - 1,
                       Z channels) -> BN, ReLU: (B, bars, Z)
    bar generator      (one per track) [chords, style, melody, groove] of a bar (B, 4Z) -> dense 4w, BN, ReLU ->
                       (2w, 2 steps, 1 pitch) -> transposed convs doubling time thrice (2w, w, w channels) ->
                       along pitch x P/12 (w) then x 12 (1 channel) -> tanh: (B, 16, P)
    critic             3-D convs over (bars, steps, pitches) with tracks as channels, LeakyReLU 0.2, no batch
                       norm: bars collapsed (kernels 2, bars - 1), pitch by 12 then P/12, steps by 2, 2, 2, 2 ->
                       dense 4w -> (B,) scores

:meth:`MuseGAN.generate` takes the argmax over pitch: one note per track and step, as MIDI pitches.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from worldmodels.music.data import STEPS_PER_BAR, TRACKS


def check_shape(bars: int, pitches: int) -> None:
    """Raise ValueError unless MuseGAN can be built for ``bars`` bars and ``pitches`` pitch rows."""
    if bars < 2:
        raise ValueError(f"MuseGAN needs at least 2 bars per sample (its temporal networks), got {bars}")
    if pitches % 12 or pitches < 12:
        raise ValueError(f"MuseGAN's pitch rows must be a positive multiple of 12 (octaves), got {pitches}")


def _up(c_in: int, c_out: int, kernel: tuple[int, int]) -> list[nn.Module]:
    """A transposed conv multiplying (time, pitch) by ``kernel``, then BatchNorm and ReLU."""
    return [nn.ConvTranspose2d(c_in, c_out, kernel, stride=kernel), nn.BatchNorm2d(c_out), nn.ReLU()]


class TemporalNetwork(nn.Module):
    """z (B, Z) -> one latent per bar (B, bars, Z)."""

    def __init__(self, latent_size: int, bars: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Unflatten(1, (latent_size, 1)),  # (B, Z, 1)
            nn.ConvTranspose1d(latent_size, 4 * width, 2), nn.BatchNorm1d(4 * width), nn.ReLU(),  # (B, 4w, 2)
            nn.ConvTranspose1d(4 * width, latent_size, bars - 1), nn.BatchNorm1d(latent_size), nn.ReLU(),
        )  # (B, Z, bars)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, Z) -> (B, bars, Z)."""
        return self.net(z).transpose(1, 2)


class BarGenerator(nn.Module):
    """One track's bar from its four latents: (B, 4Z) -> (B, 16, P) in [-1, 1]."""

    def __init__(self, latent_size: int, pitches: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(4 * latent_size, 4 * width), nn.BatchNorm1d(4 * width), nn.ReLU(),
            nn.Unflatten(1, (2 * width, 2, 1)),  # (B, 2w, 2, 1)
            *_up(2 * width, 2 * width, (2, 1)), *_up(2 * width, width, (2, 1)), *_up(width, width, (2, 1)),
            *_up(width, width, (1, pitches // 12)),  # (B, w, 16, P / 12)
            nn.ConvTranspose2d(width, 1, (1, 12), stride=(1, 12)), nn.Tanh(),  # (B, 1, 16, P)
        )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, 4Z) -> (B, 16, P)."""
        return self.net(latents).squeeze(1)


class MuseGANGenerator(nn.Module):
    """Packed latents (B, 2 + 2 * tracks, Z) -> piano-rolls (B, bars, 16, P, tracks) in [-1, 1]."""

    def __init__(self, bars: int, pitches: int, latent_size: int, width: int, tracks: int = TRACKS) -> None:
        super().__init__()
        self.bars, self.tracks = bars, tracks
        self.chords = TemporalNetwork(latent_size, bars, width)
        self.melody = nn.ModuleList(TemporalNetwork(latent_size, bars, width) for _ in range(tracks))
        self.bar_generators = nn.ModuleList(BarGenerator(latent_size, pitches, width) for _ in range(tracks))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, 2 + 2T, Z) -> (B, bars, 16, P, T)."""
        batch, _, size = z.shape
        chords = self.chords(z[:, 0])  # (B, bars, Z)
        style = z[:, 1].unsqueeze(1).expand(-1, self.bars, -1)  # (B, bars, Z)
        tracks = []
        for track in range(self.tracks):
            melody = self.melody[track](z[:, 2 + track])  # (B, bars, Z)
            groove = z[:, 2 + self.tracks + track].unsqueeze(1).expand(-1, self.bars, -1)  # (B, bars, Z)
            latents = torch.cat([chords, style, melody, groove], dim=-1).reshape(batch * self.bars, 4 * size)
            tracks.append(self.bar_generators[track](latents).reshape(batch, self.bars, STEPS_PER_BAR, -1))
        return torch.stack(tracks, dim=-1)


class MuseGANCritic(nn.Module):
    """Piano-rolls (B, bars, 16, P, tracks) -> scores (B,); no batch norm (for the gradient penalty)."""

    def __init__(self, bars: int, pitches: int, width: int, tracks: int = TRACKS) -> None:
        super().__init__()
        c = max(width // 2, 1)
        layers = [
            ((tracks, c), (2, 1, 1), (1, 1, 1), 0),  # bars -> bars - 1
            ((c, c), (bars - 1, 1, 1), (1, 1, 1), 0),  # -> 1
            ((c, c), (1, 1, 12), (1, 1, 12), 0),  # pitches -> P / 12
            ((c, c), (1, 1, pitches // 12), (1, 1, pitches // 12), 0),  # -> 1
            ((c, c), (1, 2, 1), (1, 2, 1), 0),  # steps 16 -> 8
            ((c, c), (1, 2, 1), (1, 2, 1), 0),  # -> 4
            ((c, width), (1, 4, 1), (1, 2, 1), (0, 1, 0)),  # -> 2
            ((width, 2 * width), (1, 3, 1), (1, 2, 1), (0, 1, 0)),  # -> 1
        ]
        modules: list[nn.Module] = []
        for (c_in, c_out), kernel, stride, padding in layers:
            modules += [nn.Conv3d(c_in, c_out, kernel, stride, padding), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*modules, nn.Flatten())  # (B, 2w)
        self.score = nn.Sequential(nn.Linear(2 * width, 4 * width), nn.LeakyReLU(0.2), nn.Linear(4 * width, 1))

    def forward(self, rolls: torch.Tensor) -> torch.Tensor:
        """(B, bars, 16, P, T) -> (B,)."""
        return self.score(self.features(rolls.permute(0, 4, 1, 2, 3))).squeeze(1)  # tracks as channels


class MuseGAN(nn.Module):
    """Generator and critic, with ``sample_latent`` and ``generate``; ``lowest_pitch`` is the MIDI pitch of row 0.

    Duck-types the frame GAN for ``worldmodels.components.gan_updates.GANUpdates`` (``generator``, ``critic``,
    ``sample_latent``), so it trains with the same WGAN-GP updates.
    """

    def __init__(self, bars: int = 2, pitches: int = 84, latent_size: int = 32, width: int = 256,
                 lowest_pitch: int = 24) -> None:
        super().__init__()
        check_shape(bars, pitches)
        self.bars, self.pitches, self.latent_size, self.lowest_pitch = bars, pitches, latent_size, lowest_pitch
        self.generator = MuseGANGenerator(bars, pitches, latent_size, width)
        self.critic = MuseGANCritic(bars, pitches, width)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 2 + 2 * tracks, Z) standard normal latents on the model's device."""
        device = next(self.parameters()).device
        return torch.randn(n, 2 + 2 * TRACKS, self.latent_size, device=device, generator=generator)

    def to_rolls(self, pitches: torch.Tensor) -> torch.Tensor:
        """MIDI pitches (B, bars, 16, tracks) int, -1 silent -> piano-rolls (B, bars, 16, P, tracks) in {-1, 1}."""
        rows = pitches.long() - self.lowest_pitch
        one_hot = nn.functional.one_hot(rows.clamp(0, self.pitches - 1), self.pitches)  # (B, bars, 16, T, P)
        one_hot = one_hot * (pitches >= 0).unsqueeze(-1)
        return (2.0 * one_hot - 1.0).transpose(-1, -2)

    @torch.no_grad()
    def generate(self, n: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``n`` piano-rolls as MIDI pitches (n, bars, 16, tracks) int64, the argmax pitch of each track and step
        (generator in eval mode; its mode is restored)."""
        training = self.generator.training
        self.generator.eval()
        rolls = self.generator(self.sample_latent(n, generator))  # (n, bars, 16, P, T)
        self.generator.train(training)
        return (rolls.argmax(dim=3) + self.lowest_pitch).cpu().numpy()
