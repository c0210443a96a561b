"""The run folder: the names of the files and folders the stages write into RUN, in one place.

This module imports nothing but the standard library, so the command line can build its help from it without
loading torch or Ray. The episodes' own files (``*.npz``, ``*.latents.npz``, ``manifest.json``) are the storage
format of ``rollouts.storage``, whichever folder holds them.

    RUN/config.yaml            the merged configuration of the run (also RUN/iterations/k/ and RUN/sweep/)
    RUN/episodes/              the run's own episodes (``worldmodels run`` collects into it), with the
                               collect_config.yaml that gathered them
    RUN/vae.pt, vae_log.csv    V's checkpoint and loss log (``worldmodels.train_vae``),
    RUN/vae_reconstructions.png  and a row of frames above V's reconstructions
    RUN/mdnrnn.pt, mdnrnn_log.csv  M's checkpoint and loss log (``worldmodels.train_mdnrnn``)
    RUN/mdnrnn_members/k/      member k >= 1 of an ensemble of Ms (``mdnrnn.members``): its mdnrnn.pt,
                               mdnrnn_log.csv and tensorboard/, as train-mdnrnn writes them into a folder of their own
    RUN/controller/            CMA-ES (``agents.cmaes``): mean.npy (the controller to deploy), best.npy,
                               log.csv, eval.csv and the search state cmaes_state.npz
    RUN/evaluation.json        the mean solution's real-env score (``agents.evaluation.EvaluationReport``)
    RUN/summary.json           what ``worldmodels run`` did: score, steps, stages, hardware
    RUN/episode.gif            the mean solution's first evaluation episode
    RUN/worst_episodes/        its lowest-return evaluation episodes as GIFs (``evaluate --gif-worst N``)
    RUN/dream.gif              the same controller's dream beside a real episode
    RUN/*_curves.png           learning curves of V, M and C, and the mean solution's evaluations (per generation,
                               and its real return per real env step: real_steps_curve.png)
    RUN/tensorboard/<stage>/   TensorBoard event files of each stage (``worldmodels.tensorboard``)
    RUN/iterations/k/          round k >= 2 of ``worldmodels iterate``: a run folder of its own
    RUN/sweep/tau_T/, RUN/temperature_sweep.{json,md}  the dream-temperature sweep
    RUN/calibration.{md,json,png}  M's dream returns against the real ones
    RUN/calibration_trust.json  their summary and verdict: can the dream be trusted? (also before ``run`` evolves
                               C in the dream)
    RUN/baselines/             stable-baselines3 agents
    RUN/cnn.pt, gan.pt, cyclegan.pt, char_lstm.pt, music_lstm.pt, musegan.pt  the component models, each with
                               its *_log.csv (train-cnn also cnn_eval.csv; train-text text_samples.csv), the
                               GANs' sample grids in gan_samples/ and cyclegan_samples/, the music's parsed
                               corpus music_corpus.npz
"""

from __future__ import annotations

from pathlib import Path

CONFIG_NAME = "config.yaml"
"""The merged configuration saved in a run folder (and in a round's or a sweep's folder)."""
TENSORBOARD_DIR = "tensorboard"
"""Where a run keeps its TensorBoard event files, a folder per stage (``worldmodels.tensorboard``)."""
EPISODES_DIR = "episodes"
"""Where a run keeps its own episodes."""
COLLECT_CONFIG_NAME = "collect_config.yaml"
"""The config that gathered a folder's episodes, saved beside them (``worldmodels.stages.collect_stage``)."""

VAE_CHECKPOINT_NAME = "vae.pt"
"""V's training checkpoint (``worldmodels.checkpoint``), resumed when present."""
VAE_LOG_NAME = "vae_log.csv"
"""V's losses, one row per ``log_every`` steps (``worldmodels.train_vae``)."""
VAE_RECONSTRUCTIONS_NAME = "vae_reconstructions.png"
"""A row of stored frames above V's reconstructions of them."""
MDNRNN_CHECKPOINT_NAME = "mdnrnn.pt"
"""M's training checkpoint, resumed when present."""
MDNRNN_LOG_NAME = "mdnrnn_log.csv"
"""M's losses, one row per ``log_every`` steps (``worldmodels.train_mdnrnn``)."""
MDNRNN_MEMBERS_DIR = "mdnrnn_members"
"""Where an ensemble's members k >= 1 are trained, each in ``MDNRNN_MEMBERS_DIR/k`` (:func:`mdnrnn_member_dir`)."""

CONTROLLER_DIR = "controller"
"""Where a run folder keeps its evolved controller and the CMA-ES files (``agents.cmaes``)."""
MEAN_PARAMS_NAME = "mean.npy"
"""The CMA-ES distribution mean, the controller to deploy (in ``CONTROLLER_DIR``)."""
BEST_PARAMS_NAME = "best.npy"
"""The best candidate CMA-ES has sampled (in ``CONTROLLER_DIR``)."""
CMAES_LOG_NAME = "log.csv"
"""Fitness per generation (in ``CONTROLLER_DIR``; columns ``agents.cmaes.LOG_COLUMNS``)."""
CMAES_EVAL_NAME = "eval.csv"
"""The mean solution's evaluations (in ``CONTROLLER_DIR``; columns ``agents.cmaes.EVAL_COLUMNS``)."""
CMAES_STATE_NAME = "cmaes_state.npz"
"""What resumes the search exactly (in ``CONTROLLER_DIR``)."""
CMAES_LEGACY_STATE_NAME = "cmaes_state.pkl"
"""Older versions pickled pycma's strategy here; such a run folder is refused, never unpickled."""

