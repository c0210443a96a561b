"""CycleGAN components: network shapes, the image pool, the cycle loss falling on tiny data, train-cyclegan (log,
grids, resume, shape errors, CLI), the translating observation wrapper on CarRacing and env.translator."""

import csv
import dataclasses
import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from PIL import Image

import envs  # noqa: F401  (registers the worldmodels/ ids)
from rollouts.atomic import atomic_write_bytes
from rollouts.storage import episode_path, episode_to_bytes
from rollouts.synthetic import make_synthetic_episode, write_synthetic_episodes
from worldmodels.checkpoint import CheckpointError, load_cyclegan, save_untrained_checkpoint
from worldmodels.cli import main
from worldmodels.components.cyclegan import CycleGAN, PatchDiscriminator, ResNetGenerator, UNetGenerator
from worldmodels.components.cyclegan_updates import CycleGANUpdates, CycleGANWeights, ImagePool, make_optimizer
from worldmodels.components.gan import to_unit_range
from worldmodels.components.train_cyclegan import train_cyclegan
from worldmodels.components.translator import CycleGANTranslator
from worldmodels.config import ConfigError, load_config
from worldmodels.real_rollouts import RealEnvWorkerSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(*overrides: str):
    return load_config("carracing-tiny", ["device=cpu", "cyclegan.width=4", "cyclegan.batch_size=2",
                                          "cyclegan.pool_size=4", *overrides])


def write_domains(root, count: int = 2, steps: int = 9):
    """Folders A (synthetic frames) and B (the same kind of frames, colours inverted), count episodes each."""
    folder_a, folder_b = root / "a", root / "b"
    write_synthetic_episodes(folder_a, count, steps)
    for index in range(count):
        episode = make_synthetic_episode(index, steps, seed=1)
        inverted = dataclasses.replace(episode, observations=255 - episode.observations)
        atomic_write_bytes(episode_path(folder_b, index), episode_to_bytes(inverted))
    return folder_a, folder_b


def test_network_shapes():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    for generator in (UNetGenerator(width=4), ResNetGenerator(width=4, blocks=2)):
        y = generator(x)
        assert y.shape == (2, 3, 64, 64) and y.min() >= -1 and y.max() <= 1
    assert PatchDiscriminator(width=4)(x).shape == (2, 1, 8, 8)
    assert UNetGenerator(channels=1, width=4)(x[:, :1]).shape == (2, 1, 64, 64)
    resnet = CycleGAN("resnet", width=4, resnet_blocks=2)
    assert sum(isinstance(m, torch.nn.ReflectionPad2d) for m in resnet.generator_ab.modules()) == 2 + 2 * 2
    with pytest.raises(ValueError, match="unknown CycleGAN generator 'vgg'; choose one of: unet, resnet"):
        CycleGAN("vgg")
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    assert resnet.translate(frames, "ba").shape == (3, 64, 64, 3)
    with pytest.raises(ValueError, match=r"translate takes \(N, 64, 64, 3\) uint8 frames"):
        resnet.translate(frames[0], "ab")


def test_image_pool_caps_its_size_and_keeps_shapes():
    torch.manual_seed(0)
    pool = ImagePool(3)
    first = torch.rand(2, 3, 8, 8, requires_grad=True)
    out = pool.query(first)
    assert torch.equal(out, first.detach()) and not out.requires_grad  # not full yet: returned as given
    batches = [torch.rand(4, 3, 8, 8) for _ in range(10)]
    outs = [pool.query(batch) for batch in batches]
    assert len(pool.frames) == 3 and all(o.shape == (4, 3, 8, 8) for o in outs)
    swapped = sum(not torch.equal(o[i], b[i]) for o, b in zip(outs, batches) for i in range(4))
    assert 0 < swapped < 40  # about half the frames come from the pool once it is full
    assert torch.equal(ImagePool(0).query(batches[0]), batches[0])


@pytest.mark.parametrize("generator", ["unet", "resnet"])
def test_cycle_loss_falls(generator):
    torch.manual_seed(0)
    model = CycleGAN(generator, width=4, resnet_blocks=1)
    updates = CycleGANUpdates(model, make_optimizer(model), CycleGANWeights(), pool_size=4)
    frames = torch.from_numpy(make_synthetic_episode(0, 7).observations).permute(0, 3, 1, 2)  # (8, 3, 64, 64)
    real_a, real_b = to_unit_range(frames[:4]), to_unit_range(255 - frames[4:])
    cycles = [float(updates.step(real_a, real_b)["cycle_loss"]) for _ in range(12)]  # at the book's Adam 2e-4
    # Seeds 0-7: the last three at 0.92-0.94x (U-Net) and 0.84-0.90x (ResNet) the first, falling at every step.
    assert np.mean(cycles[-3:]) < 0.95 * cycles[0], cycles
    assert sum(later < earlier for earlier, later in itertools.pairwise(cycles)) >= 9, cycles


