"""Reading enum-or-string config choices (dataclass enums, OmegaConf strings) as plain strings."""

from __future__ import annotations

from enum import Enum
from typing import Any


def choice(value: Any) -> str:
    """``Activation.relu`` and ``"relu"`` both become ``"relu"``."""
    return str(value.value if isinstance(value, Enum) else value)
