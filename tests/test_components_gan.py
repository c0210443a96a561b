"""GAN components: network shapes, generate(n), the losses and penalty, each variant's critic and generator
updates on tiny data, and train-gan (log, sample grids, exact resume, loading, errors, CLI)."""

import csv
import typing

import numpy as np
import pytest
import torch
from PIL import Image

from rollouts.atomic import atomic_write_bytes
from rollouts.storage import episode_path, episode_to_bytes
from rollouts.synthetic import make_synthetic_episode, write_synthetic_episodes
from worldmodels.checkpoint import load_gan, read_checkpoint, save_untrained_checkpoint
from worldmodels.cli import main
from worldmodels.components.gan import CRITIC_LAYOUTS, GAN, to_unit_range
from worldmodels.components.gan_losses import critic_loss, gradient_penalty
from worldmodels.components.gan_updates import BOOK_RECIPES, GANUpdates, make_optimizer, recipe_for
from worldmodels.components.train_gan import train_gan
from worldmodels.config import ConfigError, load_config
from worldmodels.config_schema import GANVariantName
from worldmodels.dream_video import load_dream_renderer

VARIANTS = ["dcgan", "wgan", "wgan_gp"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(*overrides: str):
    return load_config("carracing-tiny", ["device=cpu", "gan.width=8", "gan.batch_size=4", *overrides])


def real_frames(count: int = 16) -> torch.Tensor:
    """(count, 3, 64, 64) synthetic frames in [-1, 1]."""
    frames = make_synthetic_episode(0, count - 1).observations  # (count, 64, 64, 3) uint8
    return to_unit_range(torch.from_numpy(frames).permute(0, 3, 1, 2))


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_generate(variant):
    torch.manual_seed(0)
    gan = GAN(variant)  # the books' width 64
    fake = gan.generator(gan.sample_latent(2))
    assert fake.shape == (2, 3, 64, 64) and fake.min() >= -1 and fake.max() <= 1
    assert gan.critic(fake).shape == (2,)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in gan.critic.modules())

    small = GAN(variant, channels=1, latent_size=16, width=8)
    stats = {k: v.clone() for k, v in small.generator.state_dict().items()}
    frames = small.generate(3, torch.Generator().manual_seed(1))
    assert frames.shape == (3, 64, 64, 1) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, small.generate(3, torch.Generator().manual_seed(1)))
    assert small.generator.training  # mode restored; BatchNorm statistics untouched
    torch.testing.assert_close(small.generator.state_dict(), stats, rtol=0, atol=0)


def test_losses_and_gradient_penalty():
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([-1.0, 0.0])
    assert float(critic_loss("wasserstein", real, fake)) == pytest.approx(-3.5)
    assert float(critic_loss("bce", torch.full((2,), 20.0), torch.full((2,), -20.0))) == pytest.approx(0, abs=1e-6)

    weight = torch.full((1, 2, 2), 0.5)  # a linear critic: its gradient is `weight`, of norm 1 (or 3 scaled by 3)
    penalty, norm = gradient_penalty(lambda x: (x * weight).flatten(1).sum(1), torch.rand(4, 1, 2, 2),
                                     torch.rand(4, 1, 2, 2))
    assert float(penalty) == pytest.approx(0, abs=1e-6) and float(norm) == pytest.approx(1)
    penalty, norm = gradient_penalty(lambda x: (3 * x * weight).flatten(1).sum(1), torch.rand(4, 1, 2, 2),
                                     torch.rand(4, 1, 2, 2))
    assert float(penalty) == pytest.approx(4) and float(norm) == pytest.approx(3)


def test_book_recipes_and_overrides():
    assert list(CRITIC_LAYOUTS) == list(BOOK_RECIPES) == list(typing.get_args(GANVariantName))
    with pytest.raises(ValueError, match="unknown GAN variant 'stylegan'; choose one of: dcgan, wgan, wgan_gp"):
        GAN("stylegan")
    assert recipe_for(tiny_config("gan.variant=wgan").gan) == BOOK_RECIPES["wgan"]
    wgan = BOOK_RECIPES["wgan"]
    assert (wgan.loss, wgan.n_critic, wgan.optimizer, wgan.critic_lr, wgan.clip_value) == (
        "wasserstein", 5, "rmsprop", 5e-5, 0.01)
    gp = BOOK_RECIPES["wgan_gp"]
    assert (gp.n_critic, gp.optimizer, gp.critic_lr, gp.gp_weight, gp.clip_value) == (5, "adam", 2e-4, 10.0, None)
    assert (BOOK_RECIPES["dcgan"].critic_lr, BOOK_RECIPES["dcgan"].generator_lr) == (8e-4, 4e-4)
    optimizer = make_optimizer(GAN("wgan_gp", width=8), gp)
    assert [g["lr"] for g in optimizer.param_groups] == [2e-4, 2e-4] and optimizer.defaults["betas"] == (0.5, 0.999)
    custom = recipe_for(tiny_config("gan.variant=dcgan", "gan.n_critic=2", "gan.learning_rate=1e-3",
                                    "gan.gp_weight=1").gan)
    assert (custom.n_critic, custom.critic_lr, custom.generator_lr, custom.gp_weight) == (2, 1e-3, 1e-3, 1.0)
    assert custom.metric_names()[-2:] == ("gradient_penalty", "grad_norm")


