"""Tests of V, the ConvVAE: parameter count, shapes, loss terms, and that training lowers it."""

import numpy as np
import torch

from worldmodels.vae import ConvVAE, VAELoss, VAEOutput, vae_loss


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_matches_paper() -> None:
    assert count_params(ConvVAE(z_size=32)) == 4_348_547


def test_output_shapes_and_ranges() -> None:
    torch.manual_seed(0)
    vae = ConvVAE(z_size=32)
    x = torch.rand(4, 3, 64, 64)
    out = vae(x)
    assert isinstance(out, VAEOutput)
    assert out.recon.shape == (4, 3, 64, 64)
    for t in (out.mu, out.logvar, out.z):
        assert t.shape == (4, 32)
    for t in out:
        assert t.dtype == torch.float32
    assert out.recon.min() >= 0 and out.recon.max() <= 1
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (4, 32)
    assert vae.decode(torch.randn(5, 32)).shape == (5, 3, 64, 64)


def test_sample_latent_uses_generator_and_std() -> None:
    mu, logvar = torch.full((2, 3), 1.0), torch.full((2, 3), 2 * torch.log(torch.tensor(3.0)))
    z1 = ConvVAE.sample_latent(mu, logvar, torch.Generator().manual_seed(7))
    z2 = ConvVAE.sample_latent(mu, logvar, torch.Generator().manual_seed(7))
    eps = torch.randn((2, 3), generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(z1, z2)
    torch.testing.assert_close(z1, 1.0 + 3.0 * eps)


def test_kl_floor_and_raw_kl() -> None:
    x = torch.rand(2, 3, 64, 64)
    mu, logvar = torch.zeros(2, 32), torch.zeros(2, 32)
    loss = vae_loss(x, x, mu, logvar, kl_tolerance=0.5)
    assert isinstance(loss, VAELoss)
    assert loss.kl.item() == 16.0
    assert loss.kl_raw.item() == 0.0
    assert loss.total.item() == 16.0
    assert vae_loss(x, x, mu, logvar, kl_tolerance=0.0).kl.item() == 0.0


def test_kl_above_floor_is_plain_kl() -> None:
    mu = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    # Per-sample KL: 0.5 * (9 + e - 1 - 1) = 0.5 * (7 + e) and 0; floor 0.5 * 2 = 1 nat.
    kl_0 = 0.5 * (7 + torch.e)
    x = torch.zeros(2, 1, 1, 1)
    loss = vae_loss(x, x, mu, logvar, kl_tolerance=0.5)
    assert abs(loss.kl.item() - (kl_0 + 1.0) / 2) < 1e-5
    assert abs(loss.kl_raw.item() - kl_0 / 2) < 1e-5


def test_reconstruction_is_summed_over_pixels_and_averaged_over_batch() -> None:
    x = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]], [[[1.0, 1.0], [1.0, 1.0]]]])  # (2, 1, 2, 2)
    recon = torch.tensor([[[[0.5, 1.0], [0.5, 0.0]]], [[[0.0, 1.0], [1.0, 1.0]]]])
    # Sample 0: 0.25 + 0 + 0 + 0.25 = 0.5; sample 1: 1.0; mean 0.75.
    mu, logvar = torch.zeros(2, 4), torch.zeros(2, 4)
    loss = vae_loss(x, recon, mu, logvar, kl_tolerance=0.0)
    assert abs(loss.reconstruction.item() - 0.75) < 1e-6
    assert abs(loss.total.item() - 0.75) < 1e-6


def coloured_squares(n: int, generator: torch.Generator) -> torch.Tensor:
    """n 64x64 RGB images (n, 3, 64, 64), each a random-coloured 16x16 square on black."""
    images = torch.zeros(n, 3, 64, 64)
    colours = torch.rand(n, 3, generator=generator)
    corners = torch.randint(0, 48, (n, 2), generator=generator)
    for i, (row, col) in enumerate(corners.tolist()):
        images[i, :, row : row + 16, col : col + 16] = colours[i, :, None, None]
    return images


def test_training_lowers_loss() -> None:
    torch.manual_seed(0)
    data = coloured_squares(16, torch.Generator().manual_seed(0))
    vae = ConvVAE(z_size=8)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        out = vae(data)
        loss = vae_loss(data, out.recon, out.mu, out.logvar).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses


def test_rowwise_encoding_of_a_frame_does_not_depend_on_its_batch() -> None:
    torch.manual_seed(0)
    vae = ConvVAE(z_size=32).eval()
    frames = torch.rand(8, 3, 64, 64)
    with torch.no_grad():
        alone = [vae.encode_rowwise(frames[i : i + 1]) for i in range(8)]
        for size in range(1, 9):
            mu, logvar = vae.encode_rowwise(frames[:size])
            for i in range(size):
                assert torch.equal(mu[i], alone[i][0][0]) and torch.equal(logvar[i], alone[i][1][0]), (size, i)
        mu, logvar = vae.encode_rowwise(frames.flip(0))  # the same frames in another order
        assert torch.equal(mu.flip(0), torch.cat([a[0] for a in alone]))
        plain_mu, plain_logvar = vae.encode(frames)
    torch.testing.assert_close(mu.flip(0), plain_mu, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logvar.flip(0), plain_logvar, atol=1e-5, rtol=1e-5)
