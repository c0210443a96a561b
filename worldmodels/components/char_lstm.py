"""Chollet's character-level LSTM text generator, with temperature sampling.

The model (*Deep Learning with Python*, section 8.1): a window of ``maxlen`` characters (60), each one-hot over the
text's vocabulary of V characters, -> LSTM(``hidden_size``, 128) -> the last step's output -> Linear -> softmax over
the V characters: the next character. Training windows start every ``step`` (3) characters of the text; the book
lower-cases the text and trains with RMSprop, learning rate 0.01.

Generation slides the window: each new character is drawn from the model's distribution at temperature T,

    p'_i = exp(log p_i / T) / sum_j exp(log p_j / T)      (= softmax(logits / T))

and appended; the window keeps the last ``maxlen`` characters. T -> 0 approaches the argmax, T = 1 is the model's
own distribution, T > 1 flattens it toward uniform. The vocabulary, the lower-casing and a default seed text live in
the model's constructor arguments, so a checkpoint alone can generate.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float, or ValueError unless it is finite and > 0."""
    value = float(temperature)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"the sampling temperature must be a finite number > 0, got {temperature!r} "
                         "(small values approach the most likely character, 1 is the model's own distribution)")
    return value


def tempered_probabilities(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities p'_i ∝ exp(log p_i / T) from logits (..., V) of p; same shape, summing to 1 on the last axis."""
    return torch.softmax(logits.float() / check_temperature(temperature), dim=-1)


def sample_with_temperature(logits: torch.Tensor, temperature: float,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row drawn from :func:`tempered_probabilities`: logits (B, V) -> (B,) int64.

    :param generator: a torch.Generator on the logits' device; None uses torch's global RNG.
    """
    probs = tempered_probabilities(logits, temperature)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


class CharLSTM(nn.Module):
    """Next-character model over a fixed vocabulary: indices (B, T) int64 -> logits (B, V) for the character after.

    :param vocabulary: the V distinct characters, in index order (built from the training text, see
        :func:`build_vocabulary`).
    :param hidden_size: LSTM units (Chollet: 128).
    :param maxlen: characters in a window (Chollet: 60); generation conditions on at most this many.
    :param lowercase: the text was lower-cased for training (Chollet does), so seed texts are too.
    :param seed_text: the default start of :meth:`generate`, a window of the training text.
    """

    def __init__(self, vocabulary: str, hidden_size: int = 128, maxlen: int = 60, lowercase: bool = True,
                 seed_text: str = "") -> None:
        super().__init__()
        if len(vocabulary) < 2 or len(set(vocabulary)) != len(vocabulary):
            raise ValueError(f"a vocabulary needs at least 2 distinct characters, each once; got {vocabulary!r}")
        self.vocabulary = vocabulary
        self.index = {char: i for i, char in enumerate(vocabulary)}
        self.maxlen = maxlen
        self.lowercase = lowercase
        self.seed_text = seed_text
        self.lstm = nn.LSTM(len(vocabulary), hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, len(vocabulary))

    @property
    def vocab_size(self) -> int:
        """V, the number of characters."""
        return len(self.vocabulary)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """indices (B, T) int64 in [0, V) -> logits (B, V) of the character following each window."""
        x = F.one_hot(indices, self.vocab_size).float()  # (B, T, V)
        outputs, _ = self.lstm(x)  # (B, T, H)
        return self.head(outputs[:, -1])  # (B, V)

    def encode(self, text: str) -> torch.Tensor:
        """Character indices (len(text),) int64 of ``text`` (lower-cased first when the model was trained so).

        :raises ValueError: ``text`` holds characters outside the vocabulary; the message names them.
        """
        if self.lowercase:
            text = text.lower()
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"the text holds {len(unknown)} character(s) the model never saw in training: "
                             f"{''.join(unknown)!r}; its vocabulary is {self.vocabulary!r}")
        return torch.tensor([self.index[char] for char in text], dtype=torch.int64)

    def decode(self, indices: torch.Tensor) -> str:
        """The characters of indices (T,) int64."""
        return "".join(self.vocabulary[i] for i in indices.tolist())

    @torch.no_grad()
    def generate(self, seed_text: str | None = None, length: int = 400, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> str:
        """``length`` new characters following ``seed_text``, each drawn at ``temperature`` (the seed is not
        included in the result).

        :param seed_text: at least one character of the vocabulary; only its last ``maxlen`` are read. None uses
            the model's ``seed_text``.
        :param generator: a torch.Generator on the model's device; None uses torch's global RNG.
        :raises ValueError: the temperature is not > 0, the length is negative, or the seed text is empty or holds
            a character outside the vocabulary.
        """
        check_temperature(temperature)
        if length < 0:
            raise ValueError(f"the generated length must be >= 0 characters, got {length}")
        seed = self.seed_text if seed_text is None else seed_text
        if not seed:
            raise ValueError("generation needs a seed text of at least one character")
        device = self.head.weight.device
        window = self.encode(seed)[-self.maxlen:].to(device)  # (T,)
        was_training = self.training
        self.eval()
        try:
            drawn = []
            for _ in range(length):
                logits = self(window.unsqueeze(0))  # (1, V)
                nxt = sample_with_temperature(logits, temperature, generator)  # (1,)
                drawn.append(nxt)
                window = torch.cat([window, nxt])[-self.maxlen:]
        finally:
            self.train(was_training)
        return self.decode(torch.cat(drawn)) if drawn else ""


def build_vocabulary(text: str) -> str:
    """The distinct characters of ``text``, sorted by code point (Chollet's ``sorted(set(text))``)."""
    return "".join(sorted(set(text)))