@pytest.mark.parametrize("variant", VARIANTS)
def test_critic_learns_to_separate_real_from_fake(variant):
    torch.manual_seed(0)
    gan = GAN(variant, width=8)
    recipe = BOOK_RECIPES[variant]
    updates = GANUpdates(gan, make_optimizer(gan, recipe), recipe)
    generator_before = {k: v.clone() for k, v in gan.generator.named_parameters()}
    real = real_frames()
    steps = [updates.critic_update(real) for _ in range(12)]

    gaps = [float(s["critic_gap"]) for s in steps]  # mean critic(real) - mean critic(fake)
    assert np.mean(gaps[-3:]) > np.mean(gaps[:3]) and min(gaps[-3:]) > 0, gaps
    assert all(torch.equal(p, generator_before[k]) for k, p in gan.generator.named_parameters())
    if variant == "wgan":
        assert max(float(p.detach().abs().max()) for p in gan.critic.parameters()) <= 0.01 + 1e-9
    if variant == "wgan_gp":  # the penalty pulls the critic's gradient norm toward 1
        norms = [float(s["grad_norm"]) for s in steps]
        assert np.mean(np.abs(np.array(norms[-3:]) - 1)) < np.mean(np.abs(np.array(norms[:3]) - 1)), norms
        penalties = [float(s["gradient_penalty"]) for s in steps]
        assert np.mean(penalties[-3:]) < np.mean(penalties[:3]), penalties


@pytest.mark.parametrize("variant", VARIANTS)
def test_generator_update_raises_the_critics_score_of_fakes(variant):
    torch.manual_seed(0)
    gan = GAN(variant, width=8)
    recipe = BOOK_RECIPES[variant]
    updates = GANUpdates(gan, make_optimizer(gan, recipe), recipe)
    for _ in range(3):
        updates.critic_update(real_frames())
    critic_before = {k: v.clone() for k, v in gan.critic.named_parameters()}
    z = gan.sample_latent(16)

    def mean_score() -> float:
        """The critic's mean score of the fakes made from z (critic without dropout)."""
        gan.critic.eval()
        with torch.no_grad():
            score = float(gan.critic(gan.generator(z)).mean())
        gan.critic.train()
        return score

    before = mean_score()
    losses = [float(updates.generator_update(16)["generator_loss"]) for _ in range(3)]
    # Judged on the same z before and after: the losses above are each on fresh noise, so their order is noise.
    assert mean_score() > before and all(np.isfinite(losses))
    assert all(torch.equal(p, critic_before[k]) for k, p in gan.critic.named_parameters())


