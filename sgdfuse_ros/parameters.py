# Copyright 2026 The sgdfuse_ros authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Every parameter of the pipeline and the node, declared once.

The same table serves three readers: :mod:`sgdfuse_ros.config` validates YAML files against it,
the ROS node declares its parameters from it (with descriptors and ranges), and a test checks
that ``config/fusion.yaml`` documents exactly these names.

Names are dotted, as ROS 2 flattens nested ``ros__parameters`` dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import textwrap
from typing import Any, Optional, Sequence

import yaml

from .errors import ConfigError
from .image_decode import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    min: Optional[float] = None  # noqa: A003  (public field name)
    max: Optional[float] = None  # noqa: A003
    choices: Optional[Sequence[Any]] = None
    read_only: bool = False  # fixed while the node runs: a change needs a restart

    @property
    def kind(self) -> type:
        if isinstance(self.default, bool):
            return bool
        if isinstance(self.default, (list, tuple)):
            return list
        return type(self.default)

    def validate(self, value: Any) -> Any:
        """
        Return ``value`` converted to this parameter's type, or raise ConfigError.

        Out-of-range values are rejected, never clamped.
        """
        kind = self.kind
        try:
            if kind is bool:
                if not isinstance(value, bool):
                    raise TypeError
            elif kind is int:
                # a string is refused as ROS 2 refuses it for an integer parameter
                if isinstance(value, (bool, str)) or not float(value).is_integer():
                    raise TypeError
                value = int(value)
            elif kind is float:
                if isinstance(value, (bool, str)):
                    raise TypeError
                value = float(value)
            elif kind is str:
                if not isinstance(value, str):
                    raise TypeError
            elif kind is list:
                if value is None:
                    value = []
                if not isinstance(value, (list, tuple)):
                    raise TypeError
                if any(isinstance(v, bool) for v in value):
                    raise TypeError
                value = [float(v) for v in value]
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(
                f'parameter {self.name}: expected {kind.__name__}, got {_short(value)}') from None
        if kind is list and not all(math.isfinite(v) for v in value):
            raise ConfigError(f'parameter {self.name}: NaN or infinity in {_short(value)}')
        if self.choices is not None and value not in self.choices:
            raise ConfigError(
                f'parameter {self.name}: {_short(value)} is not one of {list(self.choices)}')
        if kind in (int, float):
            if value != value:  # NaN
                raise ConfigError(f'parameter {self.name}: NaN is not allowed')
            if self.min is not None and value < self.min:
                raise ConfigError(f'parameter {self.name}: {value} is below the minimum '
                                  f'{self.min}')
            if self.max is not None and value > self.max:
                raise ConfigError(f'parameter {self.name}: {value} is above the maximum '
                                  f'{self.max}')
        return value


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (a refused value stays a short line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + '...'


P = ParamSpec

PIPELINE_PARAMS = [
    # --- compute -------------------------------------------------------------------------------
    P('device', 'auto', 'Where networks run: auto (CUDA if present, else CPU), cpu or cuda.',
      choices=('auto', 'cpu', 'cuda'), read_only=True),
    P('device_fallback', True,
      'With device=cuda and no usable GPU: true falls back to CPU with a warning, false stops at '
      'configure time.', read_only=True),
    P('backend', 'auto', 'Inference engine for the networks: torch, onnx (onnxruntime) or auto '
      '(onnx on the CPU, where it is faster and degrades less under load; torch on CUDA).',
      choices=('auto', 'torch', 'onnx'), read_only=True),
    P('tensorrt_fp16', False, 'backend onnx on an NVIDIA GPU with the TensorRT provider: build '
      'its engines in float16 (faster on tensor cores; in a float16 emulation on the CPU the '
      'fused image moved by at most 2 grey levels, see docs/gpu.md). No effect elsewhere.',
      read_only=True),
    P('threads', 0, 'CPU threads for torch, onnxruntime and OpenCV: the count (fixed), the most '
      '(adaptive) or, if > 0, the count (library); 0 = the physical cores.', min=0, max=256,
      read_only=True),
    P('thread_policy', 'adaptive', 'How the CPU thread pools behave on a shared computer. '
      'adaptive: workers never spin while waiting, and the thread count (1 .. threads) is the one '
      'that measured fastest recently, probed again now and then and when the frame time moves '
      '(a co-running detector takes a core: fewer threads stall less); fixed: no spinning, '
      "always threads; library: the libraries' defaults (torch spin-waits; 5x slower beside a "
      'busy core), for comparison. Reported in /diagnostics.',
      choices=('adaptive', 'fixed', 'library'), read_only=True),
    # --- geometry ------------------------------------------------------------------------------
    P('output.width', 0, "Width of the fused image in pixels (0 = the visible image's width).",
      min=0, max=8192),
    P('output.height', 0, "Height of the fused image in pixels (0 = the visible image's height).",
      min=0, max=8192),
    P('output.encoding', 'bgr8', 'Encoding of the fused image: bgr8 (colour from the visible '
      'chroma) or mono8 (fused luminance).', choices=('bgr8', 'mono8')),
    P('registration.homography', [],
      'Row-major 3x3 homography mapping thermal pixel coordinates to visible pixel coordinates '
      '(9 numbers). Empty: the two images are taken as registered (same size; see '
      'registration.resize_mismatched).'),
    P('registration.resize_mismatched', False,
      'With no homography, thermal and visible images of different sizes are an error; true '
      'stretches the thermal image onto the visible frame instead.'),
    P('registration.undistort', False,
      "Undo each camera's lens distortion before registering, with the distortion coefficients "
      'of its camera_info (rgb/camera_info, thermal/camera_info; plumb_bob, rational_polynomial '
      'or equidistant); a camera without camera_info or with zero coefficients is used as it '
      'comes. sgdfuse register sets it when it undistorted the recording: the homography is '
      'then between the undistorted images.'),
    P('limits.max_input_pixels', DEFAULT_MAX_PIXELS,
      'Frames with more pixels than this (per camera; a compressed image by its header, before '
      'decoding) are rejected, and the fused image (output.width x output.height) may not be '
      'larger. A frame costs about 220 MiB per megapixel at its peak with the default stages '
      '(docs/reliability.md): the default (2048x2048, 4.2 MP) keeps the node under 2 GiB, for a '
      '4 GB robot computer.', min=1, max=1 << 30),
    # --- thermal automatic gain control ----------------------------------------------------------
    P('agc.mode', 'auto',
      'auto: mono8 passes through, 16-bit and float frames get the percentile window; always: '
      'every frame gets the window; off: fixed scaling (full type range, or agc.fixed_* for '
      '32FC1).',
      choices=('auto', 'always', 'off')),
    P('agc.low_percentile', 1.0, 'Lower percentile of the AGC window.', min=0.0, max=49.0),
    P('agc.high_percentile', 99.0, 'Upper percentile of the AGC window.', min=51.0, max=100.0),
    P('agc.min_span', 16.0,
      'Smallest AGC window in raw units (keeps noise of near-constant frames from being '
      'amplified).', min=0.0, max=1e9),
    P('agc.smoothing', 0.0,
      'Temporal smoothing of the AGC window between frames (0 = none, 0.9 = slow).',
      min=0.0, max=0.99),
    P('agc.fixed_min', 0.0, '32FC1 with agc.mode=off: raw value mapped to black.',
      min=-1e9, max=1e9),
    P('agc.fixed_max', 1.0, '32FC1 with agc.mode=off: raw value mapped to white.',
      min=-1e9, max=1e9),
    # --- semantic prior --------------------------------------------------------------------------
    P('prior.source', 'thermal',
      'Semantic prior: sam (Segment Anything, needs prior.sam.checkpoint), thermal (fallback '
      'from thermal saliency, no checkpoint) or none (empty prior).',
      choices=('sam', 'thermal', 'none'), read_only=True),
    P('prior.every_frame', False,
      'true: compute the prior synchronously for every frame (deterministic evaluation); false: '
      'SAM runs in its own worker and frames use the newest prior.', read_only=True),
    P('prior.rate_hz', 2.0, 'Rate at which the SAM worker refreshes the prior.', min=0.01,
      max=120.0),
    P('prior.max_age_s', 2.0,
      'An asynchronous prior older than this is replaced by the thermal fallback.',
      min=0.0, max=3600.0),
    P('prior.on_sam_error', 'fallback',
      'With prior.source=sam and a missing/mismatched checkpoint or a failing worker: fallback '
      '(use the thermal prior, loudly) or error (stop).', choices=('fallback', 'error'),
      read_only=True),
    P('prior.sam.model_type', 'vit_b', 'SAM image encoder of the checkpoint (vit_t: MobileSAM, '
      'needs the mobile_sam package).', choices=('vit_b', 'vit_l', 'vit_h', 'vit_t'),
      read_only=True),
    P('prior.sam.checkpoint', '', 'Path of the SAM checkpoint (.pth). Empty: '
      '$SGDFUSE_SAM_CHECKPOINT (a file or folder), else models/, searched for the published '
      'names (sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth, sam_vit_h_4b8939.pth, mobile_sam.pt).',
      read_only=True),
    P('prior.sam.max_points', 8, 'At most this many point prompts per frame, on warm blobs.',
      min=1, max=256),
    P('prior.sam.auto_grid', 0,
      "Points per side of the automatic mask generator's grid for a full partition "
      '(0 = off).', min=0, max=64),
    P('prior.sam.min_area', 64, 'Masks smaller than this many pixels are dropped.', min=0,
      max=1_000_000),
    P('prior.sam.timeout_s', 30.0,
      'A SAM call that takes longer is abandoned and the fallback prior takes over.',
      min=0.1, max=3600.0),
    P('prior.thermal.sigma', 2.0, 'Gaussian blur (pixels at 640 wide) before finding warm blobs.',
      min=0.0, max=50.0),
    P('prior.thermal.k', 1.5,
      'A pixel is warm if it is more than k robust standard deviations above the median.',
      min=0.0, max=20.0),
    P('prior.thermal.min_area', 30, 'Warm blobs smaller than this (pixels at 640 wide) are '
      'dropped.', min=0, max=1_000_000),
    P('prior.thermal.max_regions', 32, 'At most this many target regions (largest kept).',
      min=1, max=65535),
    # --- fusion stages ---------------------------------------------------------------------------
    P('first_stage.type', 'network',
      'First-stage fusion: network (learned, prior-guided) or laplacian (classical pyramid).',
      choices=('network', 'laplacian'), read_only=True),
    P('first_stage.weights', '', 'Weights of the first-stage network (empty = the shipped '
      'weights of first_stage.tuned_for).', read_only=True),
    P('first_stage.tuned_for', 'images',
      'Which shipped first-stage weights run when first_stage.weights is empty: images (tuned '
      'for the image-fusion metrics, models/first_stage.pt) or detectors (fine-tuned with a '
      "detector's loss: a detector trained on the fused image finds more, by day and by night, "
      'and the image-fusion metrics are lower; models/first_stage_detectors.pt, see its model '
      'card).', choices=('images', 'detectors'), read_only=True),
    P('first_stage.levels', 4, 'Pyramid levels of the laplacian first stage.', min=1, max=8),
    P('refiner.steps', 2, 'Denoising steps of the diffusion refiner (0 disables it; 1, 2 or 4 '
      'are the trained settings).', min=0, max=16),
    P('refiner.weights', '', 'Weights of the refiner (empty = shipped models/refiner.pt).',
      read_only=True),
    P('refiner.seed', 0, "Seed of the refiner's noise (fixed, so output is reproducible).",
      min=0, max=2**31 - 1),
    P('background.target_radius', 0.0,
      "For detectors: within this many pixels (at 640 wide) of the prior's warm targets the "
      'fused luminance follows the thermal image, so small warm targets keep the quiet '
      'thermal surroundings (0 = off).', min=0.0, max=200.0),
    P('background.detail_gain', 1.0,
      "For detectors: share of the fused image's fine detail kept (finer than "
      'background.detail_sigma); the rest is replaced by the thermal detail, which quiets '
      'the visible texture (1 = off).', min=0.0, max=1.0),
    P('background.detail_sigma', 16.0,
      'Scale (Gaussian sigma, pixels at 640 wide) below which background.detail_gain acts.',
      min=0.5, max=100.0),
    P('colour.warm_tint', 80.0,
      'Warmth in the colour: what is warmer than its surroundings in the thermal image is '
      'tinted red-orange by up to this many chroma levels; the luminance is not touched '
      '(0 = the visible colours only).', min=0.0, max=127.0),
    P('colour.warm_tint_sigma', 40.0,
      'Size of the surroundings colour.warm_tint compares with (Gaussian sigma, pixels at '
      '640 wide).', min=2.0, max=200.0),
    # --- faults ----------------------------------------------------------------------------------
    P('faults.oom_retry', 'no_refiner',
      'A frame that runs out of (GPU) memory is retried once at lower cost, then skipped and '
      'counted: no_refiner (retry without the refiner), half_resolution (retry at half the '
      'output size, upsampled back) or none (skip at once).',
      choices=('no_refiner', 'half_resolution', 'none')),
]

NODE_PARAMS = [
    P('autostart', True, 'The lifecycle node configures and activates itself on start (false: '
      'it waits for `ros2 lifecycle set`).', read_only=True),
    P('sync.slop', 0.02, 'Largest stamp difference (s) between a thermal and an RGB image that '
      'are fused together (approximate time synchronisation). Keep it below half the frame '
      "period of the faster camera, or a lost frame's partner pairs with its neighbour.",
      min=0.0, max=10.0),
    P('sync.queue_size', 10, 'Messages kept per topic while waiting for a partner.', min=1,
      max=10_000),
    P('qos.reliability', 'best_effort', 'Reliability of the camera subscriptions: best_effort '
      '(sensor data QoS) or reliable.', choices=('best_effort', 'reliable'), read_only=True),
    P('qos.depth', 5, 'History depth of the camera subscriptions and of the outputs.', min=1,
      max=1000, read_only=True),
    P('qos.output_reliability', 'reliable', 'Reliability of the outputs: reliable (matches '
      'both reliable and best-effort subscribers) or best_effort.',
      choices=('best_effort', 'reliable'), read_only=True),
    P('input.compressed', False, 'Subscribe to sensor_msgs/CompressedImage (topics with a '
      '/compressed suffix) instead of raw images.', read_only=True),
    P('output.frame_id', '', "frame_id of the outputs (empty = the RGB image's frame_id, which "
      'is the frame the fused image lives in).'),
    P('output.overlay', True, 'Publish semantic/overlay (colour overlay of the prior) while '
      'someone subscribes.'),
    P('output.compressed', True, "Also advertise image_transport's compressed topics "
      '(sensor_msgs/CompressedImage, the image topic + /compressed): fused/image and '
      'semantic/overlay as JPEG, semantic/labels and semantic/targets as lossless PNG. As '
      'image_transport does, each is encoded only while someone subscribes to it.',
      read_only=True),
    P('output.jpeg_quality', 95, 'JPEG quality of the compressed fused image and overlay '
      "(image_transport's jpeg_quality default).", min=1, max=100),
    P('diagnostics.period_s', 1.0, 'Period of the /diagnostics status.', min=0.1, max=60.0),
    P('diagnostics.window', 100, 'Fused frames over which the latency percentiles of '
      '/diagnostics are computed.', min=10, max=10_000),
    P('diagnostics.alignment_every', 5, 'Score the alignment of the two cameras (edge agreement '
      'of the registered thermal and visible images, at 160 pixels wide) on every Nth fused pair, '
      'for the alignment status of /diagnostics (0 = off).', min=0, max=10_000),
    P('warn.period_s', 5.0, 'Rate limit (s) of repeated warnings about bad frames.', min=0.0,
      max=3600.0),
]

ALL_PARAMS = PIPELINE_PARAMS + NODE_PARAMS
SPECS = {p.name: p for p in ALL_PARAMS}
assert len(SPECS) == len(ALL_PARAMS), 'duplicate parameter name'


def defaults() -> dict:
    return {p.name: (list(p.default) if isinstance(p.default, list) else p.default)
            for p in ALL_PARAMS}


def render_yaml() -> str:
    """
    Render the documented default config file.

    Usage: ``python -m sgdfuse_ros.parameters > config/fusion.yaml``.
    """
    lines = [
        '# sgdfuse_ros configuration, in the ROS 2 parameter file layout. Read by the node, the',
        '# pipeline, `sgdfuse evaluate`, `sgdfuse replay` and the benchmarks. Each parameter '
        'lists',
        '# its range; values out of range are rejected, never clamped. [read-only] marks the '
        'ones',
        '# fixed while the node runs (ROS 2 refuses `ros2 param set` on them in every lifecycle',
        '# state): set them here, in a launch argument or with -p, and restart the node.',
        '# Generated from sgdfuse_ros/parameters.py: python -m sgdfuse_ros.parameters',
        '/**:',
        '  ros__parameters:',
    ]
    groups: dict = {}
    for p in ALL_PARAMS:  # keep the table's order, but one YAML section per prefix
        groups.setdefault(p.name.split('.')[0] if '.' in p.name else '', []).append(p)
    for params in groups.values():
        opened: list = []
        for p in sorted(params, key=lambda q: q.name.count('.') > 1):
            parts = p.name.split('.')
            keep = 0
            while keep < min(len(opened), len(parts) - 1) and opened[keep] == parts[keep]:
                keep += 1
            opened = opened[:keep]
            for depth in range(keep, len(parts) - 1):
                lines.append('    ' + '  ' * depth + parts[depth] + ':')
                opened.append(parts[depth])
            indent = '    ' + '  ' * (len(parts) - 1)
            notes = []
            if p.choices:
                notes.append('one of: ' + ', '.join(map(str, p.choices)))
            if p.min is not None:
                notes.append(f'range {p.min:g} .. {p.max:g}')
            if p.read_only:
                notes.append('[read-only]')
            text = p.description + (' (' + '; '.join(notes) + ')' if notes else '')
            lines.extend(indent + '# ' + line for line in textwrap.wrap(text, 90))
            value = (f'"{p.default}"' if isinstance(p.default, str)
                     else yaml.safe_dump(p.default, default_flow_style=True).split('\n')[0])
            if isinstance(p.default, list) and not p.default:
                # ROS 2 parameter files cannot hold an empty list (its type is unknown and
                # rcl refuses the file): leave the line commented out; unset means the default
                lines.append(f'{indent}# {parts[-1]}: {value}')
                continue
            lines.append(f'{indent}{parts[-1]}: {value}')
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    print(render_yaml(), end='')
