"""The dream: M used as the environment, many dreams stepped as one batch of tensors on one device.

One dream step, for B dreams at once (each row with its own controller parameters):

    a_t = C_i(z_t, h_t[, c_t])               dream i's own controller row, as ``Controller.act_population``
    h_{t+1}, mixture, r_t, done_t = M(z_t, a_t, h_t)
    z_{t+1} ~ mixture at temperature tau     per dimension: component k ~ softmax(logits / tau),
                                             then mu_k + sigma_k sqrt(tau) eps (``sample_next_z``'s law)

The reward is M's reward head (``reward_mode="head"``) or +1 per step the dream is alive
(``"survival"``, the Doom TakeCover reward: a return is then the dream's length in steps). A dream ends
when M's done logit is > 0 (``done_mode="logit"``, as published) or with probability sigmoid(logit)
(``"sample"``), or at ``max_steps``. The step that ends a dream still counts, as in the real environment.

Ended dreams stop costing: they are masked (their return stops growing) until the next check, every
``check_every`` steps, where they are dropped from the batch (the live rows of the state and the controller
rows gathered) once fewer than ``compact_below`` of the stepped rows are alive. A population whose controllers
die early then runs at the rate of its live rows; ``compact_below=0`` steps every dream to the end, masked.

Dreams start from stored real first frames: z_0 ~ N(mu, exp(logvar)) of one episode's first frame,
chosen at random among the latents files of an episode folder (:func:`load_start_latents`).

Dropout dreams (``dropout_mask``, Wellmer and Kwok, "Dropout's Dream Land", 2021): with an M trained with dropout
p > 0 (``mdnrnn.dropout``), each dream draws one dropout mask of M's gate inputs [z_t, h_{t-1}] at its start and
holds it for the whole episode (:func:`worldmodels.mdnrnn.draw_dropout_mask`, the mask M trained with), so every
dream runs its own M, a domain randomisation inside the dream. A mask is one elementwise multiply per step on the
gates' input; off (the default, as published) M runs without dropout, and so does M in the real env always.

M ensembles (``mdnrnn.members``): with E >= 2 members (Ms of one shape, trained with other seeds) every member steps
on the same trajectory, each with its own LSTM state (h and c are (E, B, H); the controller always reads member 0's,
as hidden units mean different things in each member). Each dream follows one member, drawn at its start: the next
z is drawn from that member's mixture. With ``ensemble="member"`` its reward and end are that member's too; with
``"pessimistic"`` the dream ends where any member predicts the end (the largest done logit, against the same uniform
when sampled), its head reward is the lowest of the members', and with ``disagreement_limit`` it also ends at a step
where the members disagree by more than that. The disagreement of a step is the mean over z's dimensions of the
standard deviation (over members, ddof 0) of each member's mixture mean sum_k pi_k mu_k at the dream's temperature,
in z units (:func:`mixture_disagreement`). A step of E members costs about E steps of one M (benchmarks/dream_speed.py
``--members``); ensembles and dropout dreams are not combined.

Randomness: every draw comes from one ``torch.Generator`` per call, seeded from the call's episode seeds,
so the same ``(params, seeds)`` call returns the same returns on the same machine: the starts first, then the
dropout masks when on, then each step's noise (an ensemble's followed members come from a second generator seeded
from the same seeds, so the other draws are those of one M's dream). Each step draws the noise
of every distinct seed of the call, whether its dreams are alive or not, so a dream's draws do not depend on which
other dreams have ended. Dreams that share a seed in one call share their start, dropout mask (or followed member)
and every noise draw (common random numbers, as candidates sharing a seed share a track in the real environment); a
dream's return therefore depends on the call's distinct seeds, not on its seed alone. The mixture component is drawn by
inverse CDF from one uniform per dimension. :meth:`DreamSimulator.step` takes its noise explicitly
(:class:`DreamNoise`), so a batched step can be checked against B single-dream steps with the same noise.

Dropping rows changes the batch size of M's matrix products. On the CPU they go through oneDNN (:func:`linear`),
which rounded every row alike whatever the batch size and thread count (AMD EPYC with AVX-512, torch 2.13): there
returns with dropping are bit-identical to the masked path's, and 1 and 2 threads give the same returns. A BLAS
that rounds a row differently at another batch size (torch.mm's MKL float32 GEMM does under 8 rows; GPUs may)
makes them equal up to that rounding, which a dream's chaotic dynamics can grow into another trajectory: then
compare them statistically. So do two exceptions seen since: oneDNN rounds a lone row (B = 1) otherwise, and torch's
vectorised sigmoid and exp round a tensor's last partial vector (of 32 floats here) otherwise, so where H or K Z is
not a multiple of 32 (never at the published sizes) the size of the batch shows in the last bits.

M's LSTM and heads are evaluated through fused weights (:class:`FusedM`): one matrix product for the LSTM gates,
one for the mixture, reward and done heads together, with the single-step path done by hand (the equivalent of
``nn.LSTMCell``); it matches ``MDNRNN.step``. With ``precision="bfloat16"`` both matrix products take bfloat16
weights and inputs (accumulated in float32, rounded to bfloat16 on output); the gate nonlinearities, the cell
state c, h, the mixture draw and the returns stay float32. It needs bf16 arithmetic (AVX-512 BF16 or AMX on the
CPU; a GPU); M's z NLL and the dream returns agree with float32's within the tolerances of ``tests/test_dream.py``.
An ensemble's fused weights are stacked (E, ...): on the CPU its products are E oneDNN products (one per member,
measured 2x faster than torch.baddbmm on one AMD EPYC core, and rounding every row as one M's products do),
elsewhere one batched product.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple, get_args

import numpy as np
import torch

from rollouts.storage import list_episode_files, read_latents
from worldmodels.checkpoint import load_mdnrnn, load_vae, read_model_args
from worldmodels.config_schema import (
    Config,
    ControllerInputsName,
    DeviceName,
    DreamDoneName,
    DreamEnsembleName,
    DreamRewardName,
    DtypeName,
)
from worldmodels.controller import Controller, ControllerRows
from worldmodels.device import has_bf16, resolve_device
from worldmodels.encode import check_latents_identity
from worldmodels.mdnrnn import MDNRNN, draw_dropout_mask
from worldmodels.vae import ConvVAE

REWARD_MODES: tuple[DreamRewardName, ...] = get_args(DreamRewardName)
DONE_MODES: tuple[DreamDoneName, ...] = get_args(DreamDoneName)
ENSEMBLE_MODES: tuple[DreamEnsembleName, ...] = get_args(DreamEnsembleName)
PRECISION_DTYPES: dict[DtypeName, torch.dtype] = {name: getattr(torch, name) for name in get_args(DtypeName)}
"""The torch dtype of each ``dream.precision``."""


@dataclass(frozen=True)
class DreamSettings:
    """What one :class:`DreamSimulator` runs with, as plain checked values: a run's ``dream`` settings with
    ``max_steps`` a number, the shape of the controller acting in the dreams, and how the batch is stepped.

    :func:`settings_from_config` builds it from a run's config; a project without one builds it directly. The fields
    named after a config key mean what that key's docstring says (:class:`worldmodels.config_schema.DreamConfig`,
    :class:`worldmodels.config_schema.ControllerConfig`, ``worldmodels config --help``); the last three are
    settings of this simulator alone.
    """

    temperature: float = 1.0
    """``dream.temperature``."""
    max_steps: int = 1000
    """``dream.max_steps``, always a number here (:func:`dream_max_steps` resolves a null one)."""
    reward_mode: DreamRewardName = "head"
    """``dream.reward_mode``."""
    done_mode: DreamDoneName = "logit"
    """``dream.done_mode``."""
    inputs: ControllerInputsName = "zh"
    """``controller.inputs``."""
    bias: bool = True
    """``controller.bias``."""
    hidden_units: int = 0
    """``controller.hidden_units``."""
    precision: DtypeName = "float32"
    """``dream.precision``."""
    dropout_mask: bool = False
    """``dream.dropout_mask``."""
    ensemble: DreamEnsembleName = "member"
    """``dream.ensemble``."""
    disagreement_limit: float | None = None
    """``dream.disagreement_limit``."""
    check_every: int = 10
    """Steps between checks (host syncs) of which dreams have ended: a rollout stops when all have, and drops
    the ended ones from the batch (``compact_below``)."""
    compact_below: float = 1.0
    """At a check, ended dreams are dropped from the batch when fewer than this fraction of the stepped rows is
    alive: 1 drops them at every check where one has ended (a drop copies each live row's state and controller,
    about a tenth of a step's work); 0 never drops them (every dream is stepped, masked, until all have ended)."""
    cpu_chunk: int = 2048
    """On the CPU, rollouts step at most this many dreams per tensor operation, so each step's tensors stay in
    cache and under the allocator's mmap threshold (whole-batch steps of 16384 dreams measured ~1.3x slower)."""

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if min(self.max_steps, self.check_every, self.cpu_chunk) < 1:
            raise ValueError(f"max_steps, check_every and cpu_chunk must be >= 1, got {self.max_steps}, "
                             f"{self.check_every} and {self.cpu_chunk}")
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {self.reward_mode!r}")
        if self.done_mode not in DONE_MODES:
            raise ValueError(f"done_mode must be one of {DONE_MODES}, got {self.done_mode!r}")
        if self.precision not in PRECISION_DTYPES:
            raise ValueError(f"precision must be one of {tuple(PRECISION_DTYPES)}, got {self.precision!r}")
        if not 0.0 <= self.compact_below <= 1.0:
            raise ValueError(f"compact_below must be in [0, 1] (0: never drop ended dreams), got {self.compact_below}")
        if self.ensemble not in ENSEMBLE_MODES:
            raise ValueError(f"ensemble must be one of {ENSEMBLE_MODES}, got {self.ensemble!r}")
        if self.disagreement_limit is not None and (self.ensemble != "pessimistic" or self.disagreement_limit < 0):
            raise ValueError(f"disagreement_limit {self.disagreement_limit} needs ensemble 'pessimistic' (where it "
                             f"ends dreams) and a value >= 0, got ensemble {self.ensemble!r}")


def dream_max_steps(config: Config) -> int:
    """Steps after which a dream is cut: ``dream.max_steps``, or when null the real env's episode cap
    (``env.max_episode_steps``, else the env id's own: CarRacing 1000, TakeCover 2100)."""
    import gymnasium as gym

    import envs  # noqa: F401  (registers the worldmodels/ ids)

    if config.dream.max_steps is not None:
        return config.dream.max_steps
    try:
        cap = config.env.max_episode_steps or gym.spec(config.env.id).max_episode_steps
    except gym.error.Error as err:
        raise ValueError(f"dream.max_steps is null and env.id {config.env.id!r} gives no episode cap ({err}): "
                         "set dream.max_steps") from None
    if cap is None:
        raise ValueError(f"dream.max_steps is null and {config.env.id} has no episode cap: set dream.max_steps "
                         "or env.max_episode_steps")
    return int(cap)


def settings_from_config(config: Config) -> DreamSettings:
    """The dream settings of a run's config: its ``dream`` section and its controller's shape."""
    dream = config.dream
    return DreamSettings(temperature=dream.temperature, max_steps=dream_max_steps(config),
                         reward_mode=dream.reward_mode, done_mode=dream.done_mode, inputs=config.controller.inputs,
                         bias=config.controller.bias, hidden_units=config.controller.hidden_units,
                         precision=dream.precision, dropout_mask=dream.dropout_mask, ensemble=dream.ensemble,
                         disagreement_limit=dream.disagreement_limit)


class StartLatents(NamedTuple):
    """V's posterior of E real first frames, each (E, Z) float32."""

    mu: np.ndarray
    logvar: np.ndarray


def load_start_latents(folder: str | Path, max_episodes: int | None = None,
                       vae_path: str | Path | None = None) -> StartLatents:
    """The first frame's (mu, logvar) of every episode in ``folder`` (of its first ``max_episodes``), from
    the latents files the encode stage stored beside the episodes.

    :param vae_path: the dream's V: latents encoded by another V are refused
        (:func:`worldmodels.encode.check_latents_identity`); None checks nothing.
    :raises FileNotFoundError: the folder has no episode files.
    :raises rollouts.storage.EpisodeFileError: an episode has no latents file, or another V's (run
        `worldmodels encode`).
    """
    files = list_episode_files(folder)[:max_episodes]
    if vae_path is not None:
        check_latents_identity(files, vae_path)
    firsts = [read_latents(file) for file in files]
    mu = np.stack([m[0] for m, _ in firsts])  # (E, Z)
    logvar = np.stack([v[0] for _, v in firsts])  # (E, Z)
    return StartLatents(mu, logvar)


def start_latents_digest(folder: str | Path, max_episodes: int | None = None) -> str:
    """The SHA-256 (hex) of the start latents a dream of ``folder`` draws from (:func:`load_start_latents` of its
    first ``max_episodes``: shapes, then mu and logvar bytes): it changes when the episodes, their order or their
    encoding change."""
    digest = hashlib.sha256()
    for array in load_start_latents(folder, max_episodes):
        digest.update(repr(array.shape).encode())
        digest.update(np.ascontiguousarray(array, np.float32).tobytes())
    return digest.hexdigest()


class DreamState(NamedTuple):
    """Where B dreams are: the current latent and the LSTM state of each of M's E members (E = 1: one M)."""

    z: torch.Tensor  # (B, Z)
    h: torch.Tensor  # (E, B, H)
    c: torch.Tensor  # (E, B, H)

    def take(self, rows: torch.Tensor | None) -> DreamState:
        """The dreams ``rows`` (B',) of this state (all of them when rows is None)."""
        if rows is None:
            return self
        return DreamState(self.z.index_select(0, rows), self.h.index_select(1, rows), self.c.index_select(1, rows))

    def part(self, rows: slice) -> DreamState:
        """The dreams ``rows`` of this state (views)."""
        return DreamState(self.z[rows], self.h[:, rows], self.c[:, rows])

    @staticmethod
    def cat(parts: Sequence[DreamState]) -> DreamState:
        """The dreams of ``parts``, one after the other."""
        return DreamState(torch.cat([p.z for p in parts]), torch.cat([p.h for p in parts], dim=1),
                          torch.cat([p.c for p in parts], dim=1))


class DreamNoise(NamedTuple):
    """The randomness of one step of B dreams (see :meth:`DreamSimulator.draw_noise`)."""

    component: torch.Tensor  # (B, Z) uniform in [0, 1): each dimension's mixture component, by inverse CDF
    eps: torch.Tensor  # (B, Z) standard normal: the Gaussian noise of the next z
    done: torch.Tensor | None  # (B,) uniform in [0, 1): the done draw with done_mode "sample", else None


class DreamStep(NamedTuple):
    """What one step of B dreams gives."""

    state: DreamState  # after the step: z_{t+1}, h_{t+1}, c_{t+1}
    reward: torch.Tensor  # (B,) float32: M's reward head, or 1 per step with reward_mode "survival"
    done: torch.Tensor  # (B,) bool: the dream ended at this step (always False without a done head)
    disagreement: torch.Tensor | None  # (B,) float32: the members' disagreement (E >= 2), else None


class DreamResult(NamedTuple):
    """The outcome of N dreams (see :meth:`DreamSimulator.record`)."""

    returns: np.ndarray  # (N,) float64 summed rewards of the live steps
    lengths: np.ndarray  # (N,) int64 steps each dream lived, the ending step included
    z: np.ndarray | None  # (N, T + 1, Z) float32 latents z_0..z_T, or None when not recorded
    disagreement: np.ndarray | None  # (N, T) float32 per step, NaN past a dream's end; None unless keep_z, E >= 2


@dataclass(frozen=True)
class FusedM:
    """M's weights rearranged for single steps at one temperature (:func:`fuse_mdnrnn`), or those of an ensemble's
    E members stacked along a leading axis (E, ...) (:func:`fuse_members`)."""

    lstm_weight: torch.Tensor  # (4H, Z + A + H) dtype: gate rows i, f, o, 2g; columns for [z, a, h]
    lstm_bias: torch.Tensor  # (4H,) dtype: M's constant-1 input column
    head_weight: torch.Tensor  # (3KZ + R + D, H) dtype: logits / tau (K, Z), means (Z, K), log-stds (Z, K), reward, done
    head_bias: torch.Tensor  # (3KZ + R + D,) dtype, the log-stds' shifted by ln(tau) / 2
    z_size: int
    hidden_size: int
    num_mixtures: int
    has_reward: bool
    has_done: bool
    temperature: float
    dtype: torch.dtype
    """Of the weights and of the matrix products' inputs and outputs (float32 or bfloat16)."""

    @property
    def members(self) -> int:
        """E, the Ms whose weights these are: 1 for one M (unstacked weights)."""
        return 1 if self.lstm_weight.ndim == 2 else len(self.lstm_weight)


class HeadOutput(NamedTuple):
    """M's heads after one step of B dreams, in the fused weights' dtype, at the fused temperature (views); an
    ensemble's carry a leading member axis (E, B, ...)."""

    logits: torch.Tensor  # (B, K, Z) mixture logits / tau, unnormalised
    mu: torch.Tensor  # (B, Z, K) component means
    log_sigma: torch.Tensor  # (B, Z, K) component log-stds + ln(tau) / 2: the log-std of the draw
    reward: torch.Tensor | None  # (B,) M's reward head, None without one
    done_logit: torch.Tensor | None  # (B,) M's done logit, None without a done head


def fuse_mdnrnn(mdnrnn: MDNRNN, device: torch.device | str, temperature: float = 1.0,
                dtype: torch.dtype = torch.float32) -> FusedM:
    """Fuse M's weights on ``device`` in ``dtype``: the LSTM's input and recurrent matrices into one matrix over
    [z, a, h] (M's constant-1 input column becomes the gate bias), and the mixture, reward and done heads into one.

    The cell gate's rows are doubled, so one sigmoid over all gates serves it too: tanh(x) = 2 sigmoid(2x) - 1.
    The mixture's logits are reordered K-major (component k of every dimension side by side, so the draw works on
    (B, Z) slices; means and log-stds stay per dimension), and the temperature is folded in: logits / tau,
    log-stds + ln(tau) / 2.
    """
    H, Z, K = mdnrnn.hidden_size, mdnrnn.z_size, mdnrnn.num_mixtures
    weight_ih = mdnrnn.lstm.weight_ih_l0.detach().cpu()  # (4H, Z + A + 1), gates i, f, g, o; last column the bias
    weight_hh = mdnrnn.lstm.weight_hh_l0.detach().cpu()  # (4H, H)
    gates = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])  # i, f, o, g
    scale = torch.ones(4 * H, 1)
    scale[3 * H :] = 2.0  # the cell gate g, see above
    lstm_weight = torch.cat([weight_ih[:, :-1], weight_hh], dim=1)[gates] * scale  # (4H, Z + A + H)
    lstm_bias = weight_ih[gates, -1] * scale[:, 0]  # (4H,)
    logit_rows = torch.arange(Z)[:, None] * 3 * K + torch.arange(K)  # (Z, K): M's mixture rows are (Z, 3K)
    order = torch.cat([logit_rows.T.reshape(-1), (logit_rows + K).reshape(-1), (logit_rows + 2 * K).reshape(-1)])
    mdn_weight = mdnrnn.mdn.weight.detach().cpu()[order].view(3, K * Z, H)  # (3, KZ, H)
    mdn_bias = mdnrnn.mdn.bias.detach().cpu()[order].view(3, K * Z)  # (3, KZ)
    mdn_weight = torch.cat([mdn_weight[0] / temperature, mdn_weight[1], mdn_weight[2]])  # (3KZ, H)
    mdn_bias = torch.cat([mdn_bias[0] / temperature, mdn_bias[1], mdn_bias[2] + 0.5 * math.log(temperature)])
    heads = [head for head in (mdnrnn.reward_head, mdnrnn.done_head) if head is not None]
    head_weight = torch.cat([mdn_weight] + [head.weight.detach().cpu() for head in heads])  # (3KZ + R + D, H)
    head_bias = torch.cat([mdn_bias] + [head.bias.detach().cpu() for head in heads])  # (3KZ + R + D,)
    return FusedM(
        lstm_weight=lstm_weight.to(device, dtype),
        lstm_bias=lstm_bias.to(device, dtype),
        head_weight=head_weight.to(device, dtype),
        head_bias=head_bias.to(device, dtype),
        z_size=Z,
        hidden_size=H,
        num_mixtures=K,
        has_reward=mdnrnn.reward_head is not None,
        has_done=mdnrnn.done_head is not None,
        temperature=temperature,
        dtype=dtype,
    )


