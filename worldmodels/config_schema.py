"""The schema of a run's configuration: one dataclass per section, each field typed, bounded and documented.

Every field has a default and an attribute docstring (the string below it); ``worldmodels config --help`` lists
them (:mod:`worldmodels.config_help`). A field whose value is one of a few names is typed with a ``Literal`` defined
here once (or, for a choice ``rollouts`` needs, in ``rollouts``); the modules that act on the choice derive their
runtime tuples from it with ``typing.get_args``. Loading presets and overrides into these classes, and checking the
values against the types and bounds, is :mod:`worldmodels.config`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rollouts.policy_names import DataPolicyName

DeviceName = Literal["auto", "cpu", "cuda"]
ControllerInputsName = Literal["z", "zh", "zch"]
ControllerEnvName = Literal["real", "dream", "dream_then_real"]
DreamRewardName = Literal["head", "survival"]
DreamDoneName = Literal["logit", "sample"]
DreamEnsembleName = Literal["member", "pessimistic"]
BaselineObsName = Literal["pixels", "latent", "dream"]
BaselineLatentName = Literal["mu", "sample"]
EncoderName = Literal["mnist", "alexnet", "vgg", "inception", "resnet", "nature"]
VAEEncoderName = Literal["published", EncoderName]
FrameTaskName = Literal["action", "reward"]
FrameInputName = Literal["frame", "transition"]
GANVariantName = Literal["dcgan", "wgan", "wgan_gp"]
GANLatentSourceName = Literal["noise", "vae"]
MusicTokensName = Literal["melody", "chords"]
LRScheduleName = Literal["constant", "cosine"]
CycleGANGeneratorName = Literal["unet", "resnet"]
DtypeName = Literal["float32", "bfloat16"]
"""An arithmetic, by its torch dtype's name."""
PrecisionName = Literal["auto", DtypeName]
ResidentName = Literal[True, False, "auto"]


def positive(default: Any) -> Any:
    """A numeric field that must be > 0 (None allowed where the type allows it)."""
    return field(default=default, metadata={"bound": (0, False)})


def non_negative(default: Any) -> Any:
    """A numeric field that must be >= 0."""
    return field(default=default, metadata={"bound": (0, True)})


@dataclass
class EnvConfig:
    """The environment rollouts are gathered from."""

    id: str = "worldmodels/CarRacing-v0"
    """Registered Gymnasium id; the ``worldmodels/`` ids already apply the frame pipeline (64x64 uint8)."""
    max_episode_steps: int | None = positive(None)
    """Episode cap in steps; null keeps the id's own (1000 for CarRacing)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for ``gymnasium.make``, e.g. ``{invert_colors: true}``."""
    translator: str | None = None
    """A ``train-cyclegan`` checkpoint whose B->A generator maps every frame the controller sees (e.g. randomised
    colours -> normal ones, with ``options: {domain_randomize: true}``); null: frames as the env gives them."""


@dataclass
class CollectConfig:
    """Rollout collection with Ray workers."""

    episodes: int = non_negative(10_000)
    """Number of episodes to gather (the paper: 10,000)."""
    policy: DataPolicyName = "random_controller"
    """Data policy: a random controller per episode (the authors'), a Brownian walk, or uniform noise."""
    brownian_sigma: float = positive(0.1)
    """Step size of the Brownian walk, as a fraction of each action dimension's range per step."""
    controller_weight_std: float = positive(0.01)
    """Random controller: weights drawn N(0, s^2) with s ~ U(0, this) per episode (the authors' 0.01)."""
    max_repeat: int = positive(10)
    """repeated_random: each action is held for 1 to this many steps (published: 10). Longer holds reach
    states a short random walk rarely does (Doom TakeCover: pressed against a wall)."""
    seed: int = 0
    """Episode i uses seed + i for the track and for the policy's noise."""
    num_workers: int | None = positive(None)
    """Ray actors stepping environments; null uses every CPU Ray offers."""
    max_retries: int = non_negative(3)
    """Attempts per episode after its worker died or raised, before the run stops with the error."""


@dataclass
class RayConfig:
    """Where the Ray workers run."""

    address: str | None = None
    """An existing cluster (``ray://host:10001`` or ``auto``); null starts a local one (RAY_ADDRESS also works)."""
    num_cpus: int | None = positive(None)
    """CPUs for a local Ray; null uses every core of this machine."""
    ship_code: bool = True
    """On joining a cluster, send this project's packages and pip dependencies to its nodes (Ray's runtime_env);
    false for clusters whose image has this package installed, at the driver's version."""
    max_stall_s: float = positive(1800.0)
    """Seconds the driver waits for the next result from its Ray workers before it gives up (a hung worker, a lost
    cluster). One result is one worker's share of a generation or an evaluation (100 CarRacing tracks on 2 workers:
    50 full episodes each), so raise it when workers share their cores with other work."""


