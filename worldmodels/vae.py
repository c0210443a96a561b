"""V: the convolutional variational autoencoder that compresses a 64x64 frame into z.

Architecture and loss follow Ha & Schmidhuber (2018): four stride-2 convolutions down to a
1024-feature code, a diagonal Gaussian posterior over z, four stride-2 transposed convolutions
back up, and a summed-pixel reconstruction loss plus a KL term floored per sample ("free bits").
With z_size=32 the model has 4,348,547 parameters, the paper's count.
"""

from typing import NamedTuple

import torch
import torch.nn as nn

from worldmodels.components.cnn import make_encoder


class VAEOutput(NamedTuple):
    """What `ConvVAE.forward` returns; B is the batch size, Z the latent size."""

    recon: torch.Tensor  # (B, C, 64, 64) reconstruction in [0, 1]
    mu: torch.Tensor  # (B, Z) posterior mean
    logvar: torch.Tensor  # (B, Z) posterior log-variance
    z: torch.Tensor  # (B, Z) sample mu + sigma * eps


class VAELoss(NamedTuple):
    """Scalar loss terms, each a mean over the batch, in nats (reconstruction in squared pixels)."""

    total: torch.Tensor  # reconstruction + kl
    reconstruction: torch.Tensor  # sum of squared error over (C, H, W)
    kl: torch.Tensor  # KL after the per-sample free-bits floor, as used in `total`
    kl_raw: torch.Tensor  # KL without the floor: watch it to spot posterior collapse


class ConvVAE(nn.Module):
    """Convolutional VAE for 64x64 frames scaled to [0, 1].

    Encoder: Conv2d k4 s2 with 32, 64, 128, 256 channels, ReLU after each: (B, 256, 2, 2),
    flattened to 1024, then one Linear each for mu and logvar. ``encoder`` other than "published"
    names a trunk of ``worldmodels.components.cnn`` (e.g. "resnet") that yields those 1024 features instead.
    Decoder: Linear(z, 1024) viewed as (B, 1024, 1, 1), then ConvTranspose2d s2 with kernels
    5, 5, 6, 6 and channels 128, 64, 32, in_channels, ReLU between and a sigmoid at the end.
    """

    def __init__(self, z_size: int = 32, in_channels: int = 3, encoder: str = "published") -> None:
        super().__init__()
        self.z_size = z_size
        self.in_channels = in_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 32, 4, stride=2), nn.ReLU(),  # (B, 32, 31, 31)
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),  # (B, 64, 14, 14)
            nn.Conv2d(64, 128, 4, stride=2), nn.ReLU(),  # (B, 128, 6, 6)
            nn.Conv2d(128, 256, 4, stride=2), nn.ReLU(),  # (B, 256, 2, 2)
            nn.Flatten(),  # (B, 1024)
        ) if encoder == "published" else make_encoder(encoder, in_channels, 64, features_dim=1024)
        self.fc_mu = nn.Linear(1024, z_size)
        self.fc_logvar = nn.Linear(1024, z_size)
        self.fc_decode = nn.Linear(z_size, 1024)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(1024, 128, 5, stride=2), nn.ReLU(),  # (B, 128, 5, 5)
            nn.ConvTranspose2d(128, 64, 5, stride=2), nn.ReLU(),  # (B, 64, 13, 13)
            nn.ConvTranspose2d(64, 32, 6, stride=2), nn.ReLU(),  # (B, 32, 30, 30)
            nn.ConvTranspose2d(32, in_channels, 6, stride=2), nn.Sigmoid(),  # (B, C, 64, 64)
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map frames x (B, C, 64, 64) in [0, 1] to the posterior (mu, logvar), each (B, Z)."""
        h = self.encoder(x)  # (B, 1024)
        return self.fc_mu(h), self.fc_logvar(h)

    def encode_rowwise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode`, each frame's heads computed on their own: a frame's (mu, logvar), each (B, Z), is
        bit for bit the same whatever other frames share its batch x (B, C, 64, 64). A batched matrix
        product picks its kernel, hence its rounding, by batch size (on the CPU from batch 4 up), while the
        convolutions do not; in a chaotic env a last-bit difference grows into another return. Rollouts use
        this, so an episode's return does not depend on how rollouts were batched. Within ~1e-6 of ``encode``."""
        h = self.encoder(x).unsqueeze(1)  # (B, 1, 1024)
        return tuple((head.weight * h).sum(-1) + head.bias for head in (self.fc_mu, self.fc_logvar))  # (B, Z) each

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents z (B, Z) to reconstructed frames (B, C, 64, 64) in [0, 1]."""
        h = self.fc_decode(z).view(-1, 1024, 1, 1)  # (B, 1024, 1, 1)
        return self.decoder(h)

    @staticmethod
    def sample_latent(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw z = mu + exp(logvar / 2) * eps with eps ~ N(0, I); all tensors (..., Z)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: torch.Tensor) -> VAEOutput:
        """Encode x (B, C, 64, 64), sample z, decode it: see `VAEOutput` for the shapes."""
        mu, logvar = self.encode(x)  # (B, Z), (B, Z)
        z = self.sample_latent(mu, logvar)  # (B, Z)
        return VAEOutput(recon=self.decode(z), mu=mu, logvar=logvar, z=z)


def vae_loss(
    x: torch.Tensor,
    recon: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    kl_tolerance: float = 0.5,
) -> VAELoss:
    """The authors' VAE loss for frames x and recon (B, C, H, W) and posterior mu, logvar (B, Z).

    reconstruction: squared error summed over (C, H, W), mean over the batch.
    kl: KL(q(z|x) || N(0, I)) per sample, floored at kl_tolerance * Z nats (free bits; 0 gives
    the plain KL), mean over the batch. kl_raw is the same mean without the floor.
    """
    reconstruction = (recon - x).pow(2).flatten(1).sum(dim=1).mean()
    kl_per_sample = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)  # (B,)
    kl = kl_per_sample.clamp(min=kl_tolerance * mu.shape[1]).mean()
    return VAELoss(
        total=reconstruction + kl,
        reconstruction=reconstruction,
        kl=kl,
        kl_raw=kl_per_sample.mean(),
    )
