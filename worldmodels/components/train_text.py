"""Stage ``train-text``: Chollet's character LSTM trained on a text file, with sample lines as it goes.

The text (UTF-8) is lower-cased when ``text.lowercase`` is set, and cut into windows of ``text.maxlen`` characters
starting every ``text.window_step`` characters, each labelled with the character after it; an epoch visits every
window once, in an order drawn from (seed, epoch). Steps run through the shared loop
(:func:`worldmodels.training.run_training`: checkpoints, exact resume). Writes into the run folder:

    char_lstm.pt       the latest checkpoint (kind "char_lstm": the model, its vocabulary and default seed text,
                       RMSprop's state), resumed when present
    text_log.csv       step, epoch, loss (cross-entropy of the next character, nats per character), windows_per_s
    text_samples.csv   step, temperature, sample: ``text.sample_length`` characters generated after the text's first
                       window every ``text.sample_every`` steps and at the end, from a generator seeded by the step
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from worldmodels.checkpoint import model_args_of, read_checkpoint
from worldmodels.components.char_lstm import CharLSTM, build_vocabulary
from worldmodels.config_schema import Config, TextConfig
from worldmodels.device import resolve_device
from worldmodels.run_layout import CHAR_LSTM_CHECKPOINT_NAME, TEXT_LOG_NAME, TEXT_SAMPLES_NAME
from worldmodels.training import MetricsLog, TrainingPlan, TrainSummary, run_training

SAMPLE_COLUMNS = ("step", "temperature", "sample")
RMSPROP_RHO = 0.9
"""Keras' RMSprop decay (torch's ``alpha``; torch's own default is 0.99)."""
RMSPROP_EPS = 1e-7
"""Keras' RMSprop epsilon."""


def char_lstm_config_args(config: Config) -> dict[str, Any]:
    """The character LSTM's constructor arguments the config decides, by setting
    (:func:`worldmodels.checkpoint.model_args_of`); the text decides ``vocabulary`` and ``seed_text``."""
    cfg = config.text
    return {"text.hidden_size": cfg.hidden_size, "text.maxlen": cfg.maxlen, "text.lowercase": cfg.lowercase}


def read_training_text(path: str | Path, cfg: TextConfig) -> str:
    """The text of ``path`` as training uses it (lower-cased when ``cfg.lowercase``).

    :raises FileNotFoundError: there is no such file.
    :raises ValueError: the file is not UTF-8 text, is empty, holds fewer than maxlen + 1 characters (one window and
        its label), or only one distinct character.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"text file {path} is not UTF-8 text ({err.reason} at byte {err.start}); convert it to "
                         "UTF-8 first") from None
    if not text:
        raise ValueError(f"text file {path} is empty; give a text to learn from")
    if cfg.lowercase:
        text = text.lower()
    if len(text) < cfg.maxlen + 1:
        raise ValueError(f"text file {path} holds {len(text)} characters, but one training window takes "
                         f"text.maxlen + 1 = {cfg.maxlen + 1}: give a longer text or lower text.maxlen")
    if len(set(text)) < 2:
        raise ValueError(f"text file {path} holds only the character {text[0]!r}; there is nothing to predict")
    return text


class CharWindows:
    """The training windows of a text, served in shuffled batches; both the dataset and the loader of the loop.

    Window k is ``ids[k * step : k * step + maxlen]``, its label ``ids[k * step + maxlen]``. Batches are
    (windows (B, maxlen) int64, labels (B,) int64), the last one of an epoch possibly smaller.
    """

    def __init__(self, ids: torch.Tensor, maxlen: int, step: int, batch_size: int, seed: int) -> None:
        self.windows = ids[:-1].unfold(0, maxlen, step)  # (S, maxlen), a view of ids
        self.labels = ids[maxlen::step][: len(self.windows)]  # (S,)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        """S, the number of windows."""
        return len(self.windows)

    def batches_per_epoch(self) -> int:
        return -(-len(self) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Serve the order of ``epoch`` from the next iteration on."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
        order = torch.from_numpy(rng.permutation(len(self)))
        for start in range(0, len(self), self.batch_size):
            chosen = order[start:start + self.batch_size]
            yield self.windows[chosen], self.labels[chosen]


def train_text(
    config: Config,
    text_path: str | Path,
    run_dir: str | Path,
    progress: bool = True,
    log_every: int = 10,
    seed: int = 0,
) -> TrainSummary:
    """Train the character LSTM on the text of ``text_path`` until ``text.epochs`` epochs (or ``text.steps``
    steps, whichever comes first) are done, resuming ``run_dir/char_lstm.pt``.

    A resumed run keeps the checkpoint's vocabulary, so the text may change between runs only to one whose
    characters the model knows.

    :param log_every: steps per row of ``text_log.csv``.
    :param seed: seeds the initialisation and the window order.
    :raises ValueError: the text is unusable (see :func:`read_training_text`), or holds characters outside the
        vocabulary of the checkpoint being resumed.
    """
    cfg = config.text
    device = resolve_device(config.device)
    run_dir = Path(run_dir)
    text = read_training_text(text_path, cfg)
    checkpoint_path = run_dir / CHAR_LSTM_CHECKPOINT_NAME
    model_args = {**model_args_of(char_lstm_config_args(config)), "vocabulary": build_vocabulary(text),
                  "seed_text": text[:cfg.maxlen]}
    step_count = 0
    if checkpoint_path.exists():
        earlier = read_checkpoint(checkpoint_path, kind="char_lstm")
        step_count = earlier.step
        model_args.update(vocabulary=earlier.model_args["vocabulary"], seed_text=earlier.model_args["seed_text"])
    torch.manual_seed(seed)
    model = CharLSTM(**model_args)
    try:
        ids = model.encode(text)  # (N,)
    except ValueError as err:
        raise ValueError(f"{checkpoint_path} was trained on another text, and {text_path} does not fit it: {err}. "
                         "Use a new --run folder for this text") from None
    model.to(device)
    windows = CharWindows(ids, cfg.maxlen, cfg.window_step, cfg.batch_size, seed)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=cfg.learning_rate, alpha=RMSPROP_RHO, eps=RMSPROP_EPS)
    plan = TrainingPlan(
        stage="char_lstm",
        checkpoint_path=checkpoint_path,
        log_path=run_dir / TEXT_LOG_NAME,
        metric_names=("loss",),
        rate_name="windows_per_s",
        checkpoint_every=cfg.checkpoint_every,
        log_every=log_every,
        max_epochs=cfg.epochs,
        max_steps=cfg.steps,
        steps_per_epoch=windows.batches_per_epoch(),
    )
    samples = MetricsLog(run_dir / TEXT_SAMPLES_NAME, SAMPLE_COLUMNS, resume_step=step_count if step_count else None)

    def write_sample() -> None:
        generator = torch.Generator(device=device).manual_seed(seed + step_count)
        line = model.generate(None, cfg.sample_length, cfg.sample_temperature, generator)
        samples.write({"step": step_count, "temperature": cfg.sample_temperature, "sample": line})

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        nonlocal step_count
        windows_batch, labels = (t.to(device, non_blocking=True) for t in batch)  # (B, maxlen), (B,)
        loss = F.cross_entropy(model(windows_batch), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step_count += 1
        if step_count % cfg.sample_every == 0:
            write_sample()
        return {"loss": loss.detach()}, labels.shape[0]

    try:
        summary = run_training(plan, model, optimizer, model_args, dataclasses.asdict(cfg), windows, windows, step,
                               progress)
        if not summary.already_finished and summary.step % cfg.sample_every:
            write_sample()
    finally:
        samples.close()
    return summary