def read_log(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_train_cyclegan_logs_grids_resumes_and_refuses_other_shapes(tmp_path):
    data_a, data_b = write_domains(tmp_path)  # 20 frames each: 10 steps per epoch
    run = tmp_path / "run"
    first = train_cyclegan(tiny_config("cyclegan.steps=2", "cyclegan.sample_every=2"), data_a, data_b, run,
                           progress=False, log_every=1)
    assert (first.step, first.resumed_from) == (2, 0)
    second = train_cyclegan(tiny_config("cyclegan.steps=3", "cyclegan.sample_every=2"), data_a, data_b, run,
                            progress=False, log_every=1)
    assert (second.resumed_from, second.step) == (2, 3)
    rows = read_log(run / "cyclegan_log.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert list(rows[0]) == ["step", "epoch", "generator_loss", "validity_loss", "cycle_loss", "identity_loss",
                             "discriminator_loss", "frames_per_s"]
    assert sorted(p.name for p in (run / "cyclegan_samples").iterdir()) == ["step_0000002.png", "step_0000003.png"]
    with Image.open(run / "cyclegan_samples" / "step_0000003.png") as image:
        assert image.size == (8 * 64, 6 * 64) and image.mode == "RGB"
    model = load_cyclegan(run / "cyclegan.pt")
    assert model.generator_name == "unet" and model.translate(np.zeros((1, 64, 64, 3), np.uint8), "ba").shape == (
        1, 64, 64, 3)

    with pytest.raises(CheckpointError, match=r"does not fit the CycleGAN .* is \(4, 3, 4, 4\) in the file but "
                                              r"\(8, 3, 4, 4\) in the model"):
        train_cyclegan(tiny_config("cyclegan.steps=4", "cyclegan.width=8"), data_a, data_b, run, progress=False)


def test_bad_settings_and_data_give_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="'cyclegan.generator' must be one of 'unet', 'resnet'"):
        tiny_config("cyclegan.generator=vgg")
    data_a, _ = write_domains(tmp_path, count=1, steps=3)
    odd = tmp_path / "odd"
    atomic_write_bytes(episode_path(odd, 0), episode_to_bytes(make_synthetic_episode(0, 5, size=40)))
    with pytest.raises(ValueError, match="the CycleGAN translates 64x64 frames; .* holds 40x40 frames"):
        train_cyclegan(tiny_config(), data_a, odd, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="holds 4 frames, fewer than cyclegan.batch_size = 8"):
        train_cyclegan(tiny_config("cyclegan.batch_size=8"), data_a, data_a, tmp_path / "run", progress=False)


def test_cli_trains_and_refuses_a_changed_width(tmp_path, capsys):
    data_a, data_b = write_domains(tmp_path, count=1, steps=5)
    args = ["train-cyclegan", "--data-a", str(data_a), "--data-b", str(data_b), "--run", str(tmp_path / "run"),
            "--preset", "carracing-tiny", "--set", "device=cpu", "--set", "cyclegan.batch_size=2", "--set",
            "cyclegan.steps=1"]
    assert main([*args, "--set", "cyclegan.width=4"]) == 0
    assert "train-cyclegan: trained to step 1" in capsys.readouterr().out
    assert main([*args, "--set", "cyclegan.width=8"]) == 2
    assert "cyclegan.width=4 (now 8)" in capsys.readouterr().err


def test_translator_wraps_randomised_carracing():
    env = gym.make("worldmodels/CarRacing-v0", max_episode_steps=5, domain_randomize=True)
    torch.manual_seed(0)
    wrapped = CycleGANTranslator(env, CycleGAN("unet", width=4))
    frame = np.full((64, 64, 3), 7, np.uint8)
    out = wrapped.observation(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
    check_env(wrapped, skip_render_check=True)
    obs, _ = wrapped.reset(seed=3)
    obs, *_ = wrapped.step(wrapped.action_space.sample())
    assert wrapped.observation_space.contains(obs)
    wrapped.close()
    with pytest.raises(ValueError, match=r"needs Box\(0, 255, \(64, 64, 1\), uint8\) observations"):
        CycleGANTranslator(gym.make("worldmodels/CarRacing-v0"), CycleGAN("unet", channels=1, width=4))


def test_env_translator_setting_wraps_the_real_env_workers_envs(tmp_path):
    save_untrained_checkpoint(tmp_path / "vae.pt", "vae", {"z_size": 8})
    save_untrained_checkpoint(tmp_path / "mdnrnn.pt", "mdnrnn", {"z_size": 8, "action_size": 3, "hidden_size": 16})
    randomised = ["env.max_episode_steps=3", "env.options={domain_randomize: true}"]
    with pytest.raises(FileNotFoundError, match="env.translator .*missing.pt does not exist"):
        RealEnvWorkerSpec.for_run(tiny_config(*randomised, f"env.translator={tmp_path / 'missing.pt'}"), tmp_path)
    save_untrained_checkpoint(tmp_path / "cyclegan.pt", "cyclegan", {"width": 4})
    config = tiny_config(*randomised, f"env.translator={tmp_path / 'cyclegan.pt'}")
    worker = RealEnvWorkerSpec.for_run(config, tmp_path, num_envs=1)()
    assert isinstance(worker.envs[0], CycleGANTranslator)
    assert worker.run(np.zeros((1, worker.num_params), np.float32), np.array([0])).shape == (1,)
    worker.close()