EVALUATION_NAME = "evaluation.json"
"""The mean solution's real-env evaluation."""
SUMMARY_NAME = "summary.json"
"""What a ``worldmodels run`` call did."""
EPISODE_GIF_NAME = "episode.gif"
"""The mean solution's first evaluation episode, as the controller saw it."""
WORST_EPISODES_DIR = "worst_episodes"
"""The mean solution's N lowest-return evaluation episodes, worst_<rank>_seed_<seed>.gif (``evaluate --gif-worst``)."""
DREAM_GIF_NAME = "dream.gif"
"""The mean solution's real episode (left) beside its dream from the same first frame (right)."""
VAE_CURVES_NAME = "vae_curves.png"
MDNRNN_CURVES_NAME = "mdnrnn_curves.png"
CONTROLLER_CURVES_NAME = "controller_curves.png"
EVALUATION_CURVES_NAME = "evaluation_curves.png"
"""Learning curves: V's and M's losses per step, CMA-ES fitness and the mean solution's returns per generation."""
REAL_STEPS_CURVE_NAME = "real_steps_curve.png"
"""The mean solution's real-env return against the real-env steps the search had taken (eval.csv's
``env_steps_total``)."""

ITERATIONS_DIR = "iterations"
"""Where ``worldmodels iterate`` keeps round k >= 2, in ``ITERATIONS_DIR/k`` (``agents.iterations``)."""
SWEEP_DIR = "sweep"
"""Where the temperature sweep evolves one controller per temperature, in ``SWEEP_DIR/tau_T``."""
SWEEP_DREAM_SCORE_NAME = "dream_score.json"
"""A sweep temperature's mean solution scored in the dream at that tau, in ``SWEEP_DIR/tau_T`` (EvaluationReport)."""
SWEEP_REAL_SCORE_NAME = "real_score.json"
"""The same controller scored in the real env, beside it."""
TEMPERATURE_SWEEP_STEM = "temperature_sweep"
"""The sweep's table, ``.json`` and ``.md`` (``agents.temperature_sweep``)."""
CALIBRATION_STEM = "calibration"
"""M's calibration, ``.json`` and ``.png`` (``agents.calibration``)."""
CALIBRATION_TRUST_NAME = "calibration_trust.json"
"""The calibration's rank correlation, largest dream - real gap and verdict (``agents.dream_trust``)."""
BASELINES_DIR = "baselines"
"""Where stable-baselines3 agents are saved (``agents.sb3``)."""

CNN_CHECKPOINT_NAME = "cnn.pt"
CNN_LOG_NAME = "cnn_log.csv"
CNN_EVAL_LOG_NAME = "cnn_eval.csv"
"""train-cnn: the frame model, its training losses, its held-out scores per epoch."""
GAN_CHECKPOINT_NAME = "gan.pt"
GAN_LOG_NAME = "gan_log.csv"
GAN_SAMPLES_DIR = "gan_samples"
"""train-gan: the GAN, its losses, its sample grids (:func:`sample_grid_path`)."""
CYCLEGAN_CHECKPOINT_NAME = "cyclegan.pt"
CYCLEGAN_LOG_NAME = "cyclegan_log.csv"
CYCLEGAN_SAMPLES_DIR = "cyclegan_samples"
"""train-cyclegan: the CycleGAN, its losses, its translation grids (:func:`sample_grid_path`)."""
CHAR_LSTM_CHECKPOINT_NAME = "char_lstm.pt"
TEXT_LOG_NAME = "text_log.csv"
TEXT_SAMPLES_NAME = "text_samples.csv"
"""train-text: the character LSTM, its losses, the text it wrote."""
MUSIC_LSTM_CHECKPOINT_NAME = "music_lstm.pt"
MUSIC_LSTM_LOG_NAME = "music_lstm_log.csv"
MUSEGAN_CHECKPOINT_NAME = "musegan.pt"
MUSEGAN_LOG_NAME = "musegan_log.csv"
MUSIC_CORPUS_NAME = "music_corpus.npz"
"""music train: the two models and their losses, and the parsed music they read (``worldmodels.music.data``)."""


def sample_grid_path(run_dir: Path, samples_dir: str, step: int) -> Path:
    """Where a GAN's grid of ``step`` goes: ``RUN/<samples_dir>/step_NNNNNNN.png``."""
    return run_dir / samples_dir / f"step_{step:07d}.png"


def mdnrnn_member_dir(run_dir: Path, member: int) -> Path:
    """The folder member ``member`` of M's ensemble is trained in (its mdnrnn.pt, mdnrnn_log.csv and tensorboard/):
    RUN itself for member 0, ``RUN/mdnrnn_members/<member>`` for member >= 1."""
    if member < 0:
        raise ValueError(f"M's members are numbered from 0, got {member}")
    return run_dir if member == 0 else run_dir / MDNRNN_MEMBERS_DIR / str(member)


def mdnrnn_member_checkpoints(run_dir: Path, count: int | None = None) -> list[Path]:
    """The checkpoints of members 0..count-1 of a run's M (``mdnrnn.pt`` in each :func:`mdnrnn_member_dir`); with
    ``count`` None, member 0's and every later member's that exists, in a row (up to the first missing one).

    :raises FileNotFoundError: one of the ``count`` members has no checkpoint, naming the command that trains it.
    """
    paths: list[Path] = []
    while count is None or len(paths) < count:
        path = mdnrnn_member_dir(run_dir, len(paths)) / MDNRNN_CHECKPOINT_NAME
        if not path.is_file():
            if count is None and paths:
                break
            wanted = len(paths) + 1 if count is None else count
            raise FileNotFoundError(f"{path} does not exist: train M's members with `worldmodels train-mdnrnn --run "
                                    f"{run_dir} --set mdnrnn.members={wanted}` (or dream with fewer: dream.members)")
        paths.append(path)
    return paths
