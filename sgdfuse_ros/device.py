"""Choose where networks run, once, at configure time."""

from __future__ import annotations

import logging

from .errors import ConfigError

log = logging.getLogger("sgdfuse_ros")


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def resolve_device(config: dict) -> str:
    """'cpu' or 'cuda' for ``config['device']`` (auto, cpu, cuda) and ``device_fallback``."""
    wanted = config["device"]
    if wanted == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    if wanted == "auto":
        return "cpu"
    if config.get("device_fallback", True):
        log.warning("device=cuda requested but no CUDA device is usable: falling back to CPU")
        return "cpu"
    raise ConfigError("device=cuda requested but no CUDA device is usable "
                      "(set device: cpu, or device_fallback: true)")


def set_threads(threads: int) -> None:
    if threads and threads > 0:
        import torch
        torch.set_num_threads(int(threads))