@dataclass
class VAEConfig:
    """V: the convolutional VAE and its training."""

    z_size: int = positive(32)
    """Latent size (32 CarRacing, 64 Doom)."""
    encoder: VAEEncoderName = "published"
    """V's encoder trunk: the paper's four 4x4 convolutions, or a component CNN by name (its 1024 features
    feed mu and logvar; the decoder stays the paper's)."""
    kl_tolerance: float = non_negative(0.5)
    """Free bits: the KL term is floored at kl_tolerance * z_size nats per sample."""
    learning_rate: float = positive(1e-4)
    """Adam's learning rate."""
    batch_size: int = positive(100)
    """Frames per optimiser step."""
    epochs: int = non_negative(10)
    """Passes over every stored frame (the authors' code: 10)."""
    max_steps: int | None = positive(None)
    """Stop after this many optimiser steps even if epochs remain (None: train every epoch). Frames are
    drawn from all episodes in shuffled order, so a cap trains V on a random subset of the data."""
    checkpoint_every: int = positive(1000)
    """Optimiser steps between checkpoints (one is also written at the end)."""
    buffer_episodes: int = positive(8)
    """Episodes held in memory at once for shuffling when streaming; memory does not grow with the data set."""
    loader_workers: int = non_negative(0)
    """DataLoader worker processes decoding episode files when streaming (0 decodes in the training process)."""
    precision: PrecisionName = "auto"
    """Arithmetic of the forward pass: bfloat16 autocast (the loss stays float32) or float32; auto is bfloat16 on
    CUDA and float32 on the CPU. bfloat16 on the CPU needs bf16 instructions (AVX-512 BF16 or AMX)."""
    resident: ResidentName = "auto"
    """Hold every frame on the device as uint8 (loaded once; each epoch permutes the whole data set) instead
    of streaming ``buffer_episodes`` at a time from disk. auto: resident on CUDA when the frames fit in
    ``worldmodels.training.RESIDENT_FRACTION`` of the GPU's free memory, streaming on the CPU."""
    mixed_precision: bool | None = None
    """Older configs' name for precision: true reads as precision auto, false as float32 (the loader then sets it
    back to null); null otherwise."""


@dataclass
class MDNRNNConfig:
    """M: the mixture-density LSTM and its training."""

    hidden_size: int = positive(256)
    """LSTM units (256 CarRacing, 512 Doom)."""
    num_mixtures: int = positive(5)
    """Gaussians per latent dimension."""
    reward_head: bool = False
    """Add a head predicting each step's reward (MSE): the dream's reward with dream.reward_mode "head"."""
    done_head: bool = False
    """Add a head predicting the episode's end (a logit, BCE): dreams end by it (Doom)."""
    dropout: float = non_negative(0.0)
    """Dropout rate p in [0, 1) of the LSTM's gate inputs z_t and h_{t-1}, one mask per training sequence (as in
    Dropout's Dream Land, which used 0.05; the action is never dropped); 0: none, as published. M runs without it in
    the real env; dreams use it per episode with dream.dropout_mask."""
    done_pos_weight: float = positive(1.0)
    """Weight of terminal steps in the done BCE (10 for Doom)."""
    reward_weight: float = non_negative(1.0)
    """Weight of the reward MSE in the loss: z NLL + reward_weight * reward MSE + done BCE."""
    learning_rate: float = positive(1e-3)
    """Adam's learning rate."""
    grad_clip: float = positive(1.0)
    """Gradients are rescaled to at most this global L2 norm before each step."""
    batch_size: int = positive(100)
    """Sequences per optimiser step."""
    seq_len: int = positive(1000)
    """Steps per training sequence; shorter episode tails are padded and masked."""
    steps: int = non_negative(4000)
    """Optimiser steps (the authors' code: 4000)."""
    checkpoint_every: int = positive(500)
    """Optimiser steps between checkpoints (one is also written at the end)."""
    buffer_episodes: int = positive(32)
    """Episodes held in memory at once for shuffling when streaming."""
    precision: PrecisionName = "auto"
    """As vae.precision: bfloat16 autocast of the forward pass (loss in float32) or float32; auto is bfloat16
    on CUDA, float32 on the CPU."""
    resident: ResidentName = "auto"
    """As vae.resident, for the latents (float32 mu and logvar), actions, rewards and done flags."""
    members: int = positive(1)
    """Ms trained as an ensemble, one after the other: member 0 is RUN/mdnrnn.pt (seed 0), member k >= 1 is
    RUN/mdnrnn_members/k/mdnrnn.pt (seed k: its initialisation, latent sampling and data order); 1: one M, as
    published. The dream steps the members together (dream.ensemble, dream.members)."""
    bootstrap: bool = False
    """Train each member k >= 1 on a bootstrap resample of the episodes (as many draws as episodes, with replacement,
    from seed k); member 0 always trains on every episode. False: every member on every episode."""


