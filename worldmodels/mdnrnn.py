"""M: the MDN-RNN that predicts the distribution of the next latent z from (z, action).

An LSTM reads [z_t, a_t] and a mixture-density head turns its hidden state into, for EACH latent
dimension, a mixture of K univariate Gaussians over z_{t+1} (Ha & Schmidhuber 2018). Optional
heads predict the reward and a done logit. With z=32, a=3, 256 hidden units and K=5 (no heads)
the model has 422,368 parameters, the paper's count.

Dropout (``dropout`` p > 0; the paper's M has none) is placed as in Dropout's Dream Land (Wellmer and Kwok 2021,
whose code builds Keras' LSTM with ``dropout`` and ``recurrent_dropout`` and leaves the action unmasked): a
variational mask (Gal and Ghahramani 2016) on the LSTM's gate inputs, z_t and the previous hidden state h_{t-1},
drawn once per sequence and held for all its steps; the action, the constant-1 bias input, the cell state and the
h the heads (and the controller) read are never masked. In training mode each sequence draws its own mask; in
eval mode there is none unless one is passed, which is how the dream runs one mask per episode
(``worldmodels.dream``).
"""

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

LSTMState = tuple[torch.Tensor, torch.Tensor]


class MDNRNNOutput(NamedTuple):
    """What `MDNRNN.forward` returns (`MDNRNN.step` drops the T axis).

    B is the batch size, T the sequence length, Z the latent size, K the mixture count, H the
    LSTM size. All mixture parameters describe z_{t+1}, one mixture per latent dimension.
    """

    log_pi: torch.Tensor  # (B, T, Z, K) log mixture weights, log_softmax over K
    mu: torch.Tensor  # (B, T, Z, K) component means
    log_sigma: torch.Tensor  # (B, T, Z, K) component log standard deviations
    reward: torch.Tensor | None  # (B, T) predicted reward, None without a reward head
    done_logit: torch.Tensor | None  # (B, T) done logit, None without a done head
    state: LSTMState  # (h, c), each (1, B, H), after the last step


class MDNRNNSample(NamedTuple):
    """One sampled step of M (see :meth:`MDNRNN.sample`)."""

    z: torch.Tensor  # (B, Z)
    reward: torch.Tensor | None  # (B,)
    done_logit: torch.Tensor | None  # (B,)
    done: torch.Tensor | None  # (B,) bool
    state: LSTMState  # (h, c), each (1, B, H)


class MDNRNNLoss(NamedTuple):
    """Scalar loss terms, each a mean over the valid (unmasked) time steps."""

    total: torch.Tensor  # z_nll + reward_weight * reward + done
    z_nll: torch.Tensor  # mixture NLL of z_{t+1}, nats per latent dimension
    reward: torch.Tensor  # squared error of the reward, zero without head or target
    done: torch.Tensor  # BCE-with-logits of done, zero without head or target