def fuse_members(mdnrnns: Sequence[MDNRNN], device: torch.device | str, temperature: float = 1.0,
                 dtype: torch.dtype = torch.float32) -> FusedM:
    """The fused weights (:func:`fuse_mdnrnn`) of E Ms of one shape, stacked (E, ...); one M's unstacked."""
    fused = [fuse_mdnrnn(mdnrnn, device, temperature, dtype) for mdnrnn in mdnrnns]
    if len(fused) == 1:
        return fused[0]
    stacked = {name: torch.stack([getattr(m, name) for m in fused])
               for name in ("lstm_weight", "lstm_bias", "head_weight", "head_bias")}
    return replace(fused[0], **stacked)


_ONEDNN_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (B, in) @ weight (out, in).T + bias (out,): (B, out) in x's dtype; or, for E members' stacked weights
    (E, out, in) and biases (E, out), x (E, B, in) to (E, B, out): E oneDNN products where :func:`_linear` uses
    oneDNN, one batched product elsewhere."""
    if weight.ndim == 2:
        return _linear(x, weight, bias)
    if _onednn(x):
        return torch.stack([_linear(x[e], weight[e], None if bias is None else bias[e]) for e in range(len(weight))])
    product = torch.bmm(x, weight.transpose(1, 2))  # (E, B, out)
    return product if bias is None else product.add_(bias.unsqueeze(1))


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (B, in) @ weight (out, in).T + bias (out,): (B, out) in x's dtype.

    On the CPU through oneDNN (torch's private mkldnn linear op, the one inductor calls) where torch has it: on an
    AMD EPYC with AVX-512 (torch 2.13), torch.mm's float32 GEMM (MKL) ran at less than half oneDNN's rate, and
    oneDNN rounded every row alike whatever the batch size or thread count. Under torch.compile, torch's own
    (inductor lowers the oneDNN op only for frozen weights).
    """
    if _onednn(x):  # the op reads every tensor as contiguous, unchecked
        return _ONEDNN_LINEAR(x.contiguous(), weight.contiguous(), bias if bias is None else bias.contiguous(),
                              "none", [], "")
    return torch.nn.functional.linear(x, weight, bias)


