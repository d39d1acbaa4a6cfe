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

r"""
The replay: fuse a recorded ROS 2 bag exactly as the node would.

The output is a new bag and a report; the command is :mod:`sgdfuse_ros.cli.replay`.

    sgdfuse replay recording/ --out fused_bag            # topics found automatically
    sgdfuse replay run.mcap --out fused --storage mcap --thermal-topic /flir/image_raw \
        --rgb-topic /camera/color/image_raw/compressed --set sync.slop=0.03

Messages are read in log-time order (the order the node would have received them), checked and
paired by the node's own intake (:mod:`sgdfuse_ros.intake`, with ``sync.slop`` and
``sync.queue_size`` from the config). Each pair goes through the node's fuse step
(:func:`~sgdfuse_ros.pipeline.fusion_pipeline.fuse_pair`, :class:`FusionPipeline` with the
same config file), and the node's outputs
(:func:`~sgdfuse_ros.pipeline.fusion_pipeline.fusion_outputs`) are written under the names the
node publishes (:data:`sgdfuse_ros.messages.OUTPUT_TYPES`), in ``--namespace`` as the node's
namespace (default the root: ``/fused/image``, ``/fused/camera_info``, ``/semantic/labels``,
``/semantic/targets``, ``/semantic/detections``: vision_msgs/Detection2DArray, ids tracked
across the whole replay), so a replayed bag and a live recording compare topic for topic; with
``--compressed-output`` also their image_transport ``/compressed`` twins, as the node publishes
them (``output.compressed``). Bags
written before under ``/fusion/...`` still read: output topics are never taken as camera input
(:mod:`.reader`). Every output carries the stamp of its pair's visible
image (copied field by field; the fused image lives in the visible camera's frame) and is written
at the log time of the later message of its pair.

It streams: at most ``sync.queue_size`` messages per camera wait in memory, so long bags run in
flat memory. Frames that cannot be decoded or that the pipeline rejects (InputError) are skipped,
counted with their reason, and the replay goes on. A bag that stops being readable part-way (a
truncated recording) keeps what was fused before the damage, and the command then fails with a
one-line error naming the damage.

A replay may fuse only a window of the bag's pairs (``pairs=(first, end)``: pair indices, as the
whole bag's replay numbers them; ``sgdfuse corpus --chunk-frames`` runs a long bag as such
chunks). It reads and pairs the bag from its start exactly as the whole replay does, so pair
indices never depend on the window; the pairs before ``first`` are not fused but advance what
carries over from pair to pair (the AGC window, the target tracker's ids, the camera_info
undistortion), and reading stops once pair ``end - 1`` has been fused.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Dict, Optional, Tuple

import numpy as np

from .reader import BagReadError
from .report import PANEL_HEIGHT
from ..errors import InputError
from ..eval.metrics import frame_metrics, to_gray
from ..intake import ApproximateSync, frame_from_bytes, Pair, pair_frame, Rejected, ROLE_LABELS
from ..messages import COMPRESSED_FORMATS, COMPRESSED_OUTPUT_TYPES, COMPRESSED_SUFFIX
from ..messages import deserialize, OUTPUT_TOPICS, OUTPUT_TYPES, OVERLAY_TOPIC
from ..pipeline.fusion_pipeline import Failed, fuse_pair, fusion_outputs, SemanticOutputs
from ..pipeline.images import undistort_cameras
from ..prior.format import overlay as draw_overlay
from ..prior.targets import draw_detections
from ..writing import is_write_failure, write_failure


def _u8(thermal_f32):
    return np.clip(np.rint(thermal_f32 * 255.0), 0, 255).astype(np.uint8)


class Replay:
    """
    One replay: bag in, pipeline, bag out, report. ``run()`` does everything.

    Each camera message is handled as the node handles it on arrival
    (:class:`sgdfuse_ros.node.core.FusionNodeCore`): CDR decode, encoding and size checks, image
    decode -- a message failing one is *rejected* with that reason and never offered to the
    synchroniser -- then the stamp-jump check (stamps going back by more than
    ``STAMP_JUMP_BACK_S``, e.g. a looping recording, reset the synchroniser) and
    ``ApproximateSync.add``. Unlike the live node, which drops a pair as ``busy`` when the worker
    is still fusing the previous one, the replay fuses every matched pair: it measures pairing
    and fusion, not whether this machine keeps up in real time (the report's throughput says
    that).
    """

    def __init__(self, bag, topics, pipeline, config: dict, writer, report, namespace: str,
                 copy_inputs: bool = False, overlay: bool = False, with_metrics: bool = True,
                 progress=None, stop=None, draw_detections: bool = False,
                 compressed: bool = False, pairs: Optional[Tuple[int, Optional[int]]] = None):
        self.bag, self.topics, self.pipeline, self.config = bag, topics, pipeline, config
        self.writer, self.report, self.namespace = writer, report, namespace
        self.copy_inputs, self.overlay, self.with_metrics = copy_inputs, overlay, with_metrics
        self.draw_detections = draw_detections  # the contact sheet's fused panel shows them
        self.progress = progress
        # image_transport's compressed twins of the image outputs, as the node publishes them
        self.compressed = [topic for topic in COMPRESSED_FORMATS
                           if compressed and (overlay or topic != OVERLAY_TOPIC)]
        self.stop = stop  # a StopRequest (cli/guard.py): a signal stops between messages
        self.write_error: Optional[str] = None
        self.sync = ApproximateSync(slop=config['sync.slop'], queue_size=config['sync.queue_size'])
        self.sync_resets = 0
        self.roles = {topics.thermal.name: 'thermal', topics.visible.name: 'visible'}
        if topics.visible_info is not None:
            self.roles[topics.visible_info.name] = 'visible_info'
        if (copy_inputs or config['registration.undistort']) and topics.thermal_info is not None:
            self.roles.setdefault(topics.thermal_info.name, 'thermal_info')
        self.other_read: Dict[str, int] = {r: 0 for r in self.roles.values()
                                           if r not in ('thermal', 'visible')}
        self.visible_info = None
        self.thermal_info = None
        self.undistort_problems: Dict[str, str] = {}
        self.latest = {'thermal': None, 'visible': None}       # last stamp seen (closest-gap hint)
        self.pairs = 0
        self.first, self.end = pairs if pairs is not None else (0, None)  # the window fused
        self.ended_early = False  # stopped reading at the window's end (the rest not read)
        self.read_error: Optional[str] = None
        self.interrupted = None  # the signal's name once stopped by one
        self.semantic = SemanticOutputs()  # warm targets and their tracker, for the whole bag

    def output_topic(self, relative: str) -> str:
        return f'{self.namespace}/{relative}'

    def declare_topics(self) -> None:
        types = dict(OUTPUT_TYPES)
        types.update(COMPRESSED_OUTPUT_TYPES)
        names = list(OUTPUT_TOPICS) + ([OVERLAY_TOPIC] if self.overlay else []) + \
            [topic + COMPRESSED_SUFFIX for topic in self.compressed]
        for rel in names:
            self.writer.add_topic(self.output_topic(rel), types[rel])
        if self.copy_inputs:
            outputs = {self.output_topic(rel) for rel in names}
            for name in self.roles:
                if name in outputs:
                    raise InputError(f'input topic {name} collides with an output topic; '
                                     f'choose another --namespace')
                entry = self.bag.topics[name]
                qos = [q for c in entry.connections
                       for q in (getattr(c.ext, 'offered_qos_profiles', None) or [])][:1]
                self.writer.add_topic(name, entry.msgtype, qos or None)

    # --- the stream ------------------------------------------------------------------------------
    def run(self) -> None:
        self.declare_topics()
        stream = self.bag.messages(list(self.roles))
        try:
            for topic, msgtype, log_ns, raw in stream:
                if self.stop is not None and self.stop.requested:
                    self.interrupted = self.stop.name
                    break
                if self.write_error:
                    break
                role = self.roles[topic]
                if self.copy_inputs and not self._write(topic, log_ns, raw, msgtype):
                    break
                if role not in ('thermal', 'visible'):
                    self.other_read[role] += 1
                    if role in ('visible_info', 'thermal_info'):
                        try:
                            setattr(self, role, deserialize(raw, msgtype))
                        except Exception as err:
                            self.report.notes.append(
                                f"a{'n RGB' if role == 'visible_info' else ' thermal'} "
                                f'camera_info message did not decode ({type(err).__name__})')
                    continue
                self.report.message(role)
                self.arrive(role, msgtype, raw, log_ns)
                if self.end is not None and self.pairs >= self.end:
                    self.ended_early = True  # the window is done: the rest is another's
                    break
        except BagReadError as err:
            self.read_error = str(err)
        finally:
            stream.close()
        if self.stop is not None and self.stop.requested:  # also when it came at the last pair
            self.interrupted = self.stop.name
        self.sync.flush()

    def _write(self, topic: str, log_ns: int, msg, msgtype=None) -> bool:
        """Write one message; False (and ``write_error`` set) when the write failed."""
        try:
            self.writer.write(topic, log_ns, msg, msgtype)
        except Exception as err:  # noqa: B902
            if not is_write_failure(err):
                raise
            self.write_error = write_failure(err, self.writer.path)
            return False
        return True

    def arrive(self, role: str, msgtype: str, raw, log_ns: int) -> None:
        """One camera message, through the node's intake (its frame arrives at ``log_ns``)."""
        tick = time.perf_counter()
        try:
            frame = frame_from_bytes(role, raw, msgtype, self.config['limits.max_input_pixels'],
                                     log_ns)
        except Rejected as err:
            self.report.rejected(role, err.reason, str(err))
            return
        self.report.timing('message_decode', (time.perf_counter() - tick) * 1000.0)
        self.stamp_seen(role, frame.stamp_ns)
        jump, pairs = pair_frame(self.sync, frame)
        if jump:
            self.sync_resets += 1
            self.report.notes.append(f'{ROLE_LABELS[role]} stamps jumped back by {jump:.2f} s at '
                                     f'{frame.stamp_s:.3f}; synchroniser reset (as the node does)')
        for pair in pairs:
            self.fuse(pair)

    def stamp_seen(self, role: str, stamp_ns: int) -> None:
        """Track the closest thermal/RGB stamp gap (a hint when no pair forms)."""
        other = self.latest['visible' if role == 'thermal' else 'thermal']
        if other is not None:
            self.report.stamp_gap(abs(stamp_ns - other) * 1e-9)
        self.latest[role] = stamp_ns

    # --- one pair --------------------------------------------------------------------------------
    def fuse(self, pair: Pair) -> None:
        """One matched pair through the node's fuse step; its outputs written to the bag."""
        t_stamp, v_stamp = pair.thermal.stamp_ns, pair.visible.stamp_ns
        index = self.pairs
        self.pairs += 1
        if index < self.first:
            return self.advance(pair)
        if self.end is not None and index >= self.end:
            return None  # completed in the same step as the window's last pair: not ours
        if self.write_error:  # paired in the same step as the pair whose write failed
            self.report.failure(index, v_stamp, 'not_written', 'the output bag stopped '
                                'accepting writes before this pair')
            return self._tick()
        undistorted = self.undistort()
        if self.stop is None:
            result = fuse_pair(self.pipeline, pair)
        else:  # a second signal abandons this pair (counted) rather than waiting for it
            result, abandoned = self.stop.abandonable(fuse_pair, self.pipeline, pair)
            if abandoned:
                self.report.failure(index, v_stamp, 'interrupted', 'abandoned by a second '
                                    f'{self.stop.name} while it was being fused')
                return self._tick()
        if isinstance(result, Failed):  # the node survives whatever a pair does; so does replay
            self.report.failure(index, v_stamp, result.reason, result.text)
            return self._tick()

        tick = time.perf_counter()
        frame_id = self.config['output.frame_id'] or pair.visible.frame_id
        outputs = fusion_outputs(result, pair.visible.stamp, frame_id,
                                 self.config['output.encoding'], self.visible_info, self.overlay,
                                 undistorted, self.semantic, compressed=self.compressed,
                                 jpeg_quality=self.config['output.jpeg_quality'])
        log_ns = max(pair.thermal.arrival, pair.visible.arrival)  # bag log times
        for rel, msg in outputs.items():
            if not self._write(self.output_topic(rel), log_ns, msg):
                self.report.failure(index, v_stamp, 'not_written', self.write_error)
                return self._tick()
        try:
            self.writer.checkpoint()
        except Exception as err:  # noqa: B902
            if not is_write_failure(err):
                raise
            self.write_error = write_failure(err, self.writer.path)
            self.report.failure(index, v_stamp, 'not_written', self.write_error)
            return self._tick()
        write_ms = (time.perf_counter() - tick) * 1000.0

        metrics, metrics_ms = None, None
        if self.with_metrics:
            tick = time.perf_counter()
            metrics, missing = frame_metrics(to_gray(result.fused_bgr),
                                             to_gray(_u8(result.thermal)),
                                             to_gray(result.visible))
            if missing:
                self.report.metrics_missing(index, missing)
            metrics_ms = (time.perf_counter() - tick) * 1000.0
        timings = dict(result.timings, write=write_ms)
        if metrics_ms is not None:
            timings['metrics'] = metrics_ms
        self.report.frame(index, v_stamp, t_stamp, timings, metrics, result.prior_source,
                          result.refined, result.notes)
        if self.report.wants_sample(index):
            fused = result.fused_bgr
            if self.draw_detections:
                found, ids = self.semantic.last
                fused = draw_detections(fused, found.boxes, ids, 2 * PANEL_HEIGHT)
            self.report.sample(index, v_stamp, result.thermal, result.visible, fused,
                               draw_overlay(result.fused_bgr, result.prior))
        self._tick()

    def undistort(self) -> bool:
        """Give the pipeline the latest camera_info's undistortion; whether it undistorts."""
        undistorted, problems = undistort_cameras(
            getattr(self.pipeline, 'registration', None), self.thermal_info, self.visible_info,
            bool(self.config['registration.undistort']))
        for role, why in problems.items():
            if role not in self.undistort_problems:
                self.undistort_problems[role] = why
                self.report.notes.append(f'the {role} camera_info cannot undistort ({why}); '
                                         'that camera was used as it came')
        return undistorted

    def advance(self, pair: Pair) -> None:
        """
        Take a pair before the window: leave what it leaves for the next pairs, unfused.

        The pipeline takes its inputs (:meth:`FusionPipeline.advance`: the AGC window) and the
        target tracker sees its warm targets, as :meth:`fuse` and :func:`fusion_outputs` would;
        a pair whose inputs the pipeline refuses leaves nothing, as a failed pair. (A pair that
        fails later, in a stage, would not reach the tracker in the whole replay; here it does.)
        """
        self.undistort()
        try:
            thermal = self.pipeline.advance(pair.thermal.image, pair.visible.image,
                                            pair.thermal.encoding, pair.visible.encoding)
        except Exception:  # noqa: B902 - the whole replay counts this pair as failed
            return
        source = 'none' if self.config['prior.source'] == 'none' else 'advance'
        self.semantic(SimpleNamespace(thermal=thermal, fused_y=thermal,
                                      prior=SimpleNamespace(source=source)))

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress.update()