@dataclass
class ControllerConfig:
    """C: the linear tanh controller."""

    inputs: ControllerInputsName = "zh"
    """What C reads: "zh" = [z, h] (the full world model, CarRacing), "zch" = [z, c, h] (Doom as published; M's cell
    state c is unbounded, so CMA-ES from small weights starts saturated: "zh" searched better on Doom here),
    "z" = V only."""
    bias: bool = True
    """Learn a bias b in a = tanh(W x + b) (CarRacing: yes; the Doom controller has none)."""
    hidden_units: int = non_negative(0)
    """Tanh units of a hidden layer between x and the action; 0 is the published linear C, 40 the paper's
    "V only, with a hidden layer" ablation (preset carracing-z-hidden)."""
    train_in: ControllerEnvName = "real"
    """Where CMA-ES evaluates candidates by default: the real env (CarRacing, as published), M's dream (Doom), or
    "dream_then_real": the dream for the first ``cmaes.dream_generations`` generations, then the real env, one search
    going on (M needs a done head, and a reward head with dream.reward_mode "head"; agents/controller_training.py)."""


@dataclass
class CMAESConfig:
    """Evolving C with CMA-ES (pycma), its population evaluated by Ray workers."""

    popsize: int = positive(64)
    """Candidates per generation."""
    rollouts: int = positive(16)
    """Episodes per candidate; its fitness is their mean return minus the L2 penalty."""
    sigma0: float = positive(0.1)
    """Initial step size."""
    init_params: str | None = None
    """A controller ``.npy`` (this run's size: a run's ``controller/mean.npy``, a shipped agent's) the search starts
    from; null: the zero vector (published). A search's state records where it started, so a resumed run refuses
    another starting point."""
    l2_coef: float = non_negative(0.01)
    """fitness = mean return - l2_coef * mean(params^2) (the authors' compute_weight_decay)."""
    generations: int = non_negative(1800)
    """Generations to run in total (a resumed run continues up to this)."""
    dream_generations: int = non_negative(0)
    """With controller.train_in "dream_then_real": generations 0 to this - 1 evaluate their candidates in M's dream, the
    later ones (up to ``generations``) in the real env; the count is of the whole search, so later rounds of
    ``iterate`` run in the real env. Other train_in values ignore it."""
    seed: int = non_negative(0)
    """Seeds pycma (with seed + 1, as pycma reads 0 as "from the clock") and every generation's episode seeds."""
    eval_every: int = positive(25)
    """Generations between evaluations of the mean solution."""
    eval_episodes: int = positive(1024)
    """Episodes of each evaluation of the mean solution (published: 1024)."""
    num_workers: int | None = positive(None)
    """Ray actors running rollouts; null uses every CPU Ray offers."""
    envs_per_worker: int = positive(16)
    """Environments each actor steps in lock-step, so V and M run one batch per step; an env whose episode ends
    starts the actor's next waiting one. Returns are bit for bit the same whatever this is; speed is not: a
    CarRacing generation on the low-resolution renderer ran 1.5 times faster with 16 envs than with 4
    (``benchmarks/lockstep_width.py``)."""
    max_retries: int = non_negative(3)
    """Attempts per chunk of rollouts after its worker died, before the run stops with the error."""