def _onednn(x: torch.Tensor) -> bool:
    """Whether products with input ``x`` go through oneDNN: on the CPU where torch has it, outside torch.compile."""
    return x.device.type == "cpu" and _ONEDNN_LINEAR is not None and not torch.compiler.is_compiling()


def lstm_step(m: FusedM, z: torch.Tensor, action: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
              dropout_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """M's LSTM on one step: z (B, Z), action (B, A), h and c (B, H) to the new (h, c), each (B, H) float32; for an
    ensemble's stacked weights, every member on the same z and action: h and c (E, B, H) to (E, B, H) each.

    The gates' matrix product runs in ``m.dtype``; the gates and the state are float32. tanh is computed as
    2 sigmoid(2x) - 1 (torch's CPU tanh is several times slower than its sigmoid). ``dropout_mask``
    (B, Z + A + H) in ``m.dtype`` multiplies the gates' input [z, a, h] (see :func:`gate_input_masks`); None: none.
    """
    inputs = [z, action, h] if m.members == 1 else [z.expand(m.members, -1, -1), action.expand(m.members, -1, -1), h]
    x = torch.empty(*h.shape[:-1], m.lstm_weight.shape[-1], dtype=m.dtype, device=z.device)  # ([E,] B, Z + A + H)
    torch.cat(inputs, dim=-1, out=x)  # cast to m.dtype on the way
    if dropout_mask is not None:
        x.mul_(dropout_mask)  # (B, Z + A + H): this dream's M
    gates = linear(x, m.lstm_weight, m.lstm_bias).float()  # ([E,] B, 4H): i, f, o, 2g
    gates = gates.sigmoid_()  # ([E,] B, 4H): sigmoid(i), sigmoid(f), sigmoid(o), (tanh(g) + 1) / 2
    i, f, o, g = gates.chunk(4, dim=-1)  # ([E,] B, H) each
    c = torch.addcmul(f * c, i, g, value=2.0).sub_(i)  # ([E,] B, H): f c + i tanh(g)
    h = torch.addcmul(o.neg(), o, torch.sigmoid(2.0 * c), value=2.0)  # ([E,] B, H): o tanh(c)
    return h, c


def gate_input_masks(m: FusedM, action_size: int, rate: float, count: int,
                     generator: torch.Generator) -> torch.Tensor:
    """``count`` dropout masks (count, Z + A + H) of the fused gates' input [z, a, h], in ``m.dtype`` on the
    generator's device: M's masks of [z, h] (:func:`worldmodels.mdnrnn.draw_dropout_mask`) with the action's
    columns 1 (never dropped). In bfloat16 the kept entries' 1 / (1 - p) is rounded (1.0526 to 1.0547 at p 0.05)."""
    masks = draw_dropout_mask(count, m.z_size, m.hidden_size, rate, generator, generator.device)  # (count, Z + H)
    z_mask, h_mask = masks.split([m.z_size, m.hidden_size], dim=1)  # (count, Z), (count, H)
    ones = torch.ones(count, action_size, device=masks.device)  # (count, A)
    return torch.cat([z_mask, ones, h_mask], dim=1).to(m.dtype)  # (count, Z + A + H)


def head_output(m: FusedM, h: torch.Tensor) -> HeadOutput:
    """M's mixture, reward and done heads on h (B, H), one matrix product in ``m.dtype`` (an ensemble's: h and
    the heads (E, B, ...))."""
    return split_heads(m, head_matmul(m, h))


def head_matmul(m: FusedM, h: torch.Tensor) -> torch.Tensor:
    """The heads' matrix product on h ([E,] B, H): ([E,] B, 3KZ + R + D) in ``m.dtype`` (see :func:`split_heads`)."""
    return linear(h.to(m.dtype), m.head_weight, m.head_bias)


def split_heads(m: FusedM, out: torch.Tensor) -> HeadOutput:
    """The heads in the output (..., 3KZ + R + D) of :func:`head_matmul`, as views with its leading axes."""
    KZ, lead = m.num_mixtures * m.z_size, out.shape[:-1]
    logits = out[..., :KZ].view(*lead, m.num_mixtures, m.z_size)  # (..., K, Z)
    mu, log_sigma = (out[..., j * KZ : (j + 1) * KZ].view(*lead, m.z_size, m.num_mixtures) for j in (1, 2))
    reward = out[..., 3 * KZ] if m.has_reward else None  # (...,)
    done_logit = out[..., -1] if m.has_done else None  # (...,)
    return HeadOutput(logits, mu, log_sigma, reward, done_logit)


def mixture_disagreement(heads: HeadOutput) -> torch.Tensor:
    """The disagreement (B,) float32 of E members' heads (E, B, ...): the mean over z's dimensions of the standard
    deviation across members (ddof 0) of each member's mixture mean sum_k pi_k mu_k (pi at the heads' temperature),
    in z units."""
    pi = heads.logits.float().softmax(dim=-2)  # (E, B, K, Z)
    means = (pi.transpose(-1, -2) * heads.mu.float()).sum(dim=-1)  # (E, B, Z)
    spread = (means - means.mean(dim=0)).square_().mean(dim=0).sqrt_()  # (B, Z); torch.std's Welford pass: 50x slower
    return spread.mean(dim=-1)  # (B,)


def sample_mixture(head: HeadOutput, component: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Draw z (B, Z) float32 from the per-dimension mixtures of ``head`` with given noise: component (B, Z)
    uniform in [0, 1) picks k by inverse CDF of softmax(logits), eps (B, Z) standard normal gives
    mu_k + exp(log_sigma_k) eps (the temperature is in the head, see :func:`fuse_mdnrnn`)."""
    logits = head.logits.float()  # (B, K, Z)
    weight = (logits - logits.amax(dim=1, keepdim=True)).exp_()  # (B, K, Z) unnormalised, the largest 1
    cdf = weight.cumsum(dim=1)  # (B, K, Z)
    threshold = component * cdf[:, -1]  # (B, Z) in [0, total)
    k = (cdf[:, :-1] <= threshold.unsqueeze(1)).sum(dim=1).unsqueeze(2)  # (B, Z, 1): the first k with cdf_k > it
    mu = head.mu.gather(2, k).squeeze(2).float()  # (B, Z)
    sigma = head.log_sigma.gather(2, k).squeeze(2).float().exp_()  # (B, Z)
    return torch.addcmul(mu, sigma, eps)


def matmul_dtype(precision: DtypeName, device: torch.device) -> torch.dtype:
    """The dtype of M's matrix products for a ``precision`` setting on ``device``.

    :raises ValueError: bfloat16 on a device without bf16 arithmetic (there torch would emulate it, slower
        than float32).
    """
    dtype = PRECISION_DTYPES[precision]
    if dtype == torch.bfloat16:
        if not has_bf16(device):
            raise ValueError(f"dream precision 'bfloat16' needs bf16 arithmetic, which this {device.type.upper()} "
                             "lacks (on the CPU: AVX-512 BF16 or AMX); set dream.precision to 'float32'")
    return dtype


def _seeds_of(seeds: np.ndarray, count: int) -> list[int]:
    """``count`` independent 64-bit generator seeds from a sequence of episode seeds (order matters); the first does
    not depend on ``count``."""
    words = np.random.SeedSequence(seeds.astype(np.uint64).tolist()).generate_state(count, np.uint64)
    return [int(word) for word in words]


def _distinct(seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The distinct seeds (U,) in order of first appearance, and the row of each seed among them (N,)
    (None when all seeds are distinct: row n is seed n)."""
    _, first, inverse = np.unique(seeds, return_index=True, return_inverse=True)
    if len(first) == len(seeds):
        return seeds, None
    order = np.argsort(first)  # distinct seeds (sorted by value) listed by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return seeds[first[order]], rank[inverse.reshape(-1)]


def _take(rows: torch.Tensor | None, tensor: torch.Tensor | None) -> torch.Tensor | None:
    """The tensor's rows ``rows`` (all of it when rows is None); None stays None."""
    return tensor if rows is None or tensor is None else tensor.index_select(0, rows)


def _shape_of(mdnrnn: MDNRNN) -> dict[str, int | bool]:
    """What an ensemble's members must share: M's sizes and heads."""
    return {"z_size": mdnrnn.z_size, "action_size": mdnrnn.action_size, "hidden_size": mdnrnn.hidden_size,
            "num_mixtures": mdnrnn.num_mixtures, "reward_head": mdnrnn.reward_head is not None,
            "done_head": mdnrnn.done_head is not None}


class DreamSimulator:
    """B dreams of one M, or of an ensemble of E Ms (and optionally V, to draw them) on one device, stepped as tensors.

    Satisfies ``agents.evaluators.RolloutWorker``: :meth:`run` (= :meth:`rollout`) dreams one episode per
    row of ``params (N, D)``, so a CMA-ES population of P candidates x R rollouts is one batch of P * R.

    :param mdnrnn: M, or the E members of an ensemble (Ms of one shape; member 0 is the one the controller reads).

    Its methods run under ``torch.no_grad``, not ``inference_mode``: torch.compile cannot trace a step on inference
    tensors ("Cannot set version_counter for inference tensor"; ``benchmarks/dream_speed.py --compile``).
    """

    def __init__(self, mdnrnn: MDNRNN | Sequence[MDNRNN], starts: StartLatents,
                 settings: DreamSettings = DreamSettings(), vae: ConvVAE | None = None,
                 device: torch.device | str = "cpu") -> None:
        members = [mdnrnn] if isinstance(mdnrnn, MDNRNN) else list(mdnrnn)
        mdnrnn = members[0]
        for k, member in enumerate(members[1:], 1):
            if _shape_of(member) != _shape_of(mdnrnn):
                raise ValueError(f"M member {k} has another shape than member 0 ({_shape_of(member)} vs "
                                 f"{_shape_of(mdnrnn)}): an ensemble's members share one shape")
        if starts.mu.shape != starts.logvar.shape or starts.mu.ndim != 2 or starts.mu.shape[1] != mdnrnn.z_size:
            raise ValueError(f"start latents must be (E, {mdnrnn.z_size}) for this M, got mu {starts.mu.shape} "
                             f"and logvar {starts.logvar.shape}: were they encoded by this run's V?")
        if vae is not None and vae.z_size != mdnrnn.z_size:
            raise ValueError(f"M reads z of size {mdnrnn.z_size} but V encodes {vae.z_size}: different runs")
        if settings.dropout_mask and mdnrnn.dropout == 0:
            raise ValueError("dropout_mask needs M trained with dropout, and this M has none: train M with "
                             "mdnrnn.dropout > 0 (e.g. 0.05, Dropout's Dream Land), or set dream.dropout_mask false")
        if settings.dropout_mask and len(members) > 1:
            raise ValueError(f"dropout dreams and an ensemble of {len(members)} Ms are not combined: set "
                             "dream.members=1 or dream.dropout_mask false")
        if settings.disagreement_limit is not None and len(members) == 1:
            raise ValueError("disagreement_limit needs an ensemble of 2 or more Ms (mdnrnn.members, dream.members), "
                             "and this dream has one M: set dream.disagreement_limit null")
        if settings.reward_mode == "head" and mdnrnn.reward_head is None:
            raise ValueError("reward_mode 'head' needs M with a reward head, and this M has none (CarRacing's M "
                             "is trained without one): train M with a reward head, or set reward_mode "
                             "'survival' (+1 per step alive, the Doom TakeCover reward; needs a done head)")
        self.settings = settings
        self.device = torch.device(device)
        self.m = fuse_members(members, self.device, settings.temperature, matmul_dtype(settings.precision, self.device))
        self.action_size = mdnrnn.action_size
        self.dropout = mdnrnn.dropout if settings.dropout_mask else 0.0  # of each dream's mask; 0: no masks
        self.vae = None if vae is None else vae.to(self.device).eval()
        self.controller = Controller(mdnrnn.z_size, mdnrnn.hidden_size, mdnrnn.action_size, settings.inputs,
                                     settings.bias, settings.hidden_units)
        self.start_mu = torch.as_tensor(starts.mu, dtype=torch.float32, device=self.device)  # (episodes, Z)
        self.start_logvar = torch.as_tensor(starts.logvar, dtype=torch.float32, device=self.device)  # (episodes, Z)
        self.dream_steps = 0
        """Dream steps that :meth:`rollout`'s dreams lived, summed since this simulator was built."""

    @property
    def num_params(self) -> int:
        """Length D of a controller parameter vector."""
        return self.controller.num_params

    @property
    def observation_size(self) -> int:
        """Length F of :meth:`features` (the controller's input)."""
        return self.controller.input_size

    @property
    def members(self) -> int:
        """E, the Ms this dream steps: 1, or an ensemble's members."""
        return self.m.members

    def generator(self, seed: int) -> torch.Generator:
        """A generator on this simulator's device, seeded with ``seed``."""
        return torch.Generator(self.device).manual_seed(seed)

    @torch.no_grad()
    def start(self, count: int, generator: torch.Generator) -> DreamState:
        """``count`` fresh dreams: z_0 ~ N(mu, exp(logvar)) of a random stored first frame, h = c = 0."""
        index = torch.randint(len(self.start_mu), (count,), generator=generator, device=self.device)  # (B,)
        z = ConvVAE.sample_latent(self.start_mu[index], self.start_logvar[index], generator)  # (B, Z)
        h = torch.zeros(self.members, count, self.m.hidden_size, device=self.device)  # (E, B, H)
        return DreamState(z, h, torch.zeros_like(h))

    @torch.no_grad()
    def draw_dropout_masks(self, count: int, generator: torch.Generator) -> torch.Tensor | None:
        """The dropout masks (count, Z + A + H) of ``count`` fresh dreams (:func:`gate_input_masks`), one per dream
        for its whole episode; None (nothing drawn) without ``dropout_mask``."""
        if self.dropout == 0:
            return None
        return gate_input_masks(self.m, self.action_size, self.dropout, count, generator)

    @torch.no_grad()
    def draw_members(self, count: int, generator: torch.Generator) -> torch.Tensor | None:
        """The member (count,) int64 each of ``count`` fresh dreams follows for its whole episode, uniform over the
        ensemble's; None (nothing drawn) with one M."""
        if self.members == 1:
            return None
        return torch.randint(self.members, (count,), generator=generator, device=self.device)

    @torch.no_grad()
    def draw_noise(self, count: int, generator: torch.Generator) -> DreamNoise:
        """The noise of one step of ``count`` dreams, drawn from ``generator`` (component, eps, then done)."""
        shape = (count, self.m.z_size)
        component = torch.rand(shape, generator=generator, device=self.device)  # (B, Z)
        eps = torch.randn(shape, generator=generator, device=self.device)  # (B, Z)
        sample_done = self.settings.done_mode == "sample" and self.m.has_done
        done = torch.rand(count, generator=generator, device=self.device) if sample_done else None  # (B,)
        return DreamNoise(component, eps, done)

    @torch.no_grad()
    def features(self, state: DreamState) -> torch.Tensor:
        """The controller's input (B, F) for ``state``: [z], [z, h] or [z, c, h] (the ``inputs`` setting) of
        member 0."""
        return self.controller.features(state.z, state.h[0], state.c[0])

    def controller_rows(self, params: np.ndarray | torch.Tensor) -> ControllerRows:
        """Controller parameters (B, D) (flat layout of ``Controller``) as weights on this device."""
        self.controller.check_flat(params)
        flat = torch.as_tensor(params, dtype=torch.float32, device=self.device).reshape(-1, self.num_params)  # (B, D)
        return self.controller.rows(flat)

    @torch.no_grad()
    def act(self, rows: ControllerRows, state: DreamState) -> torch.Tensor:
        """Actions (B, A) in [-1, 1]: dream i acts with its own controller, row i of ``rows``."""
        return self.controller.act_rows(rows, self.features(state))  # (B, A)

    @torch.no_grad()
    def step(self, state: DreamState, action: torch.Tensor, noise: DreamNoise,
             dropout_mask: torch.Tensor | None = None, member: torch.Tensor | None = None) -> DreamStep:
        """Advance B dreams by one step of M with actions (B, A) in [-1, 1], the given noise, and each dream's
        dropout mask (B, Z + A + H) (:meth:`draw_dropout_masks`; None: M without dropout) or, with an ensemble, the
        member (B,) int64 each dream follows (:meth:`draw_members`; None: member 0)."""
        if self.members == 1:
            h, c = lstm_step(self.m, state.z, action, state.h[0], state.c[0], dropout_mask)  # (B, H) each
            head = head_output(self.m, h)
            h, c, disagreement = h.unsqueeze(0), c.unsqueeze(0), None  # (1, B, H) each
            reward, done_logit = head.reward, head.done_logit  # (B,) each or None
        else:
            h, c = lstm_step(self.m, state.z, action, state.h, state.c)  # (E, B, H) each
            out = head_matmul(self.m, h)  # (E, B, 3KZ + R + D)
            heads = split_heads(self.m, out)  # (E, B, ...)
            followed = out[0] if member is None else out[member, torch.arange(len(member), device=out.device)]
            head = split_heads(self.m, followed)  # (B, ...): the followed member's
            disagreement = mixture_disagreement(heads)  # (B,)
            reward, done_logit = head.reward, head.done_logit  # (B,) each or None
            if self.settings.ensemble == "pessimistic":
                reward = None if heads.reward is None else heads.reward.amin(dim=0)  # (B,)
                done_logit = None if heads.done_logit is None else heads.done_logit.amax(dim=0)  # (B,)
        z = sample_mixture(head, noise.component, noise.eps)  # (B, Z)
        if self.settings.reward_mode == "head" and reward is not None:
            reward = reward.float()  # (B,)
        else:
            reward = torch.ones_like(z[:, 0])  # (B,)
        if done_logit is None:
            done = torch.zeros_like(reward, dtype=torch.bool)  # (B,)
        else:
            done = self._done(done_logit.float(), noise.done)  # (B,)
        if self.settings.disagreement_limit is not None and disagreement is not None:
            done = done | (disagreement > self.settings.disagreement_limit)  # (B,)
        return DreamStep(DreamState(z, h, c), reward, done, disagreement)

    def _done(self, logit: torch.Tensor, uniform: torch.Tensor | None) -> torch.Tensor:
        """Done (B,) bool from the done logit (B,): logit > 0, or uniform (B,) < sigmoid(logit) when sampled."""
        if self.settings.done_mode == "logit":
            return logit > 0
        if uniform is None:
            raise ValueError("done_mode 'sample' needs the done uniforms in the noise (see draw_noise)")
        return uniform < torch.sigmoid(logit)

    def rollout(self, params: np.ndarray | torch.Tensor, seeds: np.ndarray) -> np.ndarray:
        """Returns (N,) float64 of one dream per row of params (N, D), from episode seeds (N,); adds their lengths to
        ``dream_steps``.

        :raises ValueError: reward_mode "survival" with an M without done head (every return would be max_steps).
        """
        if self.settings.reward_mode == "survival" and not self.m.has_done:
            raise ValueError("reward_mode 'survival' needs M with a done head: without one every dream lives "
                             "max_steps and every controller scores the same")
        result = self.record(params, seeds, keep_z=False)
        self.dream_steps += int(result.lengths.sum())
        return result.returns

    def run(self, params: np.ndarray | torch.Tensor, seeds: np.ndarray) -> np.ndarray:
        """:meth:`rollout`, under the name of the ``agents.evaluators.RolloutWorker`` protocol."""
        return self.rollout(params, seeds)

    @torch.no_grad()
    def record(self, params: np.ndarray | torch.Tensor, seeds: np.ndarray, keep_z: bool = True) -> DreamResult:
        """Dream one episode per row of params (N, D) from episode seeds (N,), all N as one batch.

        Runs until every dream has ended (checked every ``check_every`` steps, where ended dreams are dropped from
        the batch, see ``compact_below``) or ``max_steps``. With ``keep_z`` the latents z_0..z_T of every dream
        come back for :meth:`decode` (a dream's latents after its ``lengths`` steps mean nothing: they go on until
        it is dropped from the batch, then hold), and with an ensemble the members' disagreement at each step.
        """
        rows = self.controller_rows(params)
        seeds = np.asarray(seeds, np.int64).reshape(-1)
        if len(seeds) != len(rows):
            raise ValueError(f"{len(rows)} parameter rows but {len(seeds)} seeds: one seed per dream")
        distinct, shared = _distinct(seeds)
        seed_rows = None if shared is None else torch.as_tensor(shared, device=self.device)  # (N,) row of each seed
        seed, member_seed = _seeds_of(distinct, 2)
        generator = self.generator(seed)
        state = self.start(len(distinct), generator).take(seed_rows)
        masks = _take(seed_rows, self.draw_dropout_masks(len(distinct), generator))  # (B, Z + A + H) or None
        member = _take(seed_rows, self.draw_members(len(distinct), self.generator(member_seed)))  # (B,) or None
        dreams = torch.arange(len(seeds), device=self.device)  # (B,) the dream of each stepped row
        noise_rows = seed_rows  # (B,) each stepped row's noise among the distinct seeds'; None: row n is seed n
        alive = torch.ones(len(seeds), dtype=torch.bool, device=self.device)  # (B,)
        returns = torch.zeros(len(seeds), device=self.device)  # (N,)
        lengths = torch.zeros(len(seeds), dtype=torch.int64, device=self.device)  # (N,)
        trace, disagreements = [state.z], []
        for t in range(self.settings.max_steps):
            if t % self.settings.check_every == 0 and t:
                live = int(alive.sum())  # host sync
                if live == 0:
                    break
                if live < self.settings.compact_below * len(alive):  # drop the ended dreams
                    keep = alive.nonzero().squeeze(1)  # (B',)
                    rows, dreams, alive, state = rows[keep], dreams[keep], alive[keep], state.take(keep)
                    masks, member = _take(keep, masks), _take(keep, member)
                    noise_rows = dreams if seed_rows is None else seed_rows[dreams]
            noise = self.draw_noise(len(distinct), generator)  # every seed's, whichever dreams are alive
            step = self._act_and_step(rows, state, DreamNoise(*(_take(noise_rows, n) for n in noise)), masks, member)
            returns.index_add_(0, dreams, step.reward * alive)
            lengths.index_add_(0, dreams, alive.long())
            alive.logical_and_(~step.done)
            state = step.state
            if keep_z:
                trace.append(trace[-1].index_copy(0, dreams, state.z))
                if step.disagreement is not None:
                    disagreements.append(torch.full_like(returns, math.nan).index_copy_(0, dreams, step.disagreement))
        z = torch.stack(trace, dim=1).cpu().numpy() if keep_z else None  # (N, T + 1, Z)
        steps = lengths.cpu().numpy()
        disagreement = None
        if disagreements:
            disagreement = torch.stack(disagreements, dim=1).cpu().numpy()  # (N, T)
            disagreement[np.arange(disagreement.shape[1]) >= steps[:, None]] = np.nan  # past each dream's end
        return DreamResult(returns.double().cpu().numpy(), steps, z, disagreement)

    def _act_and_step(self, rows: ControllerRows, state: DreamState, noise: DreamNoise,
                      masks: torch.Tensor | None, member: torch.Tensor | None) -> DreamStep:
        """:meth:`act` then :meth:`step` for B dreams, in row chunks of ``cpu_chunk`` dreams on the CPU."""
        size = self.settings.cpu_chunk if self.device.type == "cpu" else len(state.z)
        if len(state.z) <= size:
            return self.step(state, self.act(rows, state), noise, masks, member)
        steps = []
        for start in range(0, len(state.z), size):
            chunk = slice(start, start + size)
            part = state.part(chunk)
            part_noise = DreamNoise(*(None if t is None else t[chunk] for t in noise))
            part_masks, part_member = (None if t is None else t[chunk] for t in (masks, member))
            steps.append(self.step(part, self.act(rows[chunk], part), part_noise, part_masks, part_member))
        disagreement = None if steps[0].disagreement is None else torch.cat([s.disagreement for s in steps])
        return DreamStep(DreamState.cat([s.state for s in steps]), torch.cat([s.reward for s in steps]),
                         torch.cat([s.done for s in steps]), disagreement)

    @torch.no_grad()
    def decode(self, z: np.ndarray | torch.Tensor) -> np.ndarray:
        """Frames (T, 64, 64, C) uint8 drawn by V's decoder from latents z (T, Z)."""
        if self.vae is None:
            raise ValueError("decoding dreams needs V: build the simulator with a vae (vae_path in the spec)")
        latents = torch.as_tensor(z, dtype=torch.float32, device=self.device)  # (T, Z)
        frames = self.vae.decode(latents)  # (T, C, 64, 64) in [0, 1]
        return (frames * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # (T, 64, 64, C)


@dataclass(frozen=True)
class DreamSimulatorSpec:
    """A picklable factory of :class:`DreamSimulator` (Ray builds the simulator inside each actor)."""

    mdnrnn_path: Path
    latents_folder: Path
    vae_path: Path | None = None
    """V: draws the dreams, and the start latents must be its (refused otherwise); None: neither."""
    settings: DreamSettings = field(default_factory=DreamSettings)
    device: DeviceName = "auto"
    """Where the simulator runs, as the ``device`` key."""
    max_start_episodes: int | None = None
    """``dream.start_episodes``."""
    member_paths: tuple[Path, ...] = ()
    """The checkpoints of an ensemble's members 1, 2, ... (``mdnrnn_path`` is member 0); empty: one M."""

    def __call__(self) -> DreamSimulator:
        device = resolve_device(self.device)
        mdnrnns = load_members((self.mdnrnn_path, *self.member_paths), device)
        vae = None if self.vae_path is None else load_vae(self.vae_path, device)
        starts = load_start_latents(self.latents_folder, self.max_start_episodes, self.vae_path)
        return DreamSimulator(mdnrnns, starts, self.settings, vae, device)


def load_members(paths: Sequence[Path], device: torch.device | str = "cpu") -> list[MDNRNN]:
    """The Ms of an ensemble's checkpoints (member 0 first).

    :raises ValueError: a member's constructor arguments differ from member 0's (one line: the file, what differs,
        what to do).
    """
    first = read_model_args(paths[0], "mdnrnn")
    for path in paths[1:]:
        args = read_model_args(path, "mdnrnn")
        differ = [f"{k} {args.get(k)!r} vs {first.get(k)!r}" for k in sorted({*args, *first})
                  if args.get(k) != first.get(k)]
        if differ:
            raise ValueError(f"{path} is an M of another shape than {paths[0]} ({', '.join(differ)}): an ensemble's "
                             "members share one shape; move it away and train it again with this run's config "
                             "(`worldmodels train-mdnrnn` with mdnrnn.members), or dream with fewer (dream.members)")
    return [load_mdnrnn(path, device) for path in paths]
