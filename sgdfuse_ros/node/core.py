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
the :class:`~sgdfuse_ros.transport.base.Transport` they hand it. This module holds the lifecycle,
the input callbacks, the worker and the statistics snapshot; the pieces it uses sit beside it.

Data flow::

    thermal/image_raw ─┐ decode + check ┌─ ApproximateSync ─ newest pair ─ worker thread ─ outputs
    rgb/image_raw ─────┘ (intake)       └─ (intake)           (LatestSlot)  fuse_pair (fuse)

- Input callbacks only decode and check a frame and offer it to the synchroniser
  (:mod:`sgdfuse_ros.intake`, which the bag replay and ``sgdfuse adapt`` use too).
- A completed pair goes to a one-slot mailbox. The worker fuses the newest pair; a pair replaced
  before the worker takes it is dropped as ``busy``: the node falls behind by dropping, not by
  queueing. Outputs (:func:`~sgdfuse_ros.pipeline.fusion_pipeline.fusion_outputs`) carry the
  visible image's stamp; ``semantic/detections`` ids are tracked across the frames of one
  activation. The warm targets (``semantic/targets``, ``semantic/detections``) and the overlay
  are computed only while something subscribes to them.
- Every frame is accounted for (:mod:`.accounting`); :meth:`FusionNodeCore.stats` returns it
  all and ``/diagnostics`` (:mod:`.diagnostics`) publishes it periodically.

Faults cost at most the pair they happen to: a pipeline error rejects the pair (``pipeline``), a
frame that runs out of memory even after the pipeline's retry is dropped (``out_of_memory``),
frames the pipeline saved (refiner failed, out-of-memory retry) are counted in
``stats()['output']['recovered']``, and anything unexpected in the worker is caught, logged and
accounted for so that the worker thread never dies. ``device: cuda`` without a usable GPU fails
at configure time unless ``device_fallback`` is set.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Optional

from .accounting import accounting_errors, NodeStatistics, prior_health  # noqa: F401
from .accounting import compute_stats, STATS_CONFIG
from .diagnostics import diagnostic_array, DiagnosticsPublisher
from .memory import release_memory
from .parameter_changes import checked_changes, rebuilds_pipeline
from .pipeline_setup import (build_pipeline, close_pipeline, configured_device,
                             default_pipeline_factory)
from .rate_limited_log import RateLimitedLog
from .. import messages
from ..config import check_config
from ..errors import ConfigError
from ..intake import ApproximateSync, frame_from_msg, Pair, pair_frame, Rejected, ROLE_LABELS
from ..intake import ROLES, short
from ..messages import CAMERA_INFO_TOPIC, COMPRESSED_SUFFIX, INPUT_TOPICS, THERMAL_INFO_TOPIC
from ..pipeline.fusion_pipeline import Failed, fuse_pair, fusion_outputs, SemanticOutputs
from ..pipeline.images import undistort_cameras
from ..registration.check import alignment_score, AlignmentMonitor
from ..transport.base import QosProfile, Transport


log = logging.getLogger('sgdfuse_ros.node')


def _subscribed(publisher) -> bool:
    return publisher is not None and publisher.subscription_count() > 0


class LatestSlot:
    """The worker's one-slot mailbox: ``put`` replaces what is waiting and returns it."""

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


