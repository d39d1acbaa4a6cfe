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

Messages are read in log-time order (the order the node would have received them) and paired by
the node's own synchroniser (:class:`sgdfuse_ros.node.sync.ApproximateSync`, with ``sync.slop`` and
``sync.queue_size`` from the config). Each pair goes through :class:`FusionPipeline` with the same
config file, and the node's outputs (:func:`sgdfuse_ros.fuse.fusion_outputs`)
are written under
``--namespace`` (default ``/fusion``): ``fused/image``, ``fused/camera_info``,
``semantic/labels``, ``semantic/targets``. Every output carries the stamp of its pair's visible
image (copied field by field; the fused image lives in the visible camera's frame) and is written
at the log time of the later message of its pair.

It streams: at most ``sync.queue_size`` messages per camera wait in memory, so long bags run in
flat memory. Frames that cannot be decoded or that the pipeline rejects (InputError) are skipped,
counted with their reason, and the replay goes on. A bag that stops being readable part-way (a
truncated recording) keeps what was fused before the damage, and the command then fails with a
one-line error naming the damage.
"""

from __future__ import annotations

import time
from typing import Dict, Optional

from ..errors import InputError
from ..node.frame_check import Rejected
from ..node.frames import INPUT_LABELS


def _u8(thermal_f32):
    import numpy as np
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
                 progress=None, stop=None):
        from ..node.sync import ApproximateSync

        self.bag, self.topics, self.pipeline, self.config = bag, topics, pipeline, config
        self.writer, self.report, self.namespace = writer, report, namespace
        self.copy_inputs, self.overlay, self.with_metrics = copy_inputs, overlay, with_metrics
        self.progress = progress
        self.stop = stop  # a cli.guard.StopRequest: a signal stops the stream between messages
        self.write_error: Optional[str] = None
        self.sync = ApproximateSync(slop=config['sync.slop'], queue_size=config['sync.queue_size'])
        self.sync_resets = 0
        self.roles = {topics.thermal.name: 'thermal', topics.visible.name: 'visible'}
        if topics.visible_info is not None:
            self.roles[topics.visible_info.name] = 'visible_info'
        if copy_inputs and topics.thermal_info is not None:
            self.roles.setdefault(topics.thermal_info.name, 'thermal_info')
        self.other_read: Dict[str, int] = {r: 0 for r in self.roles.values()
                                           if r not in ('thermal', 'visible')}
        self.visible_info = None
        self.latest = {'thermal': None, 'visible': None}       # last stamp seen (closest-gap hint)
        self.pairs = 0
        self.read_error: Optional[str] = None
        self.interrupted = None  # the signal's name once stopped by one
        self._metrics = None
        if with_metrics:
            try:
                from ..eval.metrics import frame_metrics, to_gray
                self._metrics = (frame_metrics, to_gray)
            except ImportError:
                self.with_metrics = False
                report.notes.append('metrics module not available: no fusion metrics')

    def output_topic(self, relative: str) -> str:
        return f'{self.namespace}/{relative}'

    def declare_topics(self) -> None:
        from ..messages import OUTPUT_TOPICS, OUTPUT_TYPES, OVERLAY_TOPIC
        names = list(OUTPUT_TOPICS) + ([OVERLAY_TOPIC] if self.overlay else [])
        for rel in names:
            self.writer.add_topic(self.output_topic(rel), OUTPUT_TYPES[rel])
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
        from .reader import BagReadError
        from ..messages import deserialize

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
                    if role == 'visible_info':
                        try:
                            self.visible_info = deserialize(raw, msgtype)
                        except Exception as err:
                            self.report.notes.append(f'an RGB camera_info message did not '
                                                     f'decode ({type(err).__name__})')
                    continue
                self.report.message(role)
                self.arrive(role, msgtype, raw, log_ns)
        except BagReadError as err:
            self.read_error = str(err)
        finally:
            stream.close()
        if self.stop is not None and self.stop.requested:  # also when it came at the last pair
            self.interrupted = self.stop.name
        self.sync.flush()

    def _write(self, topic: str, log_ns: int, msg, msgtype=None) -> bool:
        """Write one message; False (and ``write_error`` set) when the write failed."""
        from ..cli.guard import is_write_failure, write_failure
        try:
            self.writer.write(topic, log_ns, msg, msgtype)
        except Exception as err:  # noqa: B902
            if not is_write_failure(err):
                raise
            self.write_error = write_failure(err, self.writer.path)
            return False
        return True

    def arrive(self, role: str, msgtype: str, raw, log_ns: int) -> None:
        """One camera message, handled as the node's input callback handles it."""
        from ..messages import deserialize, stamp_nanoseconds

        tick = time.perf_counter()
        try:
            msg = deserialize(raw, msgtype)
            stamp_ns = stamp_nanoseconds(msg)
        except Exception as err:
            self.report.rejected(role, 'cdr', f'message does not deserialise as {msgtype}: '
                                              f'{type(err).__name__}')
            return
        try:
            image, encoding = self.decode(role, msg)
        except Rejected as err:
            self.report.rejected(role, err.reason, str(err))
            return
        self.report.timing('message_decode', (time.perf_counter() - tick) * 1000.0)
        self.stamp_seen(role, stamp_ns)
        frame = (msg.header, image, encoding, log_ns, stamp_ns)
        for _, thermal, _, visible in self.sync.add(0 if role == 'thermal' else 1,
                                                    stamp_ns * 1e-9, frame):
            self.fuse(thermal, visible)

    def decode(self, role: str, msg):
        """Run the node's checks, in its order (:mod:`sgdfuse_ros.node.frame_check`)."""
        from ..node.frame_check import decode_camera_image
        return decode_camera_image(role, msg, self.config['limits.max_input_pixels'])

    def stamp_seen(self, role: str, stamp_ns: int) -> None:
        other = self.latest['visible' if role == 'thermal' else 'thermal']
        if other is not None:
            self.report.stamp_gap(abs(stamp_ns - other) * 1e-9)
        self.latest[role] = stamp_ns
        stamp_s = stamp_ns * 1e-9
        jump = self.sync.jumped_back(0 if role == 'thermal' else 1, stamp_s)
        if jump:
            self.sync_resets += 1
            self.report.notes.append(f'{INPUT_LABELS[role]} stamps jumped back by {jump:.2f} s at '
                                     f'{stamp_s:.3f}; synchroniser reset (as the node does)')

    # --- one pair --------------------------------------------------------------------------------
    def fuse(self, thermal_frame, visible_frame) -> None:
        from ..errors import error_line, ResourceError, SgdfuseError
        from ..fuse import fusion_outputs

        _, thermal, t_enc, t_log, t_stamp = thermal_frame
        header, visible, v_enc, v_log, v_stamp = visible_frame
        index = self.pairs
        self.pairs += 1
        if self.write_error:  # paired in the same step as the pair whose write failed
            self.report.failure(index, v_stamp, 'not_written', 'the output bag stopped '
                                'accepting writes before this pair')
            return self._tick()
        try:
            if self.stop is None:
                result = self.pipeline.process(thermal, visible, t_enc, v_enc)
            else:  # a second signal abandons this pair (counted) rather than waiting for it
                result, abandoned = self.stop.abandonable(self.pipeline.process, thermal,
                                                          visible, t_enc, v_enc)
                if abandoned:
                    self.report.failure(index, v_stamp, 'interrupted', 'abandoned by a second '
                                        f'{self.stop.name} while it was being fused')
                    return self._tick()
        except ResourceError as err:  # out of memory even after the pipeline's retry
            self.report.failure(index, v_stamp, 'out_of_memory', str(err))
            return self._tick()
        except SgdfuseError as err:
            self.report.failure(index, v_stamp, 'pipeline', str(err))
            return self._tick()
        except Exception as err:  # the node survives anything a frame does; so does the replay
            self.report.failure(index, v_stamp, 'pipeline_bug', error_line(err, 200))
            return self._tick()

        tick = time.perf_counter()
        frame_id = self.config['output.frame_id'] or str(header.frame_id)
        outputs = fusion_outputs(result, header.stamp, frame_id, self.config['output.encoding'],
                                 self.visible_info, self.overlay)
        log_ns = max(t_log, v_log)
        for rel, msg in outputs.items():
            if not self._write(self.output_topic(rel), log_ns, msg):
                self.report.failure(index, v_stamp, 'not_written', self.write_error)
                return self._tick()
        try:
            self.writer.checkpoint()
        except Exception as err:  # noqa: B902
            from ..cli.guard import is_write_failure, write_failure
            if not is_write_failure(err):
                raise
            self.write_error = write_failure(err, self.writer.path)
            self.report.failure(index, v_stamp, 'not_written', self.write_error)
            return self._tick()
        write_ms = (time.perf_counter() - tick) * 1000.0

        metrics, metrics_ms = None, None
        if self._metrics is not None:
            frame_metrics, to_gray = self._metrics
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
            from ..prior.format import overlay
            self.report.sample(index, v_stamp, result.thermal, result.visible, result.fused_bgr,
                               overlay(result.fused_bgr, result.prior))
        self._tick()

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress.update()