class MDNRNN(nn.Module):
    """LSTM with a per-dimension Gaussian mixture head over the next latent.

    Gate bias: the paper's parameter count assumes one bias per gate (Keras/TF), while
    torch's nn.LSTM keeps two (b_ih and b_hh). To match it exactly and stay on the cuDNN path,
    the LSTM has bias=False and every input step gets a constant 1 appended: the weights of that
    extra input column ARE the single gate bias. The LSTM input is [z, a, 1], size Z + A + 1.

    Mixture head layout: Linear(H, 3 * K * Z), viewed as (..., Z, 3K); for each latent
    dimension the 3K numbers are K mixture logits, then K means, then K log-stds.
    """

    def __init__(
        self,
        z_size: int = 32,
        action_size: int = 3,
        hidden_size: int = 256,
        num_mixtures: int = 5,
        reward_head: bool = False,
        done_head: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (0: none, the paper's M), got {dropout}")
        self.z_size = z_size
        self.action_size = action_size
        self.hidden_size = hidden_size
        self.num_mixtures = num_mixtures
        self.dropout = dropout
        self.lstm = nn.LSTM(z_size + action_size + 1, hidden_size, bias=False, batch_first=True)
        self.mdn = nn.Linear(hidden_size, 3 * num_mixtures * z_size)
        self.reward_head = nn.Linear(hidden_size, 1) if reward_head else None
        self.done_head = nn.Linear(hidden_size, 1) if done_head else None

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> LSTMState:
        """Zero LSTM state (h, c), each (1, B, H)."""
        h = torch.zeros(1, batch_size, self.hidden_size, device=device)
        return h, torch.zeros_like(h)

    def forward(
        self,
        z: torch.Tensor,
        action: torch.Tensor,
        state: LSTMState | None = None,
        dropout_mask: torch.Tensor | None = None,
    ) -> MDNRNNOutput:
        """Run over a sequence: z (B, T, Z), action (B, T, A), state (h, c) each (1, B, H) or None
        for zeros. Output step t predicts z_{t+1}; see `MDNRNNOutput` for the shapes.

        dropout_mask (B, Z + H) multiplies each sequence's [z_t, h_{t-1}] at every step (see the module docstring
        and :func:`draw_dropout_mask`); None draws one per sequence in training mode when ``dropout`` > 0, and
        means no dropout otherwise (eval mode: the real env, and the dream unless it asks for masks).
        """
        B, T, _ = z.shape
        if dropout_mask is None and self.training and self.dropout > 0:
            dropout_mask = draw_dropout_mask(B, self.z_size, self.hidden_size, self.dropout, device=z.device)
        bias_input = z.new_ones(B, T, 1)  # (B, T, 1)
        if dropout_mask is None:
            x = torch.cat([z, action, bias_input], dim=-1)  # (B, T, Z + A + 1)
            out, state = self.lstm(x, state)  # (B, T, H)
        else:
            z_mask, h_mask = dropout_mask.split([self.z_size, self.hidden_size], dim=1)  # (B, Z), (B, H)
            x = torch.cat([z * z_mask.unsqueeze(1), action, bias_input], dim=-1)  # (B, T, Z + A + 1)
            out, state = self._masked_lstm(x, state, h_mask)  # (B, T, H)
        params = self.mdn(out).view(B, T, self.z_size, 3 * self.num_mixtures)  # (B, T, Z, 3K)
        logits, mu, log_sigma = params.chunk(3, dim=-1)  # each (B, T, Z, K)
        reward = self.reward_head(out).squeeze(-1) if self.reward_head is not None else None
        done_logit = self.done_head(out).squeeze(-1) if self.done_head is not None else None
        return MDNRNNOutput(
            log_pi=F.log_softmax(logits, dim=-1),
            mu=mu,
            log_sigma=log_sigma,
            reward=reward,  # (B, T) or None
            done_logit=done_logit,  # (B, T) or None
            state=state,
        )

    def _masked_lstm(self, x: torch.Tensor, state: LSTMState | None, h_mask: torch.Tensor
                     ) -> tuple[torch.Tensor, LSTMState]:
        """``self.lstm`` on x (B, T, Z + A + 1) (z already masked) with h_{t-1} times h_mask (B, H) in the gates:
        outputs (B, T, H) and the final (h, c), each (1, B, H). A step loop (cuDNN's kernel takes no
        per-sequence recurrent mask); the input half of the gates is one matrix product over all steps."""
        B = len(x)
        h, c = (x.new_zeros(B, self.hidden_size),) * 2 if state is None else (state[0][0], state[1][0])  # (B, H)
        input_gates = x @ self.lstm.weight_ih_l0.T  # (B, T, 4H): gates i, f, g, o
        weight_hh = self.lstm.weight_hh_l0  # (4H, H)
        outputs = []
        for input_gate in input_gates.unbind(1):  # (B, 4H) each; unbind's backward is one stack, not T scatters
            gates = torch.addmm(input_gate, h * h_mask, weight_hh.T)  # (B, 4H)
            i, f, g, o = gates.chunk(4, dim=1)  # (B, H) each
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * _tanh(g)  # (B, H)
            h = torch.sigmoid(o) * _tanh(c)  # (B, H)
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h.unsqueeze(0), c.unsqueeze(0))

    def step(self, z: torch.Tensor, action: torch.Tensor, state: LSTMState,
             dropout_mask: torch.Tensor | None = None) -> MDNRNNOutput:
        """Advance one step: z (B, Z), action (B, A), state (h, c) each (1, B, H), dropout_mask (B, Z + H) or None
        as in `forward` (in training mode a None draws a fresh mask: a sequence's mask is held by passing it).

        Same as `forward` on a length-1 sequence with the T axis removed: log_pi, mu, log_sigma
        are (B, Z, K), reward and done_logit (B,) or None, state (h, c) each (1, B, H).
        """
        out = self.forward(z.unsqueeze(1), action.unsqueeze(1), state, dropout_mask)
        return MDNRNNOutput(
            log_pi=out.log_pi.squeeze(1),  # (B, Z, K)
            mu=out.mu.squeeze(1),  # (B, Z, K)
            log_sigma=out.log_sigma.squeeze(1),  # (B, Z, K)
            reward=_drop_time(out.reward),  # (B,) or None
            done_logit=_drop_time(out.done_logit),  # (B,) or None
            state=out.state,
        )


    def sample(
        self,
        z: torch.Tensor,
        action: torch.Tensor,
        state: LSTMState,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> MDNRNNSample:
        """One imagined step: from z (B, Z), action (B, A) and state, draw the next z at temperature tau.

        Returns the next z (B, Z) from :func:`sample_next_z`, the predicted reward (B,), the done
        logit (B,) and done (B,) bool (logit > 0, the published rule) where the heads exist (else
        None), and the new state (h, c) each (1, B, H).
        """
        out = self.step(z, action, state)
        next_z = sample_next_z(out.log_pi, out.mu, out.log_sigma, temperature, generator)  # (B, Z)
        done = None if out.done_logit is None else out.done_logit > 0
        return MDNRNNSample(next_z, out.reward, out.done_logit, done, out.state)


def draw_dropout_mask(
    count: int,
    z_size: int,
    hidden_size: int,
    rate: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``count`` dropout masks of M's gate inputs, (count, Z + H) float32: each entry 0 with probability ``rate``,
    else 1 / (1 - rate) (so a masked input keeps its mean); columns for z_t, then for h_{t-1}."""
    keep = torch.rand(count, z_size + hidden_size, generator=generator, device=device) >= rate  # (count, Z + H)
    return keep.float() / (1.0 - rate)


def _tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) as 2 sigmoid(2x) - 1: torch's CPU tanh ran hundreds of times slower than its sigmoid on (32, 256)
    (AMD EPYC, torch 2.13)."""
    return torch.sigmoid(2.0 * x) * 2.0 - 1.0


def _drop_time(values: torch.Tensor | None) -> torch.Tensor | None:
    """Squeeze the T axis of a length-1 head output (B, 1) to (B,); None stays None."""
    return None if values is None else values.squeeze(1)


def sample_next_z(
    log_pi: torch.Tensor,
    mu: torch.Tensor,
    log_sigma: torch.Tensor,
    temperature: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample z from per-dimension mixtures (..., Z, K) at temperature tau, giving (..., Z).

    Each dimension picks a component from softmax(log_pi / tau), then draws
    z = mu_k + exp(log_sigma_k) * sqrt(tau) * eps. Small tau approaches the most likely mean.
    """
    if temperature <= 0:
        raise ValueError(
            f"temperature must be > 0, got {temperature}; use a small value such as 1e-4 "
            "for near-deterministic samples"
        )
    uniform = torch.rand(
        log_pi.shape, generator=generator, device=log_pi.device, dtype=log_pi.dtype
    )  # (..., Z, K)
    eps = torch.randn(log_pi.shape[:-1], generator=generator, device=mu.device, dtype=mu.dtype)  # (..., Z)
    return sample_next_z_with_noise(log_pi, mu, log_sigma, temperature, uniform, eps)


def sample_next_z_with_noise(
    log_pi: torch.Tensor,
    mu: torch.Tensor,
    log_sigma: torch.Tensor,
    temperature: float,
    uniform: torch.Tensor,
    eps: torch.Tensor,
) -> torch.Tensor:
    """The draw of :func:`sample_next_z` with its noise given: mixtures (..., Z, K), uniform (..., Z, K) in
    (0, 1) picks each dimension's component (Gumbel-max over log_pi / tau), eps (..., Z) standard normal."""
    gumbel = -torch.log(-torch.log(uniform))  # (..., Z, K)
    k = (log_pi / temperature + gumbel).argmax(dim=-1, keepdim=True)  # (..., Z, 1) Gumbel-max
    mu_k = mu.gather(-1, k).squeeze(-1)  # (..., Z)
    sigma_k = log_sigma.gather(-1, k).squeeze(-1).exp()  # (..., Z)
    return mu_k + sigma_k * math.sqrt(temperature) * eps


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of values (B, T) over the steps where mask (B, T) is 1; all steps if mask is None."""
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def mdn_nll(
    target_z: torch.Tensor,
    log_pi: torch.Tensor,
    mu: torch.Tensor,
    log_sigma: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mixture negative log-likelihood of target_z (B, T, Z) under per-dimension mixtures
    (B, T, Z, K), in nats per latent dimension, averaged over Z and over the valid steps of
    mask (B, T) (float or bool; None means all steps)."""
    z = target_z.unsqueeze(-1)  # (B, T, Z, 1)
    log_normal = (
        -0.5 * ((z - mu) * torch.exp(-log_sigma)).pow(2) - log_sigma - 0.5 * math.log(2 * math.pi)
    )  # (B, T, Z, K)
    nll = -torch.logsumexp(log_pi + log_normal, dim=-1)  # (B, T, Z)
    return _masked_mean(nll.mean(dim=-1), mask)


def mdnrnn_loss(
    output: MDNRNNOutput,
    target_z: torch.Tensor,
    target_reward: torch.Tensor | None = None,
    target_done: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    done_pos_weight: float = 1.0,
    reward_weight: float = 1.0,
) -> MDNRNNLoss:
    """Loss of a sequence `output` against target_z (B, T, Z), target_reward (B, T) and
    target_done (B, T) (1 where the episode ends), masked means over mask (B, T).

    The reward (or done) term is zero when the model has no such head or no target is given.
    done_pos_weight scales the BCE of positive done steps (the authors use 10 for Doom).
    """
    z_nll = mdn_nll(target_z, output.log_pi, output.mu, output.log_sigma, mask)
    reward = z_nll.new_zeros(())
    if output.reward is not None and target_reward is not None:
        reward = _masked_mean((output.reward - target_reward).pow(2), mask)
    done = z_nll.new_zeros(())
    if output.done_logit is not None and target_done is not None:
        bce = F.binary_cross_entropy_with_logits(
            output.done_logit,
            target_done.to(output.done_logit.dtype),
            pos_weight=output.done_logit.new_tensor(done_pos_weight),
            reduction="none",
        )  # (B, T)
        done = _masked_mean(bce, mask)
    total = z_nll + reward_weight * reward + done
    return MDNRNNLoss(total=total, z_nll=z_nll, reward=reward, done=done)
