"""The fusion pipeline: one plain object that the node, the bag replay, the benchmarks and the CLI
all drive the same way.

    pipeline = FusionPipeline.from_yaml("config/fusion.yaml")
    result = pipeline.process(thermal, visible)          # numpy arrays (+ optional encodings)
    cv2.imwrite("fused.png", result.fused_bgr)

Stages, in order, each timed (milliseconds in ``result.timings``): ``decode`` (thermal AGC,
visible encoding), ``register`` (thermal into the visible frame, both to the output size),
``prior`` (semantic prior), ``first_stage`` (fusion of luminances), ``refiner`` (few-step
diffusion, when enabled), ``colour`` (visible chroma restored).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from . import stages
from .color import merge_luma, split_luma
from .config import load_config
from .device import resolve_device, set_threads
from .encodings import ThermalAGC, check_size, visible_to_bgr
from .errors import InputError, SgdfuseError
from .prior.format import SemanticPrior
from .registration import Registration

log = logging.getLogger("sgdfuse_ros")


@dataclass
class FusionResult:
    fused_bgr: np.ndarray          # uint8 HxWx3, the fused image in the visible camera's colours
    fused_y: np.ndarray            # uint8 HxW, its luminance
    prior: SemanticPrior           # the prior the stages used (labels, targets, boundaries)
    thermal: np.ndarray            # float32 HxW in [0, 1], registered thermal at output size
    visible: np.ndarray            # uint8, registered visible (BGR, or gray for mono cameras)
    first_stage_y: np.ndarray      # float32 HxW, the first stage's output (before the refiner)
    timings: Dict[str, float] = field(default_factory=dict)  # milliseconds per stage + total
    refined: bool = False          # the refiner ran and its output is the one published
    notes: list = field(default_factory=list)  # what went wrong but was survived

    @property
    def prior_source(self) -> str:
        return self.prior.source

    @property
    def labels(self) -> np.ndarray:
        return self.prior.labels


class FusionPipeline:
    def __init__(self, config: Optional[dict] = None):
        self.config = dict(config) if config is not None else load_config()
        cfg = self.config
        self.device = resolve_device(cfg) if stages.needs_torch(cfg) else "cpu"
        if stages.needs_torch(cfg):
            set_threads(cfg["threads"])
        self.max_pixels = cfg["limits.max_input_pixels"]
        self.agc = ThermalAGC.from_config(cfg)
        self.registration = Registration.from_config(cfg)
        self.prior_source = stages.build_prior_source(cfg, self.device)
        self.first_stage = stages.build_first_stage(cfg, self.device)
        self.refiner = stages.build_refiner(cfg, self.device)
        self.refiner_failures = 0
        self.frames = 0
        log.info("fusion pipeline: prior=%s first_stage=%s refiner_steps=%d device=%s",
                 cfg["prior.source"], cfg["first_stage.type"], cfg["refiner.steps"], self.device)

    @classmethod
    def from_yaml(cls, path=None, overrides: Optional[dict] = None) -> "FusionPipeline":
        return cls(load_config(path, overrides))

    def describe(self) -> dict:
        return {"device": self.device, "prior": self.config["prior.source"],
                "first_stage": self.config["first_stage.type"],
                "refiner_steps": self.config["refiner.steps"],
                "backend": self.config["backend"]}

    def process(self, thermal: np.ndarray, visible: np.ndarray,
                thermal_encoding: Optional[str] = None, visible_encoding: Optional[str] = None,
                prior: Optional[SemanticPrior] = None) -> FusionResult:
        """Fuse one registered-or-registrable pair. Raises InputError for frames it cannot use."""
        if not isinstance(thermal, np.ndarray) or not isinstance(visible, np.ndarray):
            raise InputError("thermal and visible frames must be numpy arrays")
        timings: Dict[str, float] = {}
        t0 = tick = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal tick
            now = time.perf_counter()
            timings[name] = (now - tick) * 1000.0
            tick = now

        check_size(thermal, "thermal", self.max_pixels)
        check_size(visible, "visible", self.max_pixels)
        ir = self.agc(thermal, thermal_encoding)
        vis, _ = visible_to_bgr(visible, visible_encoding)
        lap("decode")

        ir = self.registration.thermal(ir, vis.shape)
        vis = self.registration.visible(vis)
        vis_y, chroma = split_luma(vis)
        outside = self.registration.valid_mask()
        if outside is not None:  # where the thermal camera sees nothing, fuse visible with itself
            ir = np.where(outside, ir, vis_y)
        lap("register")

        if prior is None:
            prior = self.prior_source(ir, vis_y, vis)
        prior = prior.resized(ir.shape)
        lap("prior")

        first = self.first_stage(ir, vis_y, prior)
        lap("first_stage")

        fused, refined, notes = first, False, []
        if self.refiner is not None:
            try:
                fused = self.refiner(ir, vis_y, prior, first)
                refined = True
            except SgdfuseError:
                raise
            except Exception as err:  # a failing refiner must not cost the frame
                self.refiner_failures += 1
                notes.append(f"refiner failed ({type(err).__name__}: {err}); first stage used")
                log.warning("refiner failed, publishing the first-stage result: %s", err)
                fused = first
            lap("refiner")

        fused_bgr, fused_y = merge_luma(fused, chroma)
        lap("colour")
        timings["total"] = (time.perf_counter() - t0) * 1000.0
        self.frames += 1
        return FusionResult(fused_bgr, fused_y, prior, ir, vis, first, timings, refined, notes)

    def close(self) -> None:
        """Free models and stop workers (the node calls this on deactivate)."""
        for part in (self.prior_source, self.first_stage, self.refiner):
            closer = getattr(part, "close", None)
            if closer is not None:
                closer()
        self.prior_source = self.first_stage = self.refiner = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