@dataclass
class DreamConfig:
    """M as the environment: controllers evolved in B dreams stepped as one batch (``worldmodels/dream.py``; a
    simulator runs with these values resolved, :class:`worldmodels.dream.DreamSettings`)."""

    temperature: float = positive(1.0)
    """tau: M's mixture logits / tau, its Gaussian noise * sqrt(tau) (Doom: 1.15 in the paper, 1.25 in its code)."""
    max_steps: int | None = positive(None)
    """Steps after which a dream is cut; null: the real env's episode cap (``env.max_episode_steps``, else the env
    id's own: CarRacing 1000, Doom TakeCover 2100)."""
    reward_mode: DreamRewardName = "head"
    """"head": M's reward head; "survival": +1 per step alive (Doom TakeCover; needs M's done head)."""
    done_mode: DreamDoneName = "logit"
    """"logit": a dream ends when M's done logit > 0 (published); "sample": with probability sigmoid(logit)."""
    start_episodes: int | None = positive(None)
    """Dreams start from the first frames of at most this many stored episodes (null: all)."""
    precision: Literal["float32", "bfloat16"] = "float32"
    """M's matrix products in the dream: float32 (published) or bfloat16 (the cell state, the mixture draw and the
    returns stay float32): about 1.5-2x the float32 rate; on the CPU it needs bf16 instructions (AVX-512 BF16 or
    AMX)."""
    dropout_mask: bool = False
    """Dropout dreams (Wellmer and Kwok, "Dropout's Dream Land", 2021): each dream draws one dropout mask of M's gate
    inputs at its start and holds it for the episode, so each dream runs its own M (needs mdnrnn.dropout > 0);
    false: M without dropout, as published."""
    members: int | None = positive(None)
    """How many of the run's trained M members the dream steps (members 0..n-1, see mdnrnn.members); null: every
    member whose checkpoint is in the run folder (member 0 and each RUN/mdnrnn_members/k/ in a row). The controller
    always reads member 0's z, h and c."""
    ensemble: DreamEnsembleName = "member"
    """With 2 or more members: "member": each dream follows one member, drawn per episode from its seed (the next z,
    the reward and the end are that member's); "pessimistic": the next z from the followed member, but the dream ends
    where any member predicts the end, and its reward (reward_mode "head") is the lowest of the members'."""
    disagreement_limit: float | None = non_negative(None)
    """With ensemble "pessimistic": a dream also ends at a step where the members' disagreement exceeds this (the mean
    over z's dimensions of the standard deviation across members of each member's mixture mean, in z units); null:
    never for disagreement."""


@dataclass
class EvaluateConfig:
    """Reporting a trained controller: mean +- std over many episodes."""

    episodes: int = positive(100)
    """Episodes, each on its own seed (published: 100 random tracks)."""
    seed: int = 1_000_000
    """Episode i uses seed + i; CMA-ES never trains on these seeds (``worldmodels.seeds.held_out_seeds``)."""


PUBLISHED_TEMPERATURES: tuple[float, ...] = (0.1, 0.5, 1.0, 1.15, 1.3)
"""The temperatures of the paper's Doom table (``worldmodels temperature-sweep``'s default)."""
CALIBRATION_SCALES: tuple[float, ...] = (0.1, 1.0)
"""Std of the random controllers' weights that ``worldmodels calibrate`` scores by default."""


