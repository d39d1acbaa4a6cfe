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
The fusion node's logic, independent of the middleware that carries its messages.

Both front ends drive this class: the rclpy lifecycle node (:mod:`sgdfuse_ros.ros.fusion_node`)
and the ROS-less live mode over Cyclone DDS (:mod:`sgdfuse_ros.cli.live`). They differ only in
the :class:`~sgdfuse_ros.transport.base.Transport` they hand it.

Data flow::

    thermal/image_raw ─┐ decode + check ┌─ ApproximateSync ─ newest pair ─ worker thread ─ outputs
    rgb/image_raw ─────┘ (rejects)      └─ (slop, queue)      (one slot)    FusionPipeline

- Input callbacks only decode and check a frame (encoding, size, payload) and offer it to the
  synchroniser (:class:`~sgdfuse_ros.node.sync.ApproximateSync`, which mirrors message_filters'
  ApproximateTimeSynchronizer; the bag replay pairs with the same class).
- A completed pair goes to a one-slot mailbox. The worker thread fuses the newest pair; a pair
  that is replaced before the worker takes it is dropped as ``busy``. Latency never grows with
  load: the node falls behind by dropping, not by queueing.
- Every output of a pair carries the RGB image's stamp (the fused image lives in the RGB frame)
  and the frame ``output.frame_id`` (default: the RGB image's frame_id).

Accounting, per input, at every moment::

    received = published + dropped (unmatched, late, duplicate, overflow, busy, stopped,
               publish_failed, out_of_memory) + rejected (encoding, decode, size, pipeline)
               + pending

where ``pending`` counts frames waiting in the synchroniser or in the worker's hands.
:meth:`FusionNodeCore.stats` returns all of it; ``/diagnostics`` publishes it periodically.

Faults cost at most the pair they happen to: a pipeline error rejects the pair (``pipeline``), a
frame that runs out of memory even after the pipeline's retry is dropped (``out_of_memory``),
frames the pipeline saved (refiner failed, out-of-memory retry) are counted in
``stats()['output']['recovered']``, and anything unexpected in the worker is caught, logged and
accounted for so that the worker thread never dies. ``device: cuda`` without a usable GPU fails
at configure time unless ``device_fallback`` is set.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
import logging
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional

import numpy as np

from . import messages
from .frame_check import decode_camera_image, Rejected, short
from .memory import release_memory
from .sync import ApproximateSync
from ..config import validate as validate_values
from ..errors import ConfigError, ResourceError, SgdfuseError
from ..parameters import NODE_PARAMS, SPECS
from ..transport.base import QosProfile, RELIABLE, Transport

INPUTS = ('thermal', 'rgb')
INPUT_TOPICS = {'thermal': 'thermal/image_raw', 'rgb': 'rgb/image_raw'}
CAMERA_INFO_TOPIC = 'rgb/camera_info'
COMPRESSED_SUFFIX = '/compressed'
DIAGNOSTICS_TOPIC = '/diagnostics'
OUTPUT_TYPES = {
    'fused/image': messages.IMAGE,
    'fused/camera_info': messages.CAMERA_INFO,
    'semantic/labels': messages.IMAGE,
    'semantic/targets': messages.IMAGE,
    messages.OVERLAY_TOPIC: messages.IMAGE,
}
DROP_REASONS = ('unmatched', 'late', 'duplicate', 'overflow', 'busy', 'stopped', 'publish_failed',
                'out_of_memory')
REJECT_REASONS = ('encoding', 'decode', 'size', 'pipeline')
STATES = ('unconfigured', 'inactive', 'active', 'finalized')
STAMP_JUMP_BACK_S = 1.0       # an older stamp by more than this resets the synchroniser
RATE_WINDOW_S = 5.0           # rates are measured over this many seconds
WARMUP_SHAPE = (256, 320)     # the dummy frame fused on activate
# parameters that only the node reads: changing them never rebuilds the pipeline
NODE_ONLY = frozenset(p.name for p in NODE_PARAMS) | {'output.encoding'}

log = logging.getLogger('sgdfuse_ros.node')


# --- small building blocks -----------------------------------------------------------------------

@dataclass
class Frame:
    """One decoded input image, checked and ready to fuse."""

    source: str            # 'thermal' or 'rgb'
    stamp: Any             # builtin_interfaces/Time of the message header
    stamp_s: float
    frame_id: str
    image: np.ndarray
    encoding: str
    arrival: float         # monotonic time the message arrived


@dataclass
class Pair:
    thermal: Frame
    rgb: Frame
    matched_at: float
    settled: bool = False  # counted as published, dropped or rejected


class LatestSlot:
    """A one-slot mailbox: ``put`` replaces what is waiting and returns it."""

    def __init__(self):
        self._item = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item):
        with self._cond:
            replaced, self._item = self._item, item
            self._cond.notify()
            return replaced

    def take(self, timeout: Optional[float] = None):
        """Return the waiting item (None after ``timeout`` or once closed)."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def clear(self):
        with self._cond:
            item, self._item = self._item, None
            return item

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self):
        with self._cond:
            self._closed = False

    def __bool__(self):
        return self._item is not None


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = RATE_WINDOW_S, maxlen: int = 2000):
        self.window_s = window_s
        self.times: Deque[float] = deque(maxlen=maxlen)

    def tick(self, now: float) -> None:
        self.times.append(now)

    def rate(self, now: float) -> float:
        recent = [t for t in self.times if now - t <= self.window_s]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0], recent[-1] - recent[0])
        return (len(recent) - 1) / span if span > 0 else 0.0

    def count(self, now: float) -> int:
        return sum(1 for t in self.times if now - t <= self.window_s)

    def last(self) -> Optional[float]:
        return self.times[-1] if self.times else None


class LatencyWindow:
    """The last ``size`` durations per stage, summarised as p50/p90 (milliseconds)."""

    def __init__(self, size: int = 100):
        self.size = int(size)
        self.samples: Dict[str, Deque[float]] = {}

    def add(self, stage: str, ms: float) -> None:
        window = self.samples.get(stage)
        if window is None or window.maxlen != self.size:
            window = self.samples[stage] = deque(window or (), maxlen=self.size)
        window.append(float(ms))

    def summary(self) -> Dict[str, Dict[str, float]]:
        out = {}
        for stage, values in self.samples.items():
            if values:
                p50, p90 = np.percentile(np.fromiter(values, float), (50, 90))
                out[stage] = {'p50': round(float(p50), 3), 'p90': round(float(p90), 3),
                              'n': len(values)}
        return out


class RateLimitedLog:
    """Warnings about the same thing at most once per ``period_s``, with a count of the rest."""

    def __init__(self, logger, period_s: float, clock: Callable[[], float] = time.monotonic):
        self.logger, self.period_s, self.clock = logger, float(period_s), clock
        self._last: Dict[str, float] = {}
        self._suppressed: Counter = Counter()

    def warning(self, key: str, text: str) -> bool:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._suppressed[key] += 1
            return False
        more = self._suppressed.pop(key, 0)
        self._last[key] = now
        self.logger.warning(text + (f' ({more} more since the last warning)' if more else ''))
        return True


@dataclass
class InputCounters:
    received: int = 0
    published: int = 0
    in_flight: int = 0                       # in the mailbox or in the worker's hands
    dropped: Counter = field(default_factory=Counter)   # busy, stopped, publish_failed
    rejected: Counter = field(default_factory=Counter)


def check_config(config: dict) -> dict:
    """Validate a complete flat configuration (types, ranges, cross-checks)."""
    missing = sorted(set(SPECS) - set(config))
    if missing:
        raise ConfigError(f"configuration lacks {', '.join(missing)}")
    checked = validate_values({k: v for k, v in config.items() if k in SPECS}, 'parameters')
    lo, hi = checked['agc.low_percentile'], checked['agc.high_percentile']
    if lo >= hi:
        raise ConfigError(f'agc.low_percentile ({lo}) must be below agc.high_percentile ({hi})')
    return checked


# --- the node ------------------------------------------------------------------------------------

class FusionNodeCore:
    """
    The node: lifecycle, inputs, synchronisation, the worker, outputs, diagnostics.

    ``pipeline_factory(config)`` builds the fusion pipeline (default
    :class:`~sgdfuse_ros.pipeline.FusionPipeline`). With ``threaded=False`` no worker thread is
    started and :meth:`process_pending` fuses the waiting pair in the caller's thread (tests).
    """

    def __init__(self, transport: Transport, config: dict, name: str = 'fusion_node',
                 logger=None, pipeline_factory: Optional[Callable[[dict], Any]] = None,
                 clock: Callable[[], float] = time.monotonic, threaded: bool = True):
        self.transport = transport
        self.config = check_config(config)
        self.name = name
        self.log = logger if logger is not None else log
        self.pipeline_factory = pipeline_factory or _default_pipeline_factory
        self.clock = clock
        self.threaded = threaded
        self.state = 'unconfigured'
        self.pipeline = None
        self.device = 'unknown'
        self._lock = threading.RLock()
        self._publishers: Dict[str, Any] = {}
        self._subscriptions: list = []
        self._diagnostics_timer = None
        self._diagnostics_pub = None
        self._mailbox = LatestSlot()
        self._worker: Optional[threading.Thread] = None
        self._rebuild = False
        self._camera_info = None
        self._reset_statistics()

    # --- statistics ------------------------------------------------------------------------------
    def _reset_statistics(self) -> None:
        self.sync = ApproximateSync(self.config['sync.slop'], self.config['sync.queue_size'])
        self._inputs = {name: InputCounters() for name in INPUTS}
        self._rates = {name: RateMeter() for name in INPUTS + ('camera_info', 'output')}
        self._rejections = {name: RateMeter() for name in INPUTS}
        self._camera_info_received = 0
        self._pairs_published = 0
        self._overlays_published = 0
        self._latency = LatencyWindow(self.config['diagnostics.window'])
        self._last_stamp = dict.fromkeys(INPUTS)
        self._prior = {'source': '', 'age_s': 0.0}
        self._sync_resets = 0
        self._pipeline_errors = 0
        self._worker_errors = 0
        self._recovered: Counter = Counter()     # faults the pipeline survived, by tag
        self._pairs = RateMeter()                # pairs formed by the synchroniser
        self._warn = RateLimitedLog(self.log, self.config['warn.period_s'], self.clock)

    # --- lifecycle -------------------------------------------------------------------------------
    def configure(self) -> None:
        """
        Go from unconfigured to inactive: publishers and the diagnostics timer exist.

        Nothing flows yet.
        """
        with self._lock:
            if self.state != 'unconfigured':
                raise ConfigError(f'configure needs the unconfigured state, not {self.state}')
            self.config = check_config(self.config)
            self._check_device()
            self._reset_statistics()
            output_qos = QosProfile(self.config['qos.output_reliability'],
                                    self.config['qos.depth'])
            for topic, typename in OUTPUT_TYPES.items():
                self._publishers[topic] = self.transport.create_publisher(topic, typename,
                                                                          output_qos)
            self._diagnostics_pub = self.transport.create_publisher(
                DIAGNOSTICS_TOPIC, messages.DIAGNOSTIC_ARRAY, RELIABLE)
            self._start_diagnostics_timer()
            self.state = 'inactive'

    def _check_device(self) -> None:
        """
        Check ``device: cuda`` at configure time rather than at the first frame.

        With no usable GPU: ConfigError now (configure), not at the first frame; with
        ``device_fallback`` a warning and the CPU.
        """
        from ..pipeline.stages import needs_torch
        if needs_torch(self.config):
            from ..pipeline.device import resolve_device
            self.device = resolve_device(self.config)

    def activate(self) -> None:
        """Go from inactive to active: build and warm up the pipeline, start worker, subscribe."""
        with self._lock:
            if self.state != 'inactive':
                raise ConfigError(f'activate needs the inactive state, not {self.state}')
        try:
            pipeline = self.pipeline_factory(dict(self.config))
        except SgdfuseError:
            raise
        except Exception as err:  # torch, onnxruntime, a broken weights file...
            raise ConfigError(f'could not build the fusion pipeline: {type(err).__name__}: '
                              f'{err}') from err
        try:
            self._warm_up(pipeline)
        except BaseException as err:
            _close(pipeline)
            if isinstance(err, Exception) and not isinstance(err, SgdfuseError):
                raise ConfigError(f'the fusion pipeline failed on its warm-up frame: '
                                  f'{type(err).__name__}: {err}') from err
            raise
        with self._lock:
            self.pipeline = pipeline
            self.device = str(getattr(pipeline, 'device', 'unknown'))
            self._rebuild = False
            # a fresh synchroniser per activation (stamps may restart), same counters
            self.sync = ApproximateSync(self.config['sync.slop'], self.config['sync.queue_size'],
                                        counters=self.sync.counters)
            self._last_stamp = dict.fromkeys(INPUTS)
            self._mailbox.reopen()
            self.state = 'active'
            if self.threaded:
                self._worker = threading.Thread(target=self._worker_loop, daemon=True,
                                                name=f'{self.name}-worker')
                self._worker.start()
        try:
            self._subscribe()
        except BaseException:
            self.deactivate()
            raise
        self.log.info(f'{self.name}: active on {self.device}; fusing '
                      f"{self.transport.resolve_topic_name(INPUT_TOPICS['thermal'])} + "
                      f"{self.transport.resolve_topic_name(INPUT_TOPICS['rgb'])}")

    def deactivate(self) -> None:
        """Go from active to inactive: unsubscribe, stop the worker, free the models."""
        with self._lock:
            if self.state != 'active':
                raise ConfigError(f'deactivate needs the active state, not {self.state}')
            self.state = 'inactive'
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:  # outside the lock: callbacks may be running
            subscription.close()
        self._mailbox.close()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None
        with self._lock:
            self._discard_in_flight(self._mailbox.clear(), 'stopped')
            self.sync.flush()
            pipeline, self.pipeline = self.pipeline, None
        _close(pipeline)
        del pipeline
        release_memory()  # CUDA cache back to the driver, heap trimmed (docs/ros.md: Memory)

    def cleanup(self) -> None:
        """Go from inactive to unconfigured: destroy publishers and timers."""
        with self._lock:
            if self.state != 'inactive':
                raise ConfigError(f'cleanup needs the inactive state, not {self.state}')
            self._stop_diagnostics_timer()
            for publisher in list(self._publishers.values()) + [self._diagnostics_pub]:
                if publisher is not None:
                    publisher.close()
            self._publishers, self._diagnostics_pub = {}, None
            self.state = 'unconfigured'

    def shutdown(self) -> None:
        """Any state -> finalized."""
        if self.state == 'active':
            self.deactivate()
        if self.state == 'inactive':
            self.cleanup()
        self.state = 'finalized'

    def _warm_up(self, pipeline) -> None:
        """One dummy frame through every stage, so the first real frame is not slow."""
        h, w = WARMUP_SHAPE
        while h * w > self.config['limits.max_input_pixels'] and h > 8:
            h, w = h // 2, w // 2
        yy, xx = np.mgrid[0:h, 0:w]
        thermal = (20000 + 40 * ((xx // 16 + yy // 16) % 2)).astype(np.uint16)
        visible = np.dstack([(xx * 255 // w).astype(np.uint8)] * 3)
        pipeline.process(thermal, visible, 'mono16', 'bgr8')
        agc = getattr(pipeline, 'agc', None)
        if agc is not None and hasattr(agc, 'reset'):
            agc.reset()  # the dummy frame must not steer the temporal AGC

    # --- subscriptions ---------------------------------------------------------------------------
    def _subscribe(self) -> None:
        qos = QosProfile(self.config['qos.reliability'], self.config['qos.depth'])
        compressed = self.config['input.compressed']
        typename = messages.COMPRESSED if compressed else messages.IMAGE
        subscriptions = []
        for source in INPUTS:
            topic = INPUT_TOPICS[source]
            if compressed:  # image_transport: the remapped base topic + /compressed
                topic = self.transport.resolve_topic_name(topic) + COMPRESSED_SUFFIX
            callback = self.on_thermal if source == 'thermal' else self.on_rgb
            subscriptions.append(self.transport.create_subscription(topic, typename, callback,
                                                                    qos))
        subscriptions.append(self.transport.create_subscription(
            CAMERA_INFO_TOPIC, messages.CAMERA_INFO, self.on_camera_info, qos))
        with self._lock:
            if self.state == 'active':
                self._subscriptions = subscriptions
                return
        for subscription in subscriptions:  # deactivated meanwhile
            subscription.close()

    # --- inputs ----------------------------------------------------------------------------------
    def on_thermal(self, msg) -> None:
        self._on_image('thermal', msg)

    def on_rgb(self, msg) -> None:
        self._on_image('rgb', msg)

    def on_camera_info(self, msg) -> None:
        with self._lock:
            self._camera_info_received += 1
            self._rates['camera_info'].tick(self.clock())
            if int(getattr(msg, 'width', 0)) > 0 and int(getattr(msg, 'height', 0)) > 0:
                self._camera_info = msg

    def _on_image(self, source: str, msg) -> None:
        now = self.clock()
        with self._lock:
            if self.state != 'active':
                return  # a late callback after deactivate: never counted, never used
            counters = self._inputs[source]
            counters.received += 1
            self._rates[source].tick(now)
        try:
            frame = self._decode(source, msg, now)
        except Rejected as err:
            self._reject(source, err.reason, str(err))
            return
        except Exception as err:  # whatever a broken message does, it costs only itself
            self._reject(source, 'decode', f'{type(err).__name__}: {short(err, 200)}')
            return
        with self._lock:
            if self.state != 'active':
                counters.dropped['stopped'] += 1
                return
            self._check_stamp_jump(source, frame.stamp_s)
            pairs = self.sync.add(0 if source == 'thermal' else 1, frame.stamp_s, frame)
            for _, thermal, _, rgb in pairs:
                self._offer(Pair(thermal, rgb, self.clock()))

    def _decode(self, source: str, msg, now: float) -> Frame:
        image, encoding = decode_camera_image(source, msg, self.config['limits.max_input_pixels'])
        header = msg.header
        return Frame(source, header.stamp, messages.stamp_seconds(header), str(header.frame_id),
                     image, encoding, now)

    def _reject(self, source: str, reason: str, text: str) -> None:
        with self._lock:
            self._inputs[source].rejected[reason] += 1
            self._rejections[source].tick(self.clock())
        self._warn.warning(f'{source}:{reason}', f'{self.name}: skipped a {source} frame: {text}')

    def _check_stamp_jump(self, source: str, stamp_s: float) -> None:
        """Reset sync on a stamp far older than the last one (a looping bag, a restarted clock)."""
        last = self._last_stamp[source]
        self._last_stamp[source] = stamp_s if last is None else max(last, stamp_s)
        if last is not None and stamp_s < last - STAMP_JUMP_BACK_S:
            self.sync.flush()
            self.sync = ApproximateSync(self.config['sync.slop'], self.config['sync.queue_size'],
                                        counters=self.sync.counters)
            self._last_stamp = dict.fromkeys(INPUTS)
            self._last_stamp[source] = stamp_s
            self._sync_resets += 1
            self.log.info(f'{self.name}: {source} stamps jumped back by {last - stamp_s:.2f} s '
                          '(a looping bag?); synchroniser reset')

    def _offer(self, pair: Pair) -> None:
        """Hand a pair to the worker; the pair it replaces is dropped as busy (lock held)."""
        for frame in (pair.thermal, pair.rgb):
            self._inputs[frame.source].in_flight += 1
        self._pairs.tick(self.clock())
        self._discard_in_flight(self._mailbox.put(pair), 'busy')

    def _discard_in_flight(self, pair: Optional[Pair], reason: str, rejected: bool = False):
        if pair is None or pair.settled:
            return
        pair.settled = True
        for frame in (pair.thermal, pair.rgb):
            counters = self._inputs[frame.source]
            counters.in_flight -= 1
            (counters.rejected if rejected else counters.dropped)[reason] += 1

    # --- the worker ------------------------------------------------------------------------------
    def _worker_loop(self) -> None:
        while self.state == 'active':
            pair = self._mailbox.take(timeout=0.5)
            if pair is not None:
                self._process_guarded(pair)

    def process_pending(self) -> bool:
        """Fuse the waiting pair now, in this thread (for ``threaded=False``). False if none."""
        pair = self._mailbox.take(timeout=0)
        if pair is None:
            return False
        self._process_guarded(pair)
        return True

    def _process_guarded(self, pair: Pair) -> None:
        """``_process``, but nothing it raises may end the worker or lose the pair."""
        try:
            self._process(pair)
        except Exception as err:  # a bug, or a pipeline returning something unusable
            with self._lock:
                self._worker_errors += 1
                if not pair.settled:
                    self._pipeline_errors += 1
                    self._discard_in_flight(pair, 'pipeline', rejected=True)
            self.log.error(f'{self.name}: unexpected error while handling the pair at '
                           f'{pair.rgb.stamp_s:.3f} ({type(err).__name__}: {short(err, 200)}); '
                           'pair rejected, node keeps running', exc_info=True)

    def _process(self, pair: Pair) -> None:
        started = self.clock()
        if self.state != 'active':  # taken just as the node deactivated
            with self._lock:
                self._discard_in_flight(pair, 'stopped')
            return
        if self._rebuild:
            self._rebuild_pipeline()
        pipeline = self.pipeline
        if pipeline is None:
            with self._lock:
                self._discard_in_flight(pair, 'stopped')
            return
        try:
            result = pipeline.process(pair.thermal.image, pair.rgb.image, pair.thermal.encoding,
                                      pair.rgb.encoding)
        except ResourceError as err:  # out of memory even after the pipeline's retry
            with self._lock:
                self._discard_in_flight(pair, 'out_of_memory')
            self._warn.warning('out_of_memory', f'{self.name}: skipped the pair at '
                                                f'{pair.rgb.stamp_s:.3f}: {err}')
            return
        except Exception as err:
            with self._lock:
                self._pipeline_errors += 1
                self._discard_in_flight(pair, 'pipeline', rejected=True)
            text = str(err) if isinstance(err, SgdfuseError) else f'{type(err).__name__}: {err}'
            self._warn.warning('pipeline', f'{self.name}: could not fuse the pair at '
                                           f'{pair.rgb.stamp_s:.3f}: {text}')
            return
        fused_at = self.clock()
        config = self.config
        with self._lock:
            overlay_pub = self._publishers.get(messages.OVERLAY_TOPIC)
            publishers = dict(self._publishers)
            camera_info = self._camera_info
        overlay = bool(config['output.overlay'] and overlay_pub is not None
                       and overlay_pub.subscription_count() > 0)
        try:
            outputs = messages.fusion_outputs(
                result, pair.rgb.stamp, config['output.frame_id'] or pair.rgb.frame_id,
                config['output.encoding'], camera_info=camera_info, overlay=overlay)
            for topic, msg in outputs.items():
                publishers[topic].publish(msg)
        except Exception as err:
            with self._lock:
                self._discard_in_flight(pair, 'publish_failed')
            self._warn.warning('publish', f'{self.name}: publishing failed: '
                                          f'{type(err).__name__}: {err}')
            return
        done = self.clock()
        with self._lock:
            pair.settled = True
            for frame in (pair.thermal, pair.rgb):
                counters = self._inputs[frame.source]
                counters.in_flight -= 1
                counters.published += 1
            self._pairs_published += 1
            self._recovered.update(getattr(result, 'recovered', None) or ())
            self._overlays_published += int(overlay)
            self._rates['output'].tick(done)
            for stage, ms in result.timings.items():
                self._latency.add(stage, ms)
            self._latency.add('wait', (started - pair.matched_at) * 1000.0)
            self._latency.add('publish', (done - fused_at) * 1000.0)
            self._latency.add('end_to_end',
                              (done - max(pair.thermal.arrival, pair.rgb.arrival)) * 1000.0)
            prior = result.prior
            self._prior = {'source': str(prior.source), 'age_s': float(prior.age_s)}

    def _rebuild_pipeline(self) -> None:
        """Rebuild the pipeline between two frames after a pipeline parameter changed."""
        self._rebuild = False
        config = dict(self.config)
        try:
            pipeline = self.pipeline_factory(config)
        except Exception as err:
            self.log.error(f'{self.name}: could not rebuild the pipeline with the new '
                           f'parameters, keeping the previous one: {err}')
            return
        old, self.pipeline = self.pipeline, pipeline
        _close(old)
        self.log.info(f'{self.name}: pipeline rebuilt with the new parameters')

    # --- parameters ------------------------------------------------------------------------------
    def check_parameters(self, changes: Dict[str, Any]) -> Dict[str, Any]:
        """
        Return the configuration ``changes`` would give, change nothing; ConfigError says why not.

        The check half of :meth:`set_parameters` (rclpy's on-set callback calls it; the
        post-set callback then applies).
        """
        for name in changes:
            spec = SPECS.get(name)
            if spec is None:
                raise ConfigError(f"unknown parameter '{name}'")
            if spec.read_only and self.state not in ('unconfigured',):
                raise ConfigError(f'parameter {name} is read-only while the node is '
                                  f'{self.state} (set it in the parameter file, or while '
                                  'unconfigured)')
        with self._lock:
            candidate = dict(self.config)
            candidate.update({name: SPECS[name].validate(v) for name, v in changes.items()})
            return check_config(candidate)

    def set_parameters(self, changes: Dict[str, Any]) -> Dict[str, Any]:
        """
        Validate and apply runtime changes, all or none; ConfigError says why not.

        Read-only parameters change only while unconfigured (they take effect on configure).
        Node parameters apply at once; pipeline parameters rebuild the pipeline before the
        next frame.
        """
        with self._lock:
            candidate = self.check_parameters(changes)
            changed = {k: v for k, v in candidate.items() if self.config.get(k) != v}
            self.config = candidate
            if 'sync.slop' in changed:
                self.sync.slop = candidate['sync.slop']
            if 'sync.queue_size' in changed:
                self.sync.queue_size = candidate['sync.queue_size']
            if 'warn.period_s' in changed:
                self._warn.period_s = candidate['warn.period_s']
            if 'diagnostics.window' in changed:
                self._latency.size = candidate['diagnostics.window']
            if 'diagnostics.period_s' in changed and self._diagnostics_timer is not None:
                self._stop_diagnostics_timer()
                self._start_diagnostics_timer()
            if any(name not in NODE_ONLY for name in changed) and self.pipeline is not None:
                self._rebuild = True
        return changed

    # --- diagnostics and statistics --------------------------------------------------------------
    def _start_diagnostics_timer(self) -> None:
        self._diagnostics_timer = self.transport.create_timer(self.config['diagnostics.period_s'],
                                                              self.publish_diagnostics)

    def _stop_diagnostics_timer(self) -> None:
        if self._diagnostics_timer is not None:
            self._diagnostics_timer.cancel()
            self._diagnostics_timer = None

    def publish_diagnostics(self) -> None:
        publisher = self._diagnostics_pub
        if publisher is None:
            return
        try:  # a timer callback: nothing may escape into the executor
            publisher.publish(self.diagnostics())
        except Exception as err:
            self._warn.warning('diagnostics', f'{self.name}: could not publish diagnostics: '
                                              f'{type(err).__name__}: {short(err, 200)}')

    def diagnostics(self):
        """Return the diagnostic_msgs/DiagnosticArray describing the node now."""
        from .diagnostics import diagnostic_array
        return diagnostic_array(self.stats(), self.transport.now_ns())

    def stats(self) -> dict:
        """Return a snapshot of everything counted and measured (a JSON-friendly dict)."""
        now = self.clock()
        with self._lock:
            pipeline = self.pipeline
        prior_health = {}
        prior_stats = getattr(pipeline, 'prior_stats', None)
        if callable(prior_stats):  # outside the lock: it asks the SAM worker
            try:
                prior_health = prior_stats() or {}
            except Exception as err:
                prior_health = {'last_error': f'{type(err).__name__}: {short(err, 200)}'}
        compute_stats = getattr(pipeline, 'compute_stats', None)  # threads, backend
        compute = compute_stats() if callable(compute_stats) else {}
        with self._lock:
            sync_stats = self.sync.stats()
            inputs = {}
            for index, source in enumerate(INPUTS):
                counters = self._inputs[source]
                sync_counts = sync_stats['thermal' if index == 0 else 'visible']
                dropped = dict.fromkeys(DROP_REASONS, 0)
                for reason in ('unmatched', 'late', 'duplicate', 'overflow'):
                    dropped[reason] = sync_counts[reason]
                for reason, count in counters.dropped.items():
                    dropped[reason] += count
                rejected = {reason: counters.rejected.get(reason, 0) for reason in REJECT_REASONS}
                last = self._rates[source].last()
                inputs[source] = {
                    'topic': self._input_topic(source),
                    'received': counters.received,
                    'published': counters.published,
                    'dropped': dropped,
                    'rejected': rejected,
                    'pending': sync_counts['pending'] + counters.in_flight,
                    'rejected_recently': self._rejections[source].count(now),
                    'rate_hz': round(self._rates[source].rate(now), 3),
                    'last_age_s': None if last is None else round(now - last, 3),
                }
            last_info = self._rates['camera_info'].last()
            return {
                'node': self.name,
                'state': self.state,
                'device': self.device,
                'config': {'prior.source': self.config['prior.source'],
                           'first_stage.type': self.config['first_stage.type'],
                           'refiner.steps': self.config['refiner.steps'],
                           'sync.slop': self.config['sync.slop'],
                           'sync.queue_size': self.config['sync.queue_size'],
                           'diagnostics.period_s': self.config['diagnostics.period_s']},
                'inputs': inputs,
                'camera_info': {'topic': self.transport.resolve_topic_name(CAMERA_INFO_TOPIC),
                                'received': self._camera_info_received,
                                'rate_hz': round(self._rates['camera_info'].rate(now), 3),
                                'last_age_s': None if last_info is None
                                else round(now - last_info, 3)},
                'output': {'published': self._pairs_published,
                           'overlay_published': self._overlays_published,
                           'rate_hz': round(self._rates['output'].rate(now), 3),
                           'pipeline_errors': self._pipeline_errors,
                           'worker_errors': self._worker_errors,
                           'out_of_memory': self._inputs['rgb'].dropped.get('out_of_memory', 0),
                           'recovered': dict(self._recovered),
                           'pairs_recent': self._pairs.count(now),
                           'sync_resets': self._sync_resets},
                'latency_ms': self._latency.summary(),
                'prior': dict(self._prior, **_prior_health(prior_health)),
                'compute': compute,
            }

    def _input_topic(self, source: str) -> str:
        topic = self.transport.resolve_topic_name(INPUT_TOPICS[source])
        return topic + COMPRESSED_SUFFIX if self.config['input.compressed'] else topic

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """
        Wait until no pair waits for or sits in the worker (tests, shutdown).

        True once idle, False after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(c.in_flight == 0 for c in self._inputs.values()):
                    return True
            time.sleep(0.005)
        return False


def accounting_errors(stats: dict) -> list:
    """Return the inputs whose counters do not add up (empty when the books balance)."""
    errors = []
    for source, counts in stats['inputs'].items():
        total = (counts['published'] + sum(counts['dropped'].values())
                 + sum(counts['rejected'].values()) + counts['pending'])
        if total != counts['received']:
            errors.append(f"{source}: received {counts['received']} != published + dropped + "
                          f'rejected + pending = {total}')
    return errors


def _prior_health(stats: dict) -> dict:
    """
    Return the SAM provider's counters that diagnostics show.

    Empty for the other prior sources.
    """
    keys = ('sam_runs', 'sam_failures', 'sam_timeouts', 'fallback_frames', 'backoff_s',
            'last_error', 'worker_alive')
    return {key: stats[key] for key in keys if key in stats}


def _default_pipeline_factory(config: dict):
    from ..pipeline.fusion_pipeline import FusionPipeline
    return FusionPipeline(config)


def _close(pipeline) -> None:
    if pipeline is not None and hasattr(pipeline, 'close'):
        pipeline.close()
