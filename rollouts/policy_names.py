"""The names of the data-gathering policies (``collect.policy``), in a module light enough for the configuration
schema to import (:mod:`rollouts.policies` builds them)."""

from __future__ import annotations

from typing import Literal, get_args

DataPolicyName = Literal["uniform", "brownian", "random_controller", "repeated_random"]
POLICY_NAMES: tuple[DataPolicyName, ...] = get_args(DataPolicyName)
