"""TensorBoard event files: the documented tags of V, M and CMA-ES, each step once across a crash and a resume,
and a failing writer that stops neither training nor the CSV log."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import worldmodels.training
from agents.cmaes import evolve
from agents.evaluators import SerialEvaluator
from rollouts.storage import write_manifest
from worldmodels.config import load_config
from worldmodels.config_schema import CMAESConfig
from worldmodels.run_layout import TENSORBOARD_DIR
from worldmodels.stages import log_episodes
from worldmodels.tensorboard import ScalarLog, event_dir
from worldmodels.train_mdnrnn import train_mdnrnn
from worldmodels.train_vae import train_vae

VAE_TAGS = {f"vae/{name}" for name in ("loss", "reconstruction", "kl", "kl_raw", "frames_per_s", "steps_per_s",
                                       "learning_rate")}
MDNRNN_TAGS = {f"mdnrnn/{name}" for name in ("loss", "z_nll", "reward", "done", "seq_steps_per_s", "steps_per_s",
                                             "learning_rate")}
CMAES_TAGS = {f"cmaes/{name}" for name in ("fitness_best", "fitness_mean", "fitness_worst", "fitness_std", "sigma",
                                           "generations_per_s", "candidates_per_s")}


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag in ``folder``'s event files as TensorBoard reads them: tag -> [(step, value)]."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def steps(series: dict[str, list[tuple[int, float]]]) -> dict[str, list[int]]:
    return {tag: [step for step, _ in points] for tag, points in series.items()}


def vae_config(*overrides: str):
    return load_config("carracing-tiny", ["device=cpu", "vae.buffer_episodes=4", "vae.batch_size=8", *overrides])


def test_a_vae_run_stopped_and_resumed_has_each_step_once(episode_folder, tmp_path, monkeypatch):
    data = episode_folder(4, 7)  # 32 frames: 4 batches of 8 per epoch, 8 steps in 2 epochs
    config = vae_config("vae.epochs=2", "vae.checkpoint_every=2")
    run = tmp_path / "run"
    real_save, saves = worldmodels.training.save_checkpoint, []

    def crash_on_the_third_save(*args, **kwargs):
        saves.append(1)
        if len(saves) == 3:
            raise RuntimeError("stopped")  # at step 6: steps 5 and 6 are logged, the checkpoint holds step 4
        real_save(*args, **kwargs)

    monkeypatch.setattr(worldmodels.training, "save_checkpoint", crash_on_the_third_save)
    with pytest.raises(RuntimeError, match="stopped"):
        train_vae(config, data, run, progress=False, log_every=1)
    stopped = scalars(event_dir(run, "vae"))
    assert set(stopped) == VAE_TAGS
    assert all(tag_steps == [1, 2, 3, 4, 5, 6] for tag_steps in steps(stopped).values())

    monkeypatch.setattr(worldmodels.training, "save_checkpoint", real_save)
    summary = train_vae(config, data, run, progress=False, log_every=1)
    assert (summary.resumed_from, summary.step) == (4, 8)

    resumed = scalars(event_dir(run, "vae"))
    assert set(resumed) == VAE_TAGS
    assert all(tag_steps == list(range(1, 9)) for tag_steps in steps(resumed).values()), steps(resumed)
    with (run / "vae_log.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    csv_losses = [float(row["loss"]) for row in rows]  # written with 6 significant digits
    assert [value for _, value in resumed["vae/loss"]] == pytest.approx(csv_losses, rel=1e-5)
    assert resumed["vae/loss"][:4] == stopped["vae/loss"][:4]  # the checkpointed steps are kept as they were
    assert resumed["vae/learning_rate"][0][1] == pytest.approx(config.vae.learning_rate)
    assert all(value > 0 for _, value in resumed["vae/frames_per_s"] + resumed["vae/steps_per_s"])


def test_mdnrnn_writes_its_tags_under_its_stage(episode_folder, tmp_path):
    config = load_config("carracing-tiny", ["device=cpu", "vae.z_size=8", "mdnrnn.hidden_size=16",
                                            "mdnrnn.seq_len=10", "mdnrnn.batch_size=4", "mdnrnn.steps=6"])
    train_mdnrnn(config, episode_folder(2, 12, latents_z=8), tmp_path, progress=False, log_every=2)
    series = scalars(tmp_path / TENSORBOARD_DIR / "mdnrnn")
    assert set(series) == MDNRNN_TAGS
    assert all(tag_steps == [2, 4, 6] for tag_steps in steps(series).values())


class QuadraticWorker:
    """Synthetic rollouts: return -||w - 0.3||^2."""

    def run(self, params: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return -np.sum((params - 0.3) ** 2, axis=1)  # (N,) for params (N, D)


def test_cmaes_generations_continue_across_a_resume(tmp_path):
    settings = CMAESConfig(popsize=6, rollouts=2, sigma0=0.3, generations=6, seed=1, eval_every=2, eval_episodes=2)
    out = tmp_path / "run" / "controller"
    evolve(SerialEvaluator(QuadraticWorker), 4, settings, out, stop_after=3)
    evolve(SerialEvaluator(QuadraticWorker), 4, settings, out)

    series = scalars(tmp_path / "run" / TENSORBOARD_DIR / "controller")
    assert set(series) == CMAES_TAGS | {"cmaes/mean_solution_return_train"}
    assert all(steps(series)[tag] == [0, 1, 2, 3, 4, 5] for tag in CMAES_TAGS)
    assert steps(series)["cmaes/mean_solution_return_train"] == [1, 3, 5]
    with (out / "log.csv").open(newline="") as file:
        mean_fitness = [float(row["mean_fitness"]) for row in csv.DictReader(file)]
    assert [value for _, value in series["cmaes/fitness_mean"]] == pytest.approx(mean_fitness)


def test_a_restarted_log_hides_every_tag_from_its_first_step_on(tmp_path):
    with ScalarLog(tmp_path, "stage", first_step=0) as log:
        for step in range(5):
            log.write(step, {"a": step, "b": step})
    with ScalarLog(tmp_path, "stage", first_step=3) as log:  # b is not written again: only the purge removes it
        for step in range(3, 6):
            log.write(step, {"a": 10 * step})
    series = scalars(tmp_path)
    assert series["stage/a"] == [(0, 0), (1, 1), (2, 2), (3, 30), (4, 40), (5, 50)]
    assert series["stage/b"] == [(0, 0), (1, 1), (2, 2)]


def test_a_failing_writer_stops_neither_training_nor_the_csv_log(episode_folder, tmp_path, monkeypatch, caplog):
    from torch.utils.tensorboard import SummaryWriter

    real_add_scalar, calls = SummaryWriter.add_scalar, []

    def disk_full_after_ten_scalars(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 10:
            raise OSError(28, "No space left on device")
        real_add_scalar(self, *args, **kwargs)

    monkeypatch.setattr(SummaryWriter, "add_scalar", disk_full_after_ten_scalars)
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="worldmodels.tensorboard"):
        summary = train_vae(vae_config("vae.epochs=1"), episode_folder(4, 7), run, progress=False, log_every=1)
    assert summary.step == 4
    with (run / "vae_log.csv").open(newline="") as file:
        assert [row["step"] for row in csv.DictReader(file)] == ["1", "2", "3", "4"]
    assert len([r for r in caplog.records if "No space left" in r.getMessage()]) == 1
    written = steps(scalars(event_dir(run, "vae")))  # 7 scalars a row: the 11th, step 2's kl_raw, failed
    assert (written["vae/loss"], written["vae/kl_raw"]) == ([1, 2], [1])


def test_a_folder_that_cannot_be_made_is_warned_of_and_skipped(tmp_path, caplog):
    (tmp_path / "blocked").write_text("a file where the folder would go")
    with caplog.at_level(logging.WARNING, logger="worldmodels.tensorboard"), \
            ScalarLog(tmp_path / "blocked" / "vae", "vae", first_step=1) as log:
        log.write(1, {"loss": 1.0})
        log.write(2, {"loss": 0.5})
    assert len(caplog.records) == 1 and "could not open" in caplog.records[0].getMessage()


def test_collected_episodes_are_logged_once_each_when_the_collection_grows(tmp_path):
    episodes = tmp_path / "run" / "episodes"
    episodes.mkdir(parents=True)

    def entry(index: int) -> dict:
        return {"index": index, "return": 10.0 * index, "length": 100 + index, "env_id": "test", "file": f"{index}"}

    write_manifest(episodes, [entry(i) for i in range(3)])
    log_episodes(episodes)
    write_manifest(episodes, [entry(i) for i in range(5)])  # a resumed or extended collection
    log_episodes(episodes)
    series = scalars(event_dir(tmp_path / "run", "collect"))
    assert series["collect/episodic_return"] == [(i, 10.0 * i) for i in range(5)]
    assert series["collect/episode_length"] == [(i, 100.0 + i) for i in range(5)]