def read_log(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_train_gan_writes_log_grids_and_resumes_exactly(tmp_path):
    data = tmp_path / "episodes"
    write_synthetic_episodes(data, 2, 20)  # 42 frames: 2 steps of 5 x 4 frames per epoch
    config = tiny_config("gan.variant=wgan_gp", "gan.steps=4", "gan.sample_every=2")
    whole = train_gan(config, data, tmp_path / "whole", progress=False, log_every=1)
    assert (whole.step, whole.epoch) == (4, 1)  # the budget ran out on epoch 1's last batch
    rows = read_log(tmp_path / "whole" / "gan_log.csv")
    assert list(rows[0]) == ["step", "epoch", "critic_loss", "generator_loss", "critic_gap", "gradient_penalty",
                             "grad_norm", "frames_per_s"]
    grids = sorted(p.name for p in (tmp_path / "whole" / "gan_samples").iterdir())
    assert grids == ["step_0000002.png", "step_0000004.png"]
    with Image.open(tmp_path / "whole" / "gan_samples" / "step_0000004.png") as image:
        assert image.size == (8 * 64, 8 * 64) and image.mode == "RGB"

    first = train_gan(tiny_config("gan.variant=wgan_gp", "gan.steps=3", "gan.sample_every=2"), data,
                      tmp_path / "split", progress=False, log_every=1)
    assert first.step == 3 and (tmp_path / "split" / "gan_samples" / "step_0000003.png").exists()
    second = train_gan(config, data, tmp_path / "split", progress=False, log_every=1)
    assert (second.resumed_from, second.step) == (3, 4)
    expected, got = read_checkpoint(tmp_path / "whole" / "gan.pt"), read_checkpoint(tmp_path / "split" / "gan.pt")
    torch.testing.assert_close(got.model, expected.model, rtol=0, atol=0)
    torch.testing.assert_close(got.optimizer["state"], expected.optimizer["state"], rtol=0, atol=0)
    assert read_log(tmp_path / "split" / "gan_log.csv")[-1]["critic_loss"] == rows[-1]["critic_loss"]
    assert train_gan(config, data, tmp_path / "split", progress=False).already_finished

    gan = load_gan(tmp_path / "whole" / "gan.pt")
    assert gan.variant == "wgan_gp" and gan.generate(5).shape == (5, 64, 64, 3)


def test_bad_settings_and_data_give_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="'gan.variant' must be one of 'dcgan', 'wgan', 'wgan_gp'"):
        tiny_config("gan.variant=stylegan")
    with pytest.raises(ConfigError, match="'gan.n_critic' must be > 0"):
        tiny_config("gan.n_critic=0")
    with pytest.raises(ConfigError, match="'gan.clip_value' must be > 0"):
        tiny_config("gan.clip_value=-0.01")
    small = tmp_path / "small"
    write_synthetic_episodes(small, 1, 10)  # 11 frames; a wgan step takes 5 x 4
    with pytest.raises(ValueError, match=r"n_critic x batch_size = 5 x 4 = 20 frames, but .* holds 11"):
        train_gan(tiny_config("gan.variant=wgan"), small, tmp_path / "run", progress=False)
    odd = tmp_path / "odd"
    atomic_write_bytes(episode_path(odd, 0), episode_to_bytes(make_synthetic_episode(0, 5, size=40)))
    with pytest.raises(ValueError, match="the GANs make 64x64 frames; .* holds 40x40 frames"):
        train_gan(tiny_config(), odd, tmp_path / "run", progress=False)


def test_cli_trains_a_dcgan(tmp_path, capsys):
    data = tmp_path / "episodes"
    write_synthetic_episodes(data, 1, 10)
    assert main(["train-gan", "--data", str(data), "--run", str(tmp_path / "run"), "--preset", "carracing-tiny",
                 "--set", "device=cpu", "--set", "gan.variant=dcgan", "--set", "gan.width=8", "--set",
                 "gan.batch_size=4", "--set", "gan.steps=2"]) == 0
    assert "train-gan: trained to step 2" in capsys.readouterr().out
    with Image.open(tmp_path / "run" / "gan_samples" / "step_0000002.png") as image:
        assert image.size == (8 * 64, 8 * 64) and image.mode == "RGB"


def test_a_gan_trained_on_vs_latents_learns_to_redraw_frames_and_renders_dreams(tmp_path):
    data = tmp_path / "episodes"
    write_synthetic_episodes(data, 2, 30)
    save_untrained_checkpoint(tmp_path / "vae.pt", "vae", {"z_size": 8})
    # At 2e-4 for both networks the reconstruction falls at every row (seeds 0-9, to 0.25-0.35x the first row); at
    # the DCGAN recipe's 8e-4 / 4e-4 it falls and then climbs back in most seeds.
    config = tiny_config("gan.variant=dcgan", "gan.latent_source=vae", "gan.steps=40", "gan.sample_every=40",
                         "gan.batch_size=8", "gan.learning_rate=2e-4")
    summary = train_gan(config, data, tmp_path / "run", progress=False, log_every=10, vae_path=tmp_path / "vae.pt")
    assert summary.step == 40
    rows = read_log(tmp_path / "run" / "gan_log.csv")
    assert "reconstruction" in rows[0]
    reconstruction = [float(row["reconstruction"]) for row in rows]  # means over 10 steps each
    assert np.mean(reconstruction[-2:]) < 0.7 * reconstruction[0], reconstruction
    assert read_checkpoint(tmp_path / "run" / "gan.pt").model_args["latent_size"] == 8  # V's z, not gan.latent_size
    render = load_dream_renderer(tmp_path / "run" / "gan.pt", z_size=8)
    frames = render(np.zeros((5, 8), np.float32))
    assert frames.shape == (5, 64, 64, 3) and frames.dtype == np.uint8
    with pytest.raises(ValueError, match="dreams z of size 32"):
        load_dream_renderer(tmp_path / "run" / "gan.pt", z_size=32)
    train_gan(tiny_config("gan.variant=dcgan", "gan.steps=1"), data, tmp_path / "noise", progress=False)
    with pytest.raises(ValueError, match="trained on noise"):
        load_dream_renderer(tmp_path / "noise" / "gan.pt", z_size=8)
    with pytest.raises(FileNotFoundError, match="needs V's checkpoint"):
        train_gan(config, data, tmp_path / "novae", progress=False)
