"""Where the agents shipped inside the package live: one folder per name in ``worldmodels/pretrained_agents/``,
holding ``agent.pt`` (``worldmodels.pretrained``), ``MODEL_CARD.md`` and ``evaluation.json``.

Standard library only, so the command line can name the shipped agents in its help without loading torch.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).with_name("pretrained_agents")
"""The shipped agents, one folder per name."""
AGENT_FILE_NAME = "agent.pt"
MODEL_CARD_NAME = "MODEL_CARD.md"


def shipped_agents() -> list[str]:
    """The names of the agents shipped inside the package, sorted."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / AGENT_FILE_NAME).is_file())
