"""The generative-deep-learning book's music LSTM with attention, over note and duration tokens.

    notes (B, T), durations (B, T) int64 token indices
      -> two embeddings (E each), concatenated                    (B, T, 2E)
      -> stacked LSTMs (H units each)                             (B, T, H)
      -> attention: scores tanh(Linear(H -> 1)), softmax over T   (B, T)
      -> weighted sum of the LSTM outputs                         (B, H)
      -> two heads: next-note logits (B, N), next-duration logits (B, D)

The vocabularies (token strings, START first, ``envs.music_notation``) are constructor arguments, so a
checkpoint's ``model_args`` rebuild the model and name its tokens.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from envs.music_notation import START


def check_temperature(temperature: float) -> float:
    """``temperature`` if it is > 0, else a ValueError saying so."""
    if not temperature > 0:
        raise ValueError(f"sampling temperature must be > 0, got {temperature}")
    return temperature


class MusicLSTM(nn.Module):
    """Next note and duration from the last ``seq_len`` tokens; see the module docstring for the layers.

    :param notes: note vocabulary, START first; :param durations: duration vocabulary, START first.
    :param seq_len: tokens of history the model was trained on (generation slides a window of this length).
    """

    def __init__(self, notes: list[str], durations: list[str], seq_len: int = 32, embedding_size: int = 100,
                 hidden_size: int = 256, layers: int = 2) -> None:
        super().__init__()
        if notes[:1] != [START] or durations[:1] != [START]:
            raise ValueError(f"both vocabularies must start with {START!r}")
        self.notes, self.durations, self.seq_len = list(notes), list(durations), seq_len
        self.note_embedding = nn.Embedding(len(notes), embedding_size)
        self.duration_embedding = nn.Embedding(len(durations), embedding_size)
        self.lstm = nn.LSTM(2 * embedding_size, hidden_size, num_layers=layers, batch_first=True)
        self.attention = nn.Linear(hidden_size, 1)
        self.note_head = nn.Linear(hidden_size, len(notes))
        self.duration_head = nn.Linear(hidden_size, len(durations))

    def forward(self, notes: torch.Tensor, durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """notes, durations (B, T) int64 -> logits of the next note (B, N) and duration (B, D)."""
        x = torch.cat([self.note_embedding(notes), self.duration_embedding(durations)], dim=-1)  # (B, T, 2E)
        outputs, _ = self.lstm(x)  # (B, T, H)
        weights = torch.softmax(torch.tanh(self.attention(outputs)).squeeze(-1), dim=1)  # (B, T)
        context = (weights.unsqueeze(-1) * outputs).sum(dim=1)  # (B, H)
        return self.note_head(context), self.duration_head(context)

    @torch.no_grad()
    def log_probs(self, notes: torch.Tensor, durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities (B, N) and (B, D) of the next tokens after (B, T) histories, in eval mode."""
        training = self.training
        self.eval()
        note_logits, duration_logits = self(notes, durations)
        self.train(training)
        return F.log_softmax(note_logits, dim=-1), F.log_softmax(duration_logits, dim=-1)

    @torch.no_grad()
    def compose(self, quarters: float, temperature: float = 0.5,
                generator: torch.Generator | None = None) -> tuple[list[str], list[str]]:
        """Sample tokens from START until they last ``quarters`` quarter notes, the window sliding as they are
        added; each draw from p_i ~ exp(log p_i / temperature), START never drawn.

        :returns: note tokens and duration tokens, in order.
        """
        check_temperature(temperature)
        device = self.note_head.weight.device
        window = torch.zeros(2, self.seq_len, dtype=torch.long, device=device)  # (notes / durations, T), START
        notes: list[str] = []
        durations: list[str] = []
        elapsed = Fraction(0)
        while elapsed < quarters:
            drawn = []
            for log_p in self.log_probs(window[:1], window[1:]):  # (1, V) each
                scaled = log_p[0] / temperature
                scaled[0] = -torch.inf  # START
                drawn.append(int(torch.multinomial(torch.softmax(scaled, dim=-1), 1, generator=generator)))
            notes.append(self.notes[drawn[0]])
            durations.append(self.durations[drawn[1]])
            elapsed += Fraction(durations[-1])
            window = torch.cat([window[:, 1:], torch.tensor(drawn, device=device).unsqueeze(1)], dim=1)
        return notes, durations
