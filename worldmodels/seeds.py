"""Which episode seeds are kept from training: the evaluation's and the calibration's.

Evaluation episode i runs on seed ``evaluate.seed + i``, calibration episode i on ``trust.seed + i``. Nothing that
trains may replay one of them: neither the episodes V and M learn from (``collect.seed + i``, checked by
:func:`check_collect_seeds` before a collection starts) nor CMA-ES's rollouts (``agents.cmaes.generation_seeds``
skips them).
"""

from __future__ import annotations

from worldmodels.config import ConfigError
from worldmodels.config_schema import Config

HELD_OUT_EPISODES = 10_000
"""Seeds kept from training above each of ``evaluate.seed`` and ``trust.seed``: evaluations and calibrations of up
to this many episodes (or ``evaluate.episodes``, when larger) never replay an episode a controller trained on."""


def held_out_seeds(config: Config) -> tuple[range, range]:
    """The episode seeds training never uses: the evaluation's (``evaluate.seed`` and up) and the calibration's
    (``trust.seed`` and up), :data:`HELD_OUT_EPISODES` each (the evaluation's ``evaluate.episodes`` when larger)."""
    return (range(config.evaluate.seed, config.evaluate.seed + max(HELD_OUT_EPISODES, config.evaluate.episodes)),
            range(config.trust.seed, config.trust.seed + HELD_OUT_EPISODES))


def check_collect_seeds(config: Config, first_index: int, episodes: int) -> None:
    """Refuse a collection of episodes ``first_index .. episodes - 1`` (seeds ``collect.seed + index``) that would
    gather training data on held-out seeds.

    :raises ConfigError: naming the overlap and the settings to change.
    """
    collected = range(config.collect.seed + first_index, config.collect.seed + episodes)
    names = ("evaluate.seed", "trust.seed")
    for name, held in zip(names, held_out_seeds(config)):
        if collected and max(collected.start, held.start) < min(collected.stop, held.stop):
            raise ConfigError(
                f"collect.seed={config.collect.seed} would gather episodes on seeds {collected.start}.."
                f"{collected.stop - 1}, which meet the held-out seeds {held.start}..{held.stop - 1} ({name} and the "
                f"{len(held)} after it): training data must never replay an evaluation or calibration episode. "
                f"Move collect.seed (or {name}) so that the two ranges are apart")
