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
``sgdfuse replay``: fuse a recorded ROS 2 bag into an output bag and a report.

The options and the command; the replay itself is :class:`sgdfuse_ros.bag.replay.Replay`.
"""

from __future__ import annotations

import os
from pathlib import Path
import re
import sys
import time

from .guard import stop_request
from .options import add_camera_topics, add_config, add_input_bag
from .outputs import check_apart, config_inputs, ReplacedFiles, ReplacedPath
from .outputs import check_output_dir
from .values import namespace as namespace_name, topic_name
from ..bag.reader import choose_topics, open_bag
from ..bag.replay import Replay
from ..bag.report import ReplayReport
from ..bag.writer import BagWriter, check_replaceable, NullWriter
from ..config import load_config
from ..errors import InputError
from ..eval.metrics import HEADLINE_METRICS
from ..pipeline.fusion_pipeline import FusionPipeline
from ..progress import Progress
from ..writing import is_write_failure, write_failure


def add_arguments(parser) -> None:
    add_input_bag(parser, 'in_bag', 'IN_BAG')
    parser.add_argument('--out', required=True, metavar='OUT_BAG', help='output bag to create')
    add_camera_topics(parser)
    parser.add_argument('--rgb-info-topic', metavar='C', type=topic_name,
                        dest='visible_info_topic',
                        help='RGB CameraInfo topic (default: the '
                        'camera_info beside the RGB topic)')
    parser.add_argument('--namespace', default='/', type=namespace_name,
                        help="namespace of the output topics, as the node's namespace: "
                        '/fused/image etc. by default, the names the node publishes; give the '
                        "node's namespace (e.g. /robot) to compare with its recording")
    parser.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3',
                        help='output storage (default sqlite3, which Humble plays)')
    parser.add_argument('--version', type=int, choices=(8, 9), default=8,
                        help='output rosbag2 metadata version (default 8, which Humble reads)')
    parser.add_argument('--copy-inputs', action='store_true',
                        help='also copy the camera topics (and their camera_info) to the output')
    parser.add_argument('--overlay', action='store_true',
                        help='also write semantic/overlay (prior drawn over the fused image)')
    parser.add_argument('--sheet-detections', action='store_true',
                        help='draw semantic/detections (box, id, score) over the fused image '
                             'in the contact sheet of the report')
    parser.add_argument('--compressed-output', action='store_true',
                        help="also write image_transport's compressed topics: "
                        'fused/image/compressed (JPEG, output.jpeg_quality), '
                        'semantic/labels|targets/compressed (PNG) and, with --overlay, '
                        'semantic/overlay/compressed')
    add_config(parser)
    parser.add_argument('--report', metavar='DIR', help='report folder (default OUT_BAG_report)')
    parser.add_argument('--no-metrics', action='store_true',
                        help='skip the per-frame fusion metrics (faster)')
    parser.add_argument('--every-frame-prior', action='store_true',
                        help='compute the semantic prior for every frame (prior.every_frame=true; '
                        'deterministic, slower with SAM)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output bag')
    parser.add_argument('--quiet', action='store_true', help='no progress output')


def check_namespace(namespace: str) -> str:
    ns = '/' + namespace.strip().strip('/') if namespace.strip('/ ') else ''
    if ns and not re.fullmatch(r'(/[A-Za-z_][A-Za-z0-9_]*)+', ns):
        raise InputError(f'--namespace {namespace!r} is not a valid ROS namespace '
                         f"(letters, digits, '_', separated by '/')")
    return ns


def _settings(config: dict, args, namespace: str) -> dict:
    keys = ('sync.slop', 'sync.queue_size', 'prior.source', 'prior.every_frame',
            'first_stage.type', 'refiner.steps', 'backend', 'device', 'output.encoding')
    settings = {k: config[k] for k in keys}
    settings.update({'namespace': namespace or '/', 'storage': args.storage,
                     'version': args.version,
                     'copy_inputs': args.copy_inputs, 'metrics': not args.no_metrics,
                     'compressed_output': args.compressed_output})
    return settings


def setup(bag, in_path: Path, out_path, config: dict, args, namespace: str) -> tuple:
    """
    Return what a replay of ``bag`` starts from: (topics, pairs expected, report, bag metadata).

    The topics are found as ``replay`` finds them; the report and the output bag's custom
    metadata name the input and its topics (``sgdfuse corpus`` sets up each chunk the same way).
    """
    topics = choose_topics(bag, args.thermal_topic, args.visible_topic, args.visible_info_topic)
    expected = min(topics.thermal.count, topics.visible.count)
    report = ReplayReport(in_path, out_path, topics.as_dict(), _settings(config, args, namespace),
                          expected, with_metrics=not args.no_metrics)
    report.notes.extend(bag.notes)
    custom = {'sgdfuse_ros.replay.input': str(in_path),
              'sgdfuse_ros.replay.thermal_topic': topics.thermal.name,
              'sgdfuse_ros.replay.rgb_topic': topics.visible.name}
    return topics, expected, report, custom


def default_report_dir(out_bag) -> Path:
    out = Path(out_bag)
    if not out.name:  # '.', '/': name it from the real path
        out = Path(os.path.abspath(out))
    return out.with_name(out.name + '_report')


REPORT_FILES = ('report.json', 'report.md', 'report.html', 'plot.png', 'contact_sheet.png')


def _settle(replacements, commit: bool) -> None:
    """Swap the new outputs in (``commit``), or leave the previous ones as they were."""
    for new in replacements:
        if commit:
            new.commit()
        else:
            new.discard()


def main(args) -> int:
    run(args)
    return 0


def run(args, progress=None, stop=None, write_bag: bool = True, keep=None) -> dict:
    """
    Replay one bag as ``args`` (this command's options) say; return the report's result.

    Raises what the command reports: :class:`InputError` (one line) for a bag that cannot be
    replayed or a replay that ended early, :class:`Interrupted` after a stop signal. ``progress``
    makes the progress bar from the expected pair count (default: this command's bar on
    stderr); ``stop`` is the stop request (default: the dispatcher's); ``write_bag=False`` writes
    no output bag (the outputs are serialised, counted and digested only: ``sgdfuse corpus``
    without ``--write-bags``; ``--out`` is then unused). ``keep``, a list, receives the result
    as soon as the books are closed, also when the replay then ends in an error.
    """
    overrides = dict(args.overrides)
    if args.every_frame_prior:
        overrides['prior.every_frame'] = True
    config = load_config(args.config, overrides)
    namespace = check_namespace(args.namespace)
    in_path = Path(args.in_bag)
    out_path = Path(args.out) if write_bag else None
    if args.report:
        report_dir = Path(args.report)
    elif write_bag:
        report_dir = default_report_dir(out_path)
    else:
        raise InputError('a replay that writes no bag needs --report')
    report_option = '--report' if args.report else '--out (its report folder)'
    outputs = [(report_option, report_dir)]
    if write_bag:
        outputs.insert(0, ('--out', out_path))
    check_apart([('IN_BAG', in_path)] + config_inputs(args.config, config), outputs)
    if write_bag and not out_path.exists():
        check_output_dir(out_path, '--out')  # a writable place, before any work
    check_output_dir(report_dir, report_option)
    if write_bag:
        check_replaceable(out_path, args.overwrite)
    held_in = out_path if write_bag else 'the report'

    def say(text: str) -> None:
        if not args.quiet:
            print(f'replay: {text}', file=sys.stderr)

    if progress is None:
        def progress(expected):
            return Progress(expected, label='replay', unit='pairs', quiet=args.quiet)

    with open_bag(in_path) as bag:
        topics, expected, report, custom = setup(bag, in_path, out_path, config, args, namespace)
        say(f'{bag.description}; {topics.describe()}')
        for note in bag.notes:
            say(note)
        # built (weights read and checked) before anything is written; the new bag and report
        # are written beside the previous ones and replace them once the replay has succeeded
        pipeline = FusionPipeline(config)
        close_error = None
        # from here to the end a signal asks to stop between messages; the bag is closed, the
        # report written and the outputs settled whatever else arrives
        stop = (stop if stop is not None else stop_request()).protect()
        try:
            new_bag = ReplacedPath(out_path) if write_bag else None
            new_report = ReplacedFiles(report_dir, REPORT_FILES, 'replay')
        except BaseException:
            pipeline.close()
            raise
        replacements = [r for r in (new_bag, new_report) if r is not None]
        previous = any(r.previous for r in replacements)
        try:
            writer = (BagWriter(new_bag.path, args.storage, args.version, False, custom)
                      if write_bag else NullWriter())
            with writer, progress(expected) as bar:
                replay = Replay(bag, topics, pipeline, config, writer, report, namespace,
                                copy_inputs=args.copy_inputs, overlay=args.overlay,
                                with_metrics=not args.no_metrics, progress=bar, stop=stop,
                                draw_detections=getattr(args, 'sheet_detections', False),
                                compressed=args.compressed_output)
                start = time.perf_counter()
                replay.run()
                wall = time.perf_counter() - start
                if replay.write_error:  # named as the user named it, not the scratch place
                    replay.write_error = replay.write_error.replace(str(new_bag.path),
                                                                    str(out_path))
                if replay.write_error:  # keep what the last checkpoint holds, closed and valid
                    close_error = writer.close_partial()
                bar.done(f'{len(report.frames)} fused, {len(report.failures)} failed')
        except BaseException:
            _settle(replacements, not previous)  # a partial result replaces nothing
            raise
        finally:
            pipeline.close()
        result = report.finish(replay.sync.stats(), wall, dict(writer.counts),
                               read_error=replay.read_error, interrupted=replay.interrupted,
                               other_read=replay.other_read, sync_resets=replay.sync_resets,
                               write_error=replay.write_error, digest=writer.digest.hexdigest)
        if keep is not None:
            keep.append(result)
    report_error = None
    try:
        report.write(new_report.path)
    except Exception as err:  # noqa: B902
        if not is_write_failure(err):
            _settle(replacements, not previous)
            raise
        report_error = write_failure(err, report_dir)
    pairs = result['pairs']
    ready = not (replay.write_error or report_error or replay.interrupted or replay.read_error
                 or pairs['matched'] == 0 or pairs['fused'] == 0)
    committed = ready or not previous
    _settle(replacements, committed)
    if write_bag:
        where = (f'report: {report_dir}' if committed else
                 f'nothing of this run was kept: the previous {out_path} and its report '
                 f'{report_dir} are as they were')
    else:
        where = (f'report: {report_dir}' if committed else
                 f'nothing of this run was kept: the previous report {report_dir} is as it was')

    msgs = result['messages']
    dropped = {role: dict({k: msgs[role][k]
                           for k in ('unmatched', 'late', 'duplicate', 'overflow')
                           if msgs[role][k]},
                          **{f'rejected_{k}': v for k, v in msgs[role]['rejected'].items()})
               for role in ('thermal', 'rgb')}
    say(f"read {msgs['thermal']['read']} thermal + {msgs['rgb']['read']} rgb messages; "
        f"{pairs['matched']} pairs matched, {pairs['fused']} fused, {pairs['failed']} failed; "
        f"unpaired: thermal {dropped['thermal'] or 0}, rgb {dropped['rgb'] or 0}")
    if result['metrics'] and result['metrics']['frames_scored']:
        mean = result['metrics']['mean']
        say('mean metrics: ' + ' '.join(f'{k}={mean[k]:.3f}' for k in HEADLINE_METRICS
                                        if mean.get(k) is not None))
    thr = result['throughput']
    if thr['pairs_per_s']:
        say(f"throughput {thr['pairs_per_s']:.2f} pairs/s end to end; output {held_in}; "
            f'report {report_dir}')
    if write_bag:
        kept = (f'{out_path} holds the {pairs["fused"]} pairs fused ({writer.messages} '
                f'messages, closed)' if writer.messages else f'nothing was written to {out_path}')
    else:
        kept = f'{pairs["fused"]} pairs fused (no bag written)'
    kept += (f'; report: {report_dir}' if report_error is None
             else f'; the report could not be written ({report_error})')
    if not committed:
        kept = where
    if replay.write_error:
        close = f'; closing the bag failed too ({close_error})' if close_error else ''
        raise InputError(f'{replay.write_error}; {kept}{close}')
    if report_error:
        raise InputError(report_error)
    if replay.interrupted:
        raise stop.interrupted(f"after {msgs['thermal']['read'] + msgs['rgb']['read']} camera "
                               f'messages; {kept}')
    if replay.read_error:
        raise InputError(f"{replay.read_error}; the {pairs['fused']} pairs fused before the "
                         f'damage are in {held_in} (report: {report_dir})' if committed
                         else f'{replay.read_error}; {where}')
    if pairs['matched'] == 0:
        rejected = report.all_rejected(result)
        if rejected:  # not a pairing problem: name the frames' own reason
            raise InputError(f'{rejected}; no pair could form; report: {report_dir}')
        gap = pairs['closest_thermal_rgb_gap_s']
        hint = (f'; the closest thermal/RGB stamps were {gap:.3f} s apart (raise it with '
                f'--set sync.slop=...)' if gap is not None else '')
        raise InputError(f"no thermal/RGB pairs within sync.slop={config['sync.slop']} s "
                         f"({msgs['thermal']['read']} thermal, {msgs['rgb']['read']} RGB messages)"
                         f'{hint}; {where}')
    if pairs['fused'] == 0:
        reason = next(iter(result['failure_reasons']), 'unknown')
        raise InputError(f"all {pairs['failed']} pairs failed (first reason: {reason}); "
                         f'{where}')
    return result