class FusionNodeCore:
    """
    The node: lifecycle, inputs, synchronisation, the worker, outputs, diagnostics.

    ``state`` follows the ROS 2 lifecycle: unconfigured, inactive, active, finalized.

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
        self.pipeline_factory = pipeline_factory or default_pipeline_factory
        self.clock = clock
        self.threaded = threaded
        self.state = 'unconfigured'
        self.pipeline = None
        self.device = 'unknown'
        self._lock = threading.RLock()
        self._publishers: Dict[str, Any] = {}
        self._subscriptions: list = []
        self._diagnostics: Optional[DiagnosticsPublisher] = None
        self._mailbox = LatestSlot()
        self._worker: Optional[threading.Thread] = None
        self._rebuild = False
        self._camera_info = None
        self._thermal_info = None
        self._semantic = SemanticOutputs()  # warm targets and their tracker (stable ids)
        self._reset_statistics()

    def _reset_statistics(self) -> None:
        self.alignment = AlignmentMonitor()
        self.sync = ApproximateSync(self.config['sync.slop'], self.config['sync.queue_size'])
        self.counts = NodeStatistics(self.config['diagnostics.window'])
        self._warn = RateLimitedLog(self.log, self.config['warn.period_s'], self.clock)

    # --- lifecycle -------------------------------------------------------------------------------
    def configure(self) -> None:
        """Go from unconfigured to inactive: publishers and the diagnostics timer exist."""
        with self._lock:
            if self.state != 'unconfigured':
                raise ConfigError(f'configure needs the unconfigured state, not {self.state}')
            self.config = check_config(self.config)
            self.device = configured_device(self.config) or self.device
            self._reset_statistics()
            output_qos = QosProfile(self.config['qos.output_reliability'],
                                    self.config['qos.depth'])
            outputs = dict(messages.OUTPUT_TYPES)
            if self.config['output.compressed']:  # image_transport's compressed twins
                outputs.update(messages.COMPRESSED_OUTPUT_TYPES)
            for topic, typename in outputs.items():
                self._publishers[topic] = self.transport.create_publisher(topic, typename,
                                                                          output_qos)
            self._diagnostics = DiagnosticsPublisher(
                self.transport, self.config['diagnostics.period_s'], self.diagnostics,
                self._diagnostics_failed)
            self.state = 'inactive'

    def activate(self) -> None:
        """Go from inactive to active: build and warm up the pipeline, start worker, subscribe."""
        with self._lock:
            if self.state != 'inactive':
                raise ConfigError(f'activate needs the inactive state, not {self.state}')
        pipeline = build_pipeline(self.pipeline_factory, self.config)
        with self._lock:
            self.pipeline = pipeline
            self.device = str(getattr(pipeline, 'device', 'unknown'))
            self._rebuild = False
            self.sync.restart()  # pair afresh per activation (stamps may restart), same counters
            self._semantic.reset()  # detection ids start again at 1 per activation
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
                      f"{self.transport.resolve_topic_name(INPUT_TOPICS['visible'])}")

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
            self.counts.settle(self._mailbox.clear(), 'stopped')
            self.sync.flush()
            pipeline, self.pipeline = self.pipeline, None
        close_pipeline(pipeline)
        del pipeline
        release_memory()  # CUDA cache back to the driver, heap trimmed (docs/ros.md: Memory)

    def cleanup(self) -> None:
        """Go from inactive to unconfigured: destroy publishers and timers."""
        with self._lock:
            if self.state != 'inactive':
                raise ConfigError(f'cleanup needs the inactive state, not {self.state}')
            self._diagnostics.close()
            for publisher in self._publishers.values():
                publisher.close()
            self._publishers, self._diagnostics = {}, None
            self.state = 'unconfigured'

    def shutdown(self) -> None:
        """Any state -> finalized."""
        if self.state == 'active':
            self.deactivate()
        if self.state == 'inactive':
            self.cleanup()
        self.state = 'finalized'

    # --- subscriptions ---------------------------------------------------------------------------
    def _subscribe(self) -> None:
        qos = QosProfile(self.config['qos.reliability'], self.config['qos.depth'])
        compressed = self.config['input.compressed']
        typename = messages.COMPRESSED if compressed else messages.IMAGE
        subscriptions = []
        for role in ROLES:
            topic = INPUT_TOPICS[role]
            if compressed:  # image_transport: the remapped base topic + /compressed
                topic = self.transport.resolve_topic_name(topic) + COMPRESSED_SUFFIX
            callback = self.on_thermal if role == 'thermal' else self.on_visible
            subscriptions.append(self.transport.create_subscription(topic, typename, callback,
                                                                    qos))
        subscriptions.append(self.transport.create_subscription(
            CAMERA_INFO_TOPIC, messages.CAMERA_INFO, self.on_camera_info, qos))
        subscriptions.append(self.transport.create_subscription(
            THERMAL_INFO_TOPIC, messages.CAMERA_INFO, self.on_thermal_info, qos))
        with self._lock:
            if self.state == 'active':
                self._subscriptions = subscriptions
                return
        for subscription in subscriptions:  # deactivated meanwhile
            subscription.close()

    # --- inputs ----------------------------------------------------------------------------------
    def on_thermal(self, msg) -> None:
        self._on_image('thermal', msg)

    def on_visible(self, msg) -> None:
        self._on_image('visible', msg)

    def on_camera_info(self, msg) -> None:
        with self._lock:
            self.counts.receive_camera_info(self.clock())
            if int(getattr(msg, 'width', 0)) > 0 and int(getattr(msg, 'height', 0)) > 0:
                self._camera_info = msg

    def on_thermal_info(self, msg) -> None:
        """Keep the thermal camera's info: its lens distortion (registration.undistort)."""
        with self._lock:
            if int(getattr(msg, 'width', 0)) > 0 and int(getattr(msg, 'height', 0)) > 0:
                self._thermal_info = msg

    def _undistortion(self, pipeline) -> bool:
        """
        Hand the pipeline each camera's undistortion (``registration.undistort``).

        Returns whether the visible image is undistorted (fused/camera_info then has D = 0). A
        camera_info the undistortion cannot use is warned about and that camera used as it comes.
        """
        with self._lock:
            thermal_info, visible_info = self._thermal_info, self._camera_info
        visible, problems = undistort_cameras(getattr(pipeline, 'registration', None),
                                              thermal_info, visible_info,
                                              bool(self.config['registration.undistort']))
        for role, why in problems.items():
            self._warn.warning(f'undistort:{role}', f'{self.name}: the {ROLE_LABELS[role]} '
                               f'camera_info cannot undistort ({why}); that camera is used as '
                               'it comes')
        return visible

    def _on_image(self, role: str, msg) -> None:
        now = self.clock()
        with self._lock:
            if self.state != 'active':
                return  # a late callback after deactivate: never counted, never used
            self.counts.receive(role, now)
        try:
            frame = frame_from_msg(role, msg, self.config['limits.max_input_pixels'], now)
        except Rejected as err:  # whatever a broken message does, it costs only itself
            self._reject(role, err.reason, str(err))
            return
        with self._lock:
            if self.state != 'active':
                self.counts.inputs[role].dropped['stopped'] += 1
                return
            jump, pairs = pair_frame(self.sync, frame)
            if jump:  # a looping bag, a restarted clock: pairing restarted
                self.counts.sync_resets += 1
                self.log.info(f'{self.name}: {ROLE_LABELS[role]} stamps jumped back by '
                              f'{jump:.2f} s (a looping bag?); synchroniser reset')
            for pair in pairs:
                pair.matched_at = self.clock()
                self._offer(pair)

    def _reject(self, role: str, reason: str, text: str) -> None:
        with self._lock:
            self.counts.reject(role, reason, self.clock())
        self._warn.warning(f'{role}:{reason}',
                           f'{self.name}: skipped a {ROLE_LABELS[role]} frame: {text}')

    def _offer(self, pair: Pair) -> None:
        """Hand a pair to the worker; the pair it replaces is dropped as busy (lock held)."""
        self.counts.offer(pair, self.clock())
        self.counts.settle(self._mailbox.put(pair), 'busy')

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
                self.counts.worker_errors += 1
                if not pair.settled:
                    self.counts.pipeline_errors += 1
                    self.counts.settle(pair, 'pipeline', rejected=True)
            self.log.error(f'{self.name}: unexpected error while handling the pair at '
                           f'{pair.visible.stamp_s:.3f} ({type(err).__name__}: '
                           f'{short(err, 200)}); pair rejected, node keeps running',
                           exc_info=True)

    def _process(self, pair: Pair) -> None:
        started = self.clock()
        if self.state != 'active':  # taken just as the node deactivated
            with self._lock:
                self.counts.settle(pair, 'stopped')
            return
        if self._rebuild:
            self._rebuild_pipeline()
        pipeline = self.pipeline
        if pipeline is None:
            with self._lock:
                self.counts.settle(pair, 'stopped')
            return
        undistorted = self._undistortion(pipeline)
        result = fuse_pair(pipeline, pair)
        if isinstance(result, Failed):
            self._failed(pair, result)
            return
        fused_at = self.clock()
        config = self.config
        with self._lock:
            overlay_pub = self._publishers.get(messages.OVERLAY_TOPIC)
            publishers = dict(self._publishers)
            camera_info = self._camera_info
        # as image_transport: a compressed twin is encoded only while someone subscribes to it
        compressed = [topic for topic in messages.COMPRESSED_FORMATS
                      if _subscribed(publishers.get(topic + COMPRESSED_SUFFIX))]
        overlay = bool(config['output.overlay'] and overlay_pub is not None
                       and (overlay_pub.subscription_count() > 0
                            or messages.OVERLAY_TOPIC in compressed))
        # the warm targets too, like the overlay: selected only while someone reads them
        targets = (messages.TARGETS_TOPIC in compressed
                   or _subscribed(publishers.get(messages.TARGETS_TOPIC))
                   or _subscribed(publishers.get(messages.DETECTIONS_TOPIC)))
        try:
            outputs = fusion_outputs(
                result, pair.visible.stamp, config['output.frame_id'] or pair.visible.frame_id,
                config['output.encoding'], camera_info=camera_info, overlay=overlay,
                undistorted=undistorted, semantic=self._semantic, compressed=compressed,
                jpeg_quality=config['output.jpeg_quality'], targets=targets)
            for topic, msg in outputs.items():
                publishers[topic].publish(msg)
        except Exception as err:
            with self._lock:
                self.counts.settle(pair, 'publish_failed')
            self._warn.warning('publish', f'{self.name}: publishing failed: '
                                          f'{type(err).__name__}: {err}')
            return
        done = self.clock()
        with self._lock:
            self.counts.publish(pair, result, overlay, started, fused_at, done)
        self._check_alignment(pipeline, result)

    def _check_alignment(self, pipeline, result) -> None:
        """Every ``diagnostics.alignment_every`` published pair: score the cameras' alignment."""
        every = self.config.get('diagnostics.alignment_every', 0)
        if not every or self.counts.pairs_published % every:
            return
        try:
            registration = getattr(pipeline, 'registration', None)
            valid = registration.valid_mask() if registration is not None else None
            score = alignment_score(result.thermal, result.visible, valid)
        except Exception as err:  # a score must never cost the node
            self._warn.warning('alignment', f'{self.name}: alignment check failed: '
                                            f'{type(err).__name__}: {short(err, 200)}')
            return
        with self._lock:
            was = self.alignment.dropped
            self.alignment.add(score)
            now = self.alignment.dropped
            level = self.alignment.stats()
        if now and not was:
            self.log.warning(f"{self.name}: camera alignment dropped to {level['recent']:.2f} "
                             f"(running level {level['reference']:.2f}): a camera may have "
                             'moved; check the registration (sgdfuse register)')

    def _failed(self, pair: Pair, failed: Failed) -> None:
        """Count a pair the fuse step could not fuse (a bug counts as the pipeline's refusal)."""
        if failed.reason == 'out_of_memory':  # even after the pipeline's retry: dropped
            with self._lock:
                self.counts.settle(pair, 'out_of_memory')
            self._warn.warning('out_of_memory', f'{self.name}: skipped the pair at '
                                                f'{pair.visible.stamp_s:.3f}: {failed.text}')
            return
        with self._lock:
            self.counts.pipeline_errors += 1
            self.counts.settle(pair, 'pipeline', rejected=True)
        self._warn.warning('pipeline', f'{self.name}: could not fuse the pair at '
                                       f'{pair.visible.stamp_s:.3f}: {failed.text}')

    def _rebuild_pipeline(self) -> None:
        """Rebuild the pipeline between two frames after a pipeline parameter changed."""
        self._rebuild = False
        try:
            pipeline = self.pipeline_factory(dict(self.config))
        except Exception as err:
            self.log.error(f'{self.name}: could not rebuild the pipeline with the new '
                           f'parameters, keeping the previous one: {err}')
            return
        old, self.pipeline = self.pipeline, pipeline
        close_pipeline(old)
        self.log.info(f'{self.name}: pipeline rebuilt with the new parameters')

    # --- parameters ------------------------------------------------------------------------------
    def check_parameters(self, changes: Dict[str, Any]) -> Dict[str, Any]:
        """Return the config ``changes`` would give (rclpy's on-set check); ConfigError if not."""
        with self._lock:
            return checked_changes(self.config, changes, self.state)[0]

    def set_parameters(self, changes: Dict[str, Any]) -> Dict[str, Any]:
        """
        Validate and apply runtime changes, all or none; ConfigError says why not.

        Read-only parameters change here only while unconfigured (they take effect on
        configure); the ROS node never passes one on: rclpy refuses ``ros2 param set`` on a
        read-only parameter in every state, so there a change needs a restart. Node parameters
        apply at once; pipeline parameters rebuild the pipeline before the next frame.
        """
        with self._lock:
            candidate, changed = checked_changes(self.config, changes, self.state)
            self.config = candidate
            if 'sync.slop' in changed:
                self.sync.slop = candidate['sync.slop']
            if 'sync.queue_size' in changed:
                self.sync.queue_size = candidate['sync.queue_size']
            if 'warn.period_s' in changed:
                self._warn.period_s = candidate['warn.period_s']
            if 'diagnostics.window' in changed:
                self.counts.latency.size = candidate['diagnostics.window']
            if 'diagnostics.period_s' in changed and self._diagnostics is not None:
                self._diagnostics.set_period(candidate['diagnostics.period_s'])
            if rebuilds_pipeline(changed) and self.pipeline is not None:
                self._rebuild = True
        return changed

    # --- diagnostics and statistics (:mod:`.accounting`) -----------------------------------------
    def _diagnostics_failed(self, err: Exception) -> None:
        self._warn.warning('diagnostics', f'{self.name}: could not publish diagnostics: '
                                          f'{type(err).__name__}: {short(err, 200)}')

    def diagnostics(self):
        """Return the diagnostic_msgs/DiagnosticArray describing the node now."""
        return diagnostic_array(self.stats(), self.transport.now_ns())

    def stats(self) -> dict:
        """Return a snapshot of everything counted and measured (a JSON-friendly dict)."""
        now = self.clock()
        with self._lock:
            pipeline = self.pipeline
        health = prior_health(pipeline)  # outside the lock: it asks the SAM worker
        compute = compute_stats(pipeline)  # threads, backend
        with self._lock:
            topics = {role: self._input_topic(role) for role in ROLES}
            topics['camera_info'] = self.transport.resolve_topic_name(CAMERA_INFO_TOPIC)
            return {
                'node': self.name,
                'state': self.state,
                'device': self.device,
                'config': {name: self.config[name] for name in STATS_CONFIG},
                **self.counts.snapshot(now, self.sync.stats(), topics, health),
                'compute': compute,
                'alignment': self.alignment.stats(),
            }

    def _input_topic(self, role: str) -> str:
        topic = self.transport.resolve_topic_name(INPUT_TOPICS[role])
        return topic + COMPRESSED_SUFFIX if self.config['input.compressed'] else topic

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no pair waits for or sits in the worker: True, or False after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.counts.idle():
                    return True
            time.sleep(0.005)
        return False