@dataclass
class TrustConfig:
    """Whether M's dream can be trusted (``agents/calibration.py``): fixed controllers (zeros, and random weights
    of std ``CALIBRATION_SCALES``) scored on the same seeds in the dream and in the real env, summed up as the rank
    correlation of their dream and real means and the largest dream - real gap. ``worldmodels calibrate`` always
    writes the summary; these thresholds judge it there too."""

    before_dream: bool = True
    """``worldmodels run`` scores the fixed controllers and the probe search's mean (``probe_generations``) and prints
    the summary before CMA-ES evolves C in the dream (``controller.train_in`` dream, or dream_then_real before its
    dream generations are done; each round of ``iterate``), warning when the dream is not to be trusted; it never
    stops the run. A summary of the same V, M, start latents and settings is reused. Cost: ``(1 + 2 random_per_scale
    + 1) x episodes`` episodes in each env (no + 1 without a probe; one more with a probe that starts from
    ``cmaes.init_params``, which is scored too) and ``probe_generations`` generations in the dream (doom-tiny: 15 s
    on 2 busy CPU cores)."""
    episodes: int = positive(4)
    """Episodes per controller in each env, on seeds ``trust.seed`` and up (``calibrate --episodes`` for the
    command)."""
    seed: int = non_negative(2_000_000)
    """Calibration episode i (``run``'s trust summary and ``calibrate``) uses seed + i: apart from the evaluation
    seeds (``evaluate.seed`` and up), so that settings chosen by calibration never look at the episodes that score
    the final controller."""
    random_per_scale: int = non_negative(2)
    """Random controllers per weight scale (``calibrate --random`` for the command)."""
    probe_generations: int = non_negative(10)
    """Besides the fixed controllers, score the mean solution of a CMA-ES search run this many generations in the
    dream (``cmaes`` starting point, population, rollouts, sigma0 and seed; 0: none). Fixed controllers show whether the
    dream orders them as the real env does, not whether a search can climb M's errors: on CarRacing a rank
    correlation of 0.54 passed while a dream search's mean scored about 1,040 in the dream and -85 for real after 5
    generations; with another M, 558 and -83 after 10 (docs/results.md). The probe's gap shows such an exploit
    before a whole dream search is spent on it."""
    min_rank_correlation: float = 0.5
    """Below this Spearman rank correlation of dream and real means the dream is not trusted: it orders controllers
    unlike the real env (1 means the same order, 0 none, -1 reversed)."""
    max_gap_fraction: float = non_negative(1.0)
    """The dream is not trusted where some controller's dream mean exceeds its real mean by more than this times the
    real spread (best minus worst real mean): M flatters it more than the controllers differ for real."""
    min_probe_transfer: float = 0.25
    """The dream is not trusted where the probe search's mean gained over its starting point (zeros, or
    ``cmaes.init_params``, scored as a row of its own) less in the real env than this fraction of what it gained in the
    dream: the search climbed M's errors, not the game. Judged only where the dream gain is > 0; -.inf turns it off.
    The gap threshold is relative to the real spread, so a strong controller in the table (a shipped agent's, 783 for
    real) hides an exploit there; the probe's own gains do not depend on the other rows. Measured on whole dream
    searches from zeros (docs/results.md): CarRacing round 1's M, about +870 in the dream and -54 for real (exploited);
    Doom round 3's M, +1,349 and +599 (0.44: flattered, yet the search found a 753-point controller); the shipped
    Doom agent's M (10,000 episodes, C on [z, h]), +680 and +672."""


@dataclass
class IterateConfig:
    """The paper's iterative procedure (``worldmodels run --iterations N``): gather episodes with the current
    controller, train M further (and optionally V) on old plus new episodes, evolve C further; repeat."""

    iterations: int = positive(1)
    """Rounds in all; 1 is the published single pass (random data, then V, M and C once). Round k >= 2 writes
    RUN/iterations/k/ and adds ``vae.epochs`` epochs of V (with ``retrain_vae``), ``mdnrnn.steps`` steps of M
    and ``cmaes.generations`` generations of C to the previous round's."""
    episodes: int | None = positive(None)
    """Episodes gathered with the current controller per round (null: ``collect.episodes``)."""
    retrain_vae: bool = False
    """Train V further on old plus new frames each round (then every episode is encoded again)."""
    action_noise: float = non_negative(0.0)
    """Std of Gaussian noise added to the controller's actions while gathering (0: as C acts)."""
    envs_per_worker: int = positive(8)
    """Environments each collect worker steps in lock-step while gathering with the controller, so V and M run
    one batch per step (fewer when there are too few episodes left for a full group per worker); an episode is
    bit for bit the same whatever this is. A worker holds its group's frames until the group ends (8 CarRacing
    episodes of 1,000 steps: about 100 MB)."""


