"""Stage ``train-gan``: a GAN trained on every stored frame, streamed from disk, with sample grids as it goes.

A training step is one generator update after ``n_critic`` critic updates, each critic update on its own batch
of real frames (the loader's batches hold n_critic * batch_size frames; an epoch's incomplete last batch is
dropped). Steps run through the shared loop (:func:`worldmodels.training.run_training`). Writes into the run
folder:

    gan.pt                         the latest checkpoint (kind "gan": generator, critic and their optimiser),
                                   resumed when present
    gan_log.csv                    step, epoch, critic_loss, generator_loss, critic_gap (mean critic score of real
                                   minus fake frames), with a penalty gradient_penalty and grad_norm, frames_per_s;
                                   critic metrics are means over the step's critic updates
    gan_samples/step_NNNNNNN.png   8 x 8 generated frames, always from the same noise, every ``sample_every``
                                   steps and at the end
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from rollouts.datasets import FrameDataset
from rollouts.storage import list_episode_files, read_arrays
from worldmodels.checkpoint import load_vae, model_args_of, read_checkpoint, vae_identity
from worldmodels.components.gan import FRAME_SIZE, GAN, to_unit_range
from worldmodels.components.gan_updates import GANUpdates, make_optimizer, recipe_for
from worldmodels.config_schema import Config
from worldmodels.device import resolve_device
from worldmodels.pictures import write_image_grid
from worldmodels.run_layout import (
    GAN_CHECKPOINT_NAME,
    GAN_LOG_NAME,
    GAN_SAMPLES_DIR,
    VAE_CHECKPOINT_NAME,
    sample_grid_path,
)
from worldmodels.training import TrainingPlan, TrainSummary, run_training
from worldmodels.vae import ConvVAE

GRID_SIDE = 8


def gan_config_args(config: Config) -> dict[str, Any]:
    """The GAN's constructor arguments the config decides, by setting (:func:`worldmodels.checkpoint.model_args_of`);
    the data decides ``channels``, and with ``gan.latent_source`` "vae" V decides ``latent_size``."""
    cfg = config.gan
    settings: dict[str, Any] = {"gan.variant": cfg.variant, "gan.width": cfg.width}
    if cfg.latent_source == "noise":
        settings["gan.latent_size"] = cfg.latent_size
    return settings


def train_gan(
    config: Config,
    data_dir: str | Path,
    run_dir: str | Path,
    progress: bool = True,
    log_every: int = 10,
    seed: int = 0,
    vae_path: str | Path | None = None,
) -> TrainSummary:
    """Train ``config.gan.variant`` on the frames in ``data_dir`` for ``config.gan.steps`` generator updates,
    resuming ``run_dir/gan.pt``.

    :param log_every: steps per row of ``gan_log.csv``.
    :param seed: seeds the initialisation, the noise, the data order and the sample grids' fixed noise.
    :param vae_path: V whose latents the generator reads with ``gan.latent_source`` "vae" (default
        ``run_dir/vae.pt``); its z of each real frame (sampled from the posterior) replaces the noise, and the
        generator is also scored on redrawing that frame. V's identity (:func:`worldmodels.checkpoint.vae_identity`)
        is stored in the checkpoint, so a dream drawn by this GAN checks it is V's.
    :raises ValueError: the frames are not 64x64, the data set holds fewer frames than one step takes, or
        ``run_dir/gan.pt`` was trained on another V's latents.
    """
    cfg = config.gan
    device = resolve_device(config.device)
    run_dir = Path(run_dir)
    files = list_episode_files(data_dir)
    sample = read_arrays(files[0], ("observations",))["observations"]  # (T+1, H, W, C) uint8
    if sample.shape[1:3] != (FRAME_SIZE, FRAME_SIZE):
        raise ValueError(f"the GANs make {FRAME_SIZE}x{FRAME_SIZE} frames; {files[0]} holds "
                         f"{sample.shape[1]}x{sample.shape[2]} frames")
    recipe = recipe_for(cfg)
    dataset = FrameDataset(files, shuffle=True, buffer_episodes=cfg.buffer_episodes, seed=seed)
    frames_per_step = recipe.n_critic * cfg.batch_size
    if len(dataset) < frames_per_step:
        raise ValueError(f"a {cfg.variant} step takes n_critic x batch_size = {recipe.n_critic} x {cfg.batch_size} = "
                         f"{frames_per_step} frames, but {data_dir} holds {len(dataset)}; lower gan.batch_size or "
                         "gan.n_critic, or gather more episodes")
    loader = DataLoader(dataset, batch_size=frames_per_step, drop_last=True, num_workers=cfg.loader_workers,
                        pin_memory=device.type == "cuda", generator=torch.Generator())
    vae_path = vae_path or run_dir / VAE_CHECKPOINT_NAME
    vae = _latent_source_vae(cfg.latent_source, vae_path, int(sample.shape[3]), device)
    identity = None if vae is None else vae_identity(vae_path)
    torch.manual_seed(seed)
    model_args = {**model_args_of(gan_config_args(config)), "channels": int(sample.shape[3])}
    if vae is not None:
        model_args["latent_size"] = vae.z_size
    model = GAN(**model_args).to(device)
    optimizer = make_optimizer(model, recipe)
    updates = GANUpdates(model, optimizer, recipe)
    checkpoint_path = run_dir / GAN_CHECKPOINT_NAME
    # The step count decides when grids are due; run_training restores everything else from the same file.
    earlier = read_checkpoint(checkpoint_path, kind="gan") if checkpoint_path.exists() else None
    step_count = 0 if earlier is None else earlier.step
    if earlier is not None and identity is not None and earlier.vae_identity not in (None, identity):
        raise ValueError(f"{checkpoint_path} was trained on the latents of V {earlier.vae_identity}, but {vae_path} is "
                         f"V {identity}: resume it with that V (--vae), or train this one into a new --run folder")

    def step(frames: torch.Tensor) -> tuple[dict[str, torch.Tensor], int]:
        nonlocal step_count
        frames = frames.to(device, non_blocking=True)  # (n_critic * B, C, 64, 64) uint8
        real = to_unit_range(frames)  # in [-1, 1]
        if vae is None:
            critic = [updates.critic_update(batch) for batch in real.split(cfg.batch_size)]
            metrics = {name: torch.stack([m[name] for m in critic]).mean() for name in critic[0]}
            metrics.update(updates.generator_update(cfg.batch_size))
        else:
            with torch.no_grad():
                latent = ConvVAE.sample_latent(*vae.encode(frames.float() / 255))  # (n_critic * B, Z)
            pairs = list(zip(real.split(cfg.batch_size), latent.split(cfg.batch_size)))
            critic = [updates.critic_update(batch, z) for batch, z in pairs]
            metrics = {name: torch.stack([m[name] for m in critic]).mean() for name in critic[0]}
            metrics.update(updates.generator_update(cfg.batch_size, latent=pairs[-1][1], target=pairs[-1][0]))
        step_count += 1
        if step_count % cfg.sample_every == 0:
            save_sample_grid(model, sample_grid_path(run_dir, GAN_SAMPLES_DIR, step_count), seed)
        return metrics, real.shape[0]

    plan = TrainingPlan(
        stage="gan",
        checkpoint_path=checkpoint_path,
        log_path=run_dir / GAN_LOG_NAME,
        metric_names=recipe.metric_names(),
        rate_name="frames_per_s",
        checkpoint_every=cfg.checkpoint_every,
        log_every=log_every,
        max_steps=cfg.steps,
        steps_per_epoch=len(dataset) // frames_per_step,
        vae_identity=identity,
    )
    summary = run_training(plan, model, optimizer, model_args, dataclasses.asdict(cfg), dataset, loader, step,
                           progress)
    if not summary.already_finished and summary.step % cfg.sample_every:
        save_sample_grid(model, sample_grid_path(run_dir, GAN_SAMPLES_DIR, summary.step), seed)
    return summary


def _latent_source_vae(source: str, path: Path, channels: int, device: torch.device) -> ConvVAE | None:
    """V (eval mode, on ``device``) for latent_source "vae"; None for "noise".

    :raises FileNotFoundError: there is no V at ``path``.
    :raises ValueError: V reads frames of another channel count than the data's.
    """
    if source == "noise":
        return None
    if not Path(path).is_file():
        raise FileNotFoundError(f"gan.latent_source 'vae' needs V's checkpoint, and {path} does not exist: pass "
                                "--vae RUN/vae.pt (from `worldmodels train-vae`), or set gan.latent_source=noise")
    vae = load_vae(path, device).eval()
    if vae.in_channels != channels:
        raise ValueError(f"V at {path} reads {vae.in_channels}-channel frames but the data's frames have {channels}")
    return vae


def save_sample_grid(model: GAN, path: str | Path, seed: int, side: int = GRID_SIDE) -> None:
    """Write ``side`` x ``side`` frames of ``model``'s generator, from noise seeded with ``seed`` (the same every
    time, so grids of different steps compare), as one PNG (side * 64 pixels square), atomically.

    torch's global RNG is not used, so writing a grid does not change the training run.
    """
    device = next(model.parameters()).device
    frames = model.generate(side * side, torch.Generator(device=device).manual_seed(seed))  # (N, 64, 64, C)
    write_image_grid(path, frames.reshape(side, side, *frames.shape[1:]))  # (side, side, 64, 64, C)
