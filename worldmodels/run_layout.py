"""The run folder: the names of the files and folders the stages write into RUN, in one place.

This module imports nothing but the standard library, so the command line can build its help from it without
loading torch or Ray.

    RUN/config.yaml            the merged configuration of the run (also RUN/iterations/k/ and RUN/sweep/)
    RUN/episodes/              the run's own episodes (``worldmodels run`` collects into it)
    RUN/controller/            CMA-ES: mean.npy (the controller to deploy), best.npy, the logs and the search state
    RUN/evaluation.json        the mean solution's real-env score (``agents.evaluation.EvaluationReport``)
    RUN/summary.json           what ``worldmodels run`` did: score, steps, stages, hardware
    RUN/episode.gif            the mean solution's first evaluation episode
    RUN/dream.gif              the same controller's dream beside a real episode
    RUN/*_curves.png           learning curves of V, M and C, and the mean solution's evaluations
"""

from __future__ import annotations

CONFIG_NAME = "config.yaml"
"""The merged configuration saved in a run folder (and in a round's or a sweep's folder)."""
EPISODES_DIR = "episodes"
"""Where a run keeps its own episodes."""
CONTROLLER_DIR = "controller"
"""Where a run folder keeps its evolved controller and the CMA-ES files (``agents.cmaes``)."""
MEAN_PARAMS_NAME = "mean.npy"
"""The CMA-ES distribution mean, the controller to deploy (in ``CONTROLLER_DIR``)."""
EVALUATION_NAME = "evaluation.json"
"""The mean solution's real-env evaluation."""
SUMMARY_NAME = "summary.json"
"""What a ``worldmodels run`` call did."""
EPISODE_GIF_NAME = "episode.gif"
"""The mean solution's first evaluation episode, as the controller saw it."""
DREAM_GIF_NAME = "dream.gif"
"""The mean solution's real episode (left) beside its dream from the same first frame (right)."""
VAE_CURVES_NAME = "vae_curves.png"
MDNRNN_CURVES_NAME = "mdnrnn_curves.png"
CONTROLLER_CURVES_NAME = "controller_curves.png"
EVALUATION_CURVES_NAME = "evaluation_curves.png"
"""Learning curves: V's and M's losses per step, CMA-ES fitness and the mean solution's returns per generation."""