@dataclass
class BaselineConfig:
    """Stable-Baselines3 agents as baselines (``worldmodels baseline``, ``agents/sb3.py``)."""

    algo: str = "PPO"
    """An algorithm of stable_baselines3's namespace, by name in any case: PPO, A2C, SAC, TD3, DDPG."""
    obs: BaselineObsName = "latent"
    """"pixels": CnnPolicy (NatureCNN) on the 64x64 frames; "latent": MlpPolicy on the controller's input
    ([z, h] for controller.inputs zh) from V and M in the real env; "dream": MlpPolicy trained on the same input in
    M's dream, evaluated on the real env's."""
    timesteps: int = positive(4_000_000)
    """Training steps: real-env steps for pixels and latent, dream steps for dream (rl-zoo3's CarRacing PPO: 4M)."""
    n_envs: int = positive(8)
    """Environments stepped together while training (rl-zoo3's CarRacing PPO: 8)."""
    latent: BaselineLatentName = "mu"
    """The z of the latent observation: V's posterior mean "mu", or a "sample" mu + sigma * eps."""
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the algorithm, e.g. ``{n_steps: 256, learning_rate: 1.0e-4}`` (SB3's defaults)."""
    seed: int = 0
    """Seeds the algorithm; training env i starts from seed + i (evaluation uses evaluate.seed + i)."""


@dataclass
class CNNConfig:
    """A CNN encoder trained on a supervised task made from rollouts (``worldmodels train-cnn``)."""

    encoder: EncoderName = "resnet"
    """The encoder family (``worldmodels/components/cnn.py``): the books' MNIST convnet, AlexNet-, VGG-,
    Inception- or ResNet-style networks, or the Nature-DQN encoder."""
    features_dim: int = positive(256)
    """Size of the encoder's output features (a linear head maps them to the task's outputs)."""
    task: FrameTaskName = "action"
    """"action": regress the action taken (MSE, scored by R^2); "reward": classify the sign of the reward that
    followed (negative / zero / positive; cross-entropy, scored by accuracy)."""
    input: FrameInputName = "transition"
    """"frame": the frame the action was taken in; "transition": that frame and the next, stacked on channels
    (what changed is visible, so the action and reward of random-policy data can be read off)."""
    heldout_fraction: float = positive(0.2)
    """Share of the episodes held out for scoring (whole episodes, at least one), chosen by the seed."""
    learning_rate: float = positive(1e-3)
    """Adam's learning rate."""
    batch_size: int = positive(64)
    """Steps (a frame, or two with input "transition") per optimiser step."""
    epochs: int = non_negative(10)
    """Passes over the training episodes' steps; the held-out episodes are scored after each."""
    checkpoint_every: int = positive(1000)
    """Optimiser steps between checkpoints (one is also written at the end)."""
    buffer_episodes: int = positive(8)
    """Episodes held in memory at once for shuffling."""
    loader_workers: int = non_negative(0)
    """DataLoader worker processes decoding episode files."""


@dataclass
class GANConfig:
    """A GAN trained on rollout frames (``worldmodels train-gan``); null settings take the variant's book values."""

    variant: GANVariantName = "wgan_gp"
    """"dcgan" (BCE, RMSprop critic 8e-4 / generator 4e-4), "wgan" (weights clipped to +-0.01, 5 critic updates
    per generator update, RMSprop 5e-5) or "wgan_gp" (gradient penalty 10, 5 critic updates, Adam 2e-4, beta1 0.5)."""
    latent_size: int = positive(100)
    """Size of the generator's input noise z (with latent_source "vae": V's z_size, whatever this says)."""
    latent_source: GANLatentSourceName = "noise"
    """"noise": the generator reads z ~ N(0, I), as the books train it; "vae": it reads V's z of real frames
    (sampled from V's posterior; V from ``train-gan --vae``, default RUN/vae.pt) and also learns to redraw those
    frames (``reconstruction_weight``), so it can draw M's dreams in V's decoder's place (``dream --renderer gan``)."""
    reconstruction_weight: float = non_negative(10.0)
    """With latent_source "vae": weight of the L1 distance (per pixel, in [-1, 1] units) between the generator's
    frame and the frame V encoded, added to the generator's adversarial loss."""
    width: int = positive(64)
    """Base channel count: the critic's convolutions have 1, 2, 4, 8 times it (DCGAN: 1, 1, 2, 2), the
    generator's 8, 4, 2, 1."""
    batch_size: int = positive(64)
    """Real frames per critic update (and fakes per generator update)."""
    steps: int = non_negative(10_000)
    """Generator updates in total (a resumed run continues up to this)."""
    n_critic: int | None = positive(None)
    """Critic updates per generator update, each on its own batch; null: 1 for dcgan, 5 for wgan and wgan_gp."""
    learning_rate: float | None = positive(None)
    """One learning rate for both networks; null: the variant's (see ``variant``)."""
    clip_value: float | None = positive(None)
    """Clip the critic's weights to +-this after every update; null: 0.01 for wgan, no clipping otherwise."""
    gp_weight: float | None = non_negative(None)
    """Weight of the gradient penalty mean((1 - ||grad||)^2); null: 10 for wgan_gp, none otherwise."""
    sample_every: int = positive(500)
    """Generator updates between sample grids (``RUN/gan_samples/step_NNNNNNN.png``; one is also written at the end)."""
    checkpoint_every: int = positive(500)
    """Generator updates between checkpoints (one is also written at the end)."""
    buffer_episodes: int = positive(8)
    """Episodes held in memory at once for shuffling."""
    loader_workers: int = non_negative(0)
    """DataLoader worker processes decoding episode files."""


@dataclass
class CycleGANConfig:
    """A CycleGAN translating frames between two unpaired rollout folders A and B (``worldmodels train-cyclegan``)."""

    generator: CycleGANGeneratorName = "unet"
    """"unet": the book's U-Net (4 down / 3 up with skips, instance norm); "resnet": the paper's ResNet generator
    (``resnet_blocks`` residual blocks, reflection padding)."""
    width: int = positive(32)
    """Base channel count d of the generators and the PatchGAN discriminators (d, 2d, 4d, 8d)."""
    resnet_blocks: int = positive(9)
    """Residual blocks of the ResNet generator."""
    validity_weight: float = non_negative(1.0)
    """Weight of the adversarial (MSE) loss of the generators."""
    cycle_weight: float = non_negative(10.0)
    """Weight of the cycle-reconstruction L1 loss (A->B->A and B->A->B)."""
    identity_weight: float = non_negative(2.0)
    """Weight of the identity L1 loss (G_BA(a) vs a, G_AB(b) vs b); the book uses 5 for painting styles."""
    learning_rate: float = positive(2e-4)
    """Adam's learning rate for all four networks (betas 0.5, 0.999)."""
    pool_size: int = non_negative(50)
    """Past fakes per domain the discriminators are also shown (0: only the current batch)."""
    batch_size: int = positive(1)
    """Frames of each domain per step (the book: 1)."""
    steps: int = non_negative(10_000)
    """Training steps in total (a resumed run continues up to this)."""
    sample_every: int = positive(500)
    """Steps between translation grids (``RUN/cyclegan_samples/step_NNNNNNN.png``; one is also written at the end)."""
    checkpoint_every: int = positive(500)
    """Steps between checkpoints (one is also written at the end)."""
    buffer_episodes: int = positive(8)
    """Episodes of each domain held in memory at once for shuffling."""
    loader_workers: int = non_negative(0)
    """DataLoader worker processes decoding episode files, per domain."""


@dataclass
class TextConfig:
    """Chollet's character LSTM trained on a text file (``worldmodels train-text``); defaults are the book's."""

    maxlen: int = positive(60)
    """Characters in a training window; generation conditions on the last this many."""
    window_step: int = positive(3)
    """Characters between the starts of consecutive training windows."""
    hidden_size: int = positive(128)
    """LSTM units."""
    lowercase: bool = True
    """Lower-case the text before training (the book does), and every seed text before generating."""
    learning_rate: float = positive(0.01)
    """RMSprop's learning rate (Keras' rho 0.9, epsilon 1e-7)."""
    batch_size: int = positive(128)
    """Windows per optimiser step."""
    epochs: int = non_negative(60)
    """Passes over every window of the text (the book: 60 one-epoch iterations)."""
    steps: int | None = positive(None)
    """Stop after this many optimiser steps if that comes before ``epochs`` (null: epochs alone bound the run)."""
    checkpoint_every: int = positive(500)
    """Optimiser steps between checkpoints (one is also written at the end)."""
    sample_every: int = positive(500)
    """Optimiser steps between sample lines in ``RUN/text_samples.csv`` (one is also written at the end)."""
    sample_length: int = positive(100)
    """Characters of each sample line."""
    sample_temperature: float = positive(0.5)
    """Sampling temperature of the sample lines."""


@dataclass
class MusicConfig:
    """Music data, generation and the composition env (``worldmodels music``, ``worldmodels/music/``)."""

    folder: str | None = None
    """A folder of MIDI (.mid, .midi) or MusicXML (.xml, .mxl, .musicxml) files, read recursively; null: the Bach
    chorales music21 ships (371, no download)."""
    limit: int | None = positive(None)
    """Read at most this many pieces (the chorales in music21's order, files in name order); null: all."""
    tokens: MusicTokensName = "melody"
    """The LSTM's token sequences: "melody", the first part (a chorale's soprano), one note or rest per token; or
    "chords", all parts sounding together (the book's chordify)."""
    temperature: float = positive(0.5)
    """Sampling temperature of the LSTM: probabilities ~ exp(log p / T) (the book: 0.5)."""
    bars: int = positive(8)
    """Bars of four quarter notes that ``music generate`` writes (MuseGAN: rounded up to whole samples)."""
    seed: int = 0
    """Seeds initialisation, data order and sampling."""
    episode_bars: int = positive(4)
    """Bars of four quarter notes per episode of the composition env."""
    key: str = "C major"
    """The key of the env's stay-in-key rule, e.g. "G major", "F# minor", "B- major"."""
    likelihood_weight: float = non_negative(1.0)
    """Env reward weight of the LSTM's log-likelihood of the note and duration written."""
    key_weight: float = non_negative(1.0)
    """Env penalty weight for pitches outside ``key``."""
    repeat_weight: float = non_negative(1.0)
    """Env penalty for repeating one note more than ``max_repeats`` times in a row."""
    max_repeats: int = positive(3)
    """Consecutive repeats of one note allowed without penalty."""
    leap_weight: float = non_negative(1.0)
    """Env reward (+) or penalty (-) for resolving a leap of more than a fifth by a step back, or not."""


@dataclass
class MusicLSTMConfig:
    """The book's LSTM with attention over note and duration tokens (``worldmodels music train --model lstm``)."""

    seq_len: int = positive(32)
    """Tokens of history the LSTM reads to predict the next one."""
    embedding_size: int = positive(100)
    """Size of each of the two embeddings (notes, durations), concatenated."""
    hidden_size: int = positive(256)
    """Units of each stacked LSTM."""
    layers: int = positive(2)
    """Stacked LSTMs."""
    learning_rate: float = positive(1e-3)
    """RMSprop's learning rate at step 0 (RMSprop with Keras's rho 0.9 and epsilon 1e-7, as the book trains; torch's
    own rho 0.99 lets the step grow tenfold when the gradient jumps after a quiet stretch)."""
    lr_schedule: LRScheduleName = "cosine"
    """How the learning rate moves over the ``steps`` of the run: "cosine", from learning_rate down half a cosine
    to 0 at the last step, so that training settles instead of bouncing out of the minimum it reached (RMSprop's
    steps do not shrink with the gradient); "constant", the book's. Raising ``steps`` to go on with a run
    stretches the cosine over the new total, so the rate rises again (a warm restart)."""
    grad_clip: float | None = positive(1.0)
    """Gradients are rescaled to at most this global L2 norm before each step; null: not clipped (the book's)."""
    batch_size: int = positive(32)
    """Windows per optimiser step."""
    steps: int = non_negative(5000)
    """Optimiser steps in total (a resumed run continues up to this)."""
    checkpoint_every: int = positive(500)
    """Optimiser steps between checkpoints (one is also written at the end)."""


@dataclass
class MuseGANConfig:
    """MuseGAN on four-voice piano-rolls (``worldmodels music train --model musegan``); defaults are the book's."""

    bars: int = positive(2)
    """Bars of 16 sixteenth-note steps per sample (at least 2)."""
    pitches: int = positive(84)
    """Pitch rows of the piano-roll, a multiple of 12, from the data's lowest pitch up; must cover its range."""
    latent_size: int = positive(32)
    """Size of each of the chords, style, melody and groove latents."""
    width: int = positive(256)
    """Base channel count w: bar generators dense 4w then 2w, 2w, w, w, w channels; critic w/2 (six convs), w, 2w,
    dense 4w (the book: 256)."""
    gp_weight: float = non_negative(10.0)
    """Weight of the gradient penalty mean((1 - ||grad||)^2)."""
    n_critic: int = positive(5)
    """Critic updates per generator update, each on its own batch."""
    learning_rate: float = positive(1e-3)
    """Adam's learning rate for both networks (betas 0.5, 0.9)."""
    batch_size: int = positive(64)
    """Real samples per critic update (and fakes per generator update)."""
    steps: int = non_negative(6000)
    """Generator updates in total (a resumed run continues up to this)."""
    checkpoint_every: int = positive(500)
    """Generator updates between checkpoints (one is also written at the end)."""


@dataclass
class Config:
    """A whole run: what each stage does, and where it runs."""

    preset: str = "carracing"
    """Name of the preset this configuration was built from (informational)."""
    device: DeviceName = "auto"
    """Torch device for training and inference: auto picks CUDA when present."""
    env: EnvConfig = field(default_factory=EnvConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    mdnrnn: MDNRNNConfig = field(default_factory=MDNRNNConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    cmaes: CMAESConfig = field(default_factory=CMAESConfig)
    dream: DreamConfig = field(default_factory=DreamConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    iterate: IterateConfig = field(default_factory=IterateConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    music: MusicConfig = field(default_factory=MusicConfig)
    music_lstm: MusicLSTMConfig = field(default_factory=MusicLSTMConfig)
    musegan: MuseGANConfig = field(default_factory=MuseGANConfig)
    cyclegan: CycleGANConfig = field(default_factory=CycleGANConfig)
    text: TextConfig = field(default_factory=TextConfig)
