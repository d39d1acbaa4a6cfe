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
Pipeline benchmark: per-stage latency, frame rate and memory of the fusion pipeline.

    python benchmarks/bench_pipeline.py                     # full run (a few minutes per config)
    python benchmarks/bench_pipeline.py --quick             # 10 frames per row
    python benchmarks/bench_pipeline.py --memory-frames 1000
    python benchmarks/bench_pipeline.py --seed-ref          # also time one SR3 step (~30 s)

For each frame size, device (cpu; cuda when torch sees one), backend (torch; onnx when
onnxruntime is installed) and configuration (classical Laplacian; learned first stage with
refiner steps K = 0, 1, 2, 4), synthetic pairs from
:func:`sgdfuse_ros.eval.synthetic_pairs.make_pair` go
through the path a node takes: thermal as a mono16 ``sensor_msgs/Image`` with a 14-bit range
(exercises the AGC), visible as bgr8; CDR bytes are deserialised (``msg_in``), fused
(``FusionPipeline.process``: decode/AGC, register, prior, first stage, refiner, colour) and the
fused image is serialised as a raw ``sensor_msgs/Image`` (``encode``; ``jpeg`` is the
CompressedImage alternative, timed separately and not part of the end-to-end time).

Headline numbers are medians (p90 beside them); ``fps`` = 1000 / median end-to-end ms. Memory:
peak resident set per row (``VmHWM``, reset before each row through /proc/self/clear_refs), and on
CUDA ``torch.cuda.max_memory_allocated``. ``--memory-frames N`` runs N frames at 640x512 and
reports the resident-set growth after warm-up (must stay < 5 %).

The seed-method reference (:mod:`seed_reference`, an SR3-sized refiner x 60 steps) is compared
with our pipeline per frame at 640x480, in time and in FLOPs. Results: ``results/pipeline_<device>
.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))                # seed_reference
sys.path.insert(0, str(HERE.parent))         # the package, when not installed

from harness import write_results  # noqa: E402  (benchmarks/harness.py)
from machine import describe  # noqa: E402  (benchmarks/machine.py)
import numpy as np  # noqa: E402
from sgdfuse_ros.config import load_config, parse_override  # noqa: E402
from sgdfuse_ros.errors import SgdfuseError  # noqa: E402
from sgdfuse_ros.eval.scoring import percentile_summary  # noqa: E402
from sgdfuse_ros.eval.synthetic_pairs import make_pair  # noqa: E402
from sgdfuse_ros.intake import frame_from_bytes, Pair  # noqa: E402
from sgdfuse_ros.messages import compressed_msg, IMAGE, image_msg, make_header  # noqa: E402
from sgdfuse_ros.messages import serialize  # noqa: E402
from sgdfuse_ros.pipeline.fusion_pipeline import Failed, fuse_pair, FusionPipeline  # noqa: E402

RESULTS = HERE / 'results'
STAGES = ('msg_in', 'decode', 'register', 'prior', 'first_stage', 'refiner', 'colour', 'encode')
CONFIGS = {  # name -> overrides
    'classical': {'first_stage.type': 'laplacian', 'refiner.steps': 0},
    'network': {'first_stage.type': 'network', 'refiner.steps': 0},
    'network+K1': {'first_stage.type': 'network', 'refiner.steps': 1},
    'network+K2': {'first_stage.type': 'network', 'refiner.steps': 2},
    'network+K4': {'first_stage.type': 'network', 'refiner.steps': 4},
}
DEFAULT_SIZES = '320x256,640x512,1280x1024'
RATIO_SIZE = (640, 480)      # the seed reference's size
MEMORY_SIZE = (640, 512)
POOL = 4                     # distinct synthetic pairs per size, cycled


# --- machine and memory --------------------------------------------------------------------------


def proc_status(key: str) -> float:
    """Return a /proc/self/status memory field in MiB (VmRSS, VmHWM), 0 where unreadable."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        Path('/proc/self/clear_refs').write_text('5')
        return True
    except OSError:
        return False


def machine_description(gpu: Optional[str] = None) -> dict:
    import cv2

    from sgdfuse_ros.hardware import physical_cores

    # versions read without importing torch (memory of classical rows)
    info = dict(describe(('torch', 'onnxruntime')), physical_cores=physical_cores(),
                numpy=np.__version__, opencv=cv2.__version__)
    info['torch_threads'] = None  # filled in at the end if a learned stage loaded torch
    if gpu:
        info['gpu'] = gpu
    try:
        info['git_commit'] = subprocess.run(
            ['git', 'rev-parse', '--short', 'HEAD'], cwd=HERE, capture_output=True, text=True,
            timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info['git_commit'] = None
    return info


def cuda_device_name() -> Optional[str]:
    """Return the GPU torch would use, asked in a child process (this one stays torch-free)."""
    code = ('import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() '
            "else '')")
    try:
        done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    name = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    return name[0] if name and name[0] else None


def available_backends() -> List[str]:
    import importlib.util
    return ['torch'] + (['onnx'] if importlib.util.find_spec('onnxruntime') else [])


# --- inputs --------------------------------------------------------------------------------------

def thermal_mono16(ir_u8: np.ndarray, seed: int) -> np.ndarray:
    """
    Turn 8-bit synthetic thermal into a 14-bit radiometric-looking mono16 frame.

    Offset, gain and noise are applied.
    """
    rng = np.random.default_rng(seed)
    raw = 3000.0 + ir_u8.astype(np.float32) * 40.0 + rng.normal(0, 6, ir_u8.shape)
    return np.clip(raw, 0, 16383).astype(np.uint16)


def input_messages(size: Tuple[int, int], count: int = POOL) -> List[Tuple[bytes, bytes]]:
    """CDR bytes of (thermal mono16, visible bgr8) sensor_msgs/Image pairs at ``size``."""
    pairs = []
    for i in range(count):
        ir, vis, _ = make_pair(100 + i, size)
        header = make_header(float(i) / 30.0, 'camera')
        pairs.append((serialize(image_msg(thermal_mono16(ir, i), header, 'mono16')),
                      serialize(image_msg(vis, header, 'bgr8'))))
    return pairs


# --- one row -------------------------------------------------------------------------------------

UNTRAINED: Dict[str, str] = {}  # parameter -> weights file of an untrained network (--untrained)


def untrained_weights(module_name: str, out_dir: Path) -> Tuple[Optional[Path], str]:
    """
    Weights of a freshly initialised network, for timing before training is done.

    Uses the owners' conventions: a module-level ``KIND`` and ``DEFAULT_ARCH``, one model class
    with ``from_arch(arch)``, and :func:`sgdfuse_ros.fusion.weights.save_weights`. The cost of a
    network does not depend on its weights; its output does, so rows timed this way say so.
    """
    import importlib
    import inspect

    try:
        module = importlib.import_module(module_name)
        from sgdfuse_ros.fusion.weights import save_weights
    except Exception as err:  # not written yet, or broken while being written
        return None, f'{module_name} not importable ({type(err).__name__})'
    kind, arch = getattr(module, 'KIND', None), getattr(module, 'DEFAULT_ARCH', None)
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if c.__module__ == module.__name__ and hasattr(c, 'from_arch')]
    if kind is None or arch is None or len(classes) != 1:
        return None, f'{module_name} has no KIND/DEFAULT_ARCH/from_arch to build it untrained'
    path = out_dir / f'untrained_{kind}.pt'
    save_weights(path, kind, arch, classes[0].from_arch(dict(arch)),
                 {'note': 'untrained, for benchmarks only'})
    return path, ''


#: ``--set NAME=VALUE`` overrides, applied to every row (e.g. colour.warm_tint=0)
EXTRA_OVERRIDES = {}


def build(config_name: str, backend: str, device: str, threads: int):
    """(pipeline, None) or (None, why the row is skipped)."""
    overrides = dict(CONFIGS[config_name], backend=backend, device=device, threads=threads,
                     device_fallback=False)
    overrides['prior.source'] = 'thermal'
    overrides.update(EXTRA_OVERRIDES)
    if overrides['first_stage.type'] == 'network' and 'first_stage.weights' in UNTRAINED:
        overrides['first_stage.weights'] = UNTRAINED['first_stage.weights']
    if overrides['refiner.steps'] > 0 and 'refiner.weights' in UNTRAINED:
        overrides['refiner.weights'] = UNTRAINED['refiner.weights']
    try:
        pipeline = FusionPipeline(load_config(overrides=overrides))
    except SgdfuseError as err:
        return None, str(err)
    except ModuleNotFoundError as err:
        return None, f'module {err.name} not available yet'
    except ImportError as err:
        return None, f'import failed: {err}'
    if backend == 'onnx':
        for part, stage in (('first stage', pipeline.first_stage), ('refiner', pipeline.refiner)):
            if stage is not None and getattr(stage, 'backend', 'torch') != 'onnx':
                pipeline.close()
                return None, f'{part} builder does not run on onnxruntime yet (backend: onnx ' \
                             f'ignored)'
    return pipeline, None


def fuse_once(pipeline, thermal_bytes: bytes, visible_bytes: bytes, stamp: float,
              jpeg: bool = False) -> Dict[str, float]:
    """
    One frame the way the node handles it: its intake, then its fuse step.

    Stage times in ms (``e2e`` = the sum's wall time).
    """
    start = time.perf_counter()
    pair = Pair(frame_from_bytes('thermal', thermal_bytes, IMAGE, pipeline.max_pixels),
                frame_from_bytes('visible', visible_bytes, IMAGE, pipeline.max_pixels))
    received = time.perf_counter()
    result = fuse_pair(pipeline, pair)
    if isinstance(result, Failed):
        raise result.error
    fused = time.perf_counter()
    header = make_header(stamp, 'camera')
    serialize(image_msg(result.fused_bgr, header, 'bgr8'))
    done = time.perf_counter()
    times = dict(result.timings)
    times.pop('total', None)
    times['msg_in'] = (received - start) * 1e3
    times['encode'] = (done - fused) * 1e3
    times['e2e'] = (done - start) * 1e3
    if jpeg:
        t0 = time.perf_counter()
        serialize(compressed_msg(result.fused_bgr, header, 'jpeg', 90))
        times['jpeg'] = (time.perf_counter() - t0) * 1e3
    return times


def summarise(samples: List[Dict[str, float]]) -> dict:
    keys = [k for k in STAGES + ('jpeg', 'e2e') if any(k in s for s in samples)]
    out = {}
    for key in keys:
        values = np.array([s.get(key, 0.0) for s in samples])
        out[key] = percentile_summary(values, ('median', 'p90'), digits=3)
    return out


def run_row(pipeline, messages, frames: int, warmup: int, max_seconds: float,
            device: str) -> dict:
    cuda = device == 'cuda'
    if cuda:
        import torch
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup):
        fuse_once(pipeline, *messages[i % len(messages)], stamp=i / 30.0)
    peak_reset = reset_peak_rss()
    samples = []
    began = time.perf_counter()
    for i in range(frames):
        samples.append(fuse_once(pipeline, *messages[i % len(messages)], stamp=i / 30.0,
                                 jpeg=True))
        if time.perf_counter() - began > max_seconds and len(samples) >= 3:
            break
    summary = summarise(samples)
    row = {'status': 'ok', 'frames': len(samples), 'warmup': warmup, 'stages': summary,
           'e2e_ms_median': summary['e2e']['median'], 'e2e_ms_p90': summary['e2e']['p90'],
           'fps': round(1000.0 / summary['e2e']['median'], 2),
           'peak_rss_mib': round(proc_status('VmHWM'), 1),
           'peak_rss_scope': 'row' if peak_reset else 'process',
           'rss_mib': round(proc_status('VmRSS'), 1),
           'refined': bool(pipeline.refiner is not None)}
    if cuda:
        import torch
        row['cuda_max_allocated_mib'] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return row


def weights_note(config_name: str) -> str:
    """'untrained' where a learned stage of this config runs with untrained stand-in weights."""
    cfg = CONFIGS[config_name]
    untrained = (cfg['first_stage.type'] == 'network' and 'first_stage.weights' in UNTRAINED) \
        or (cfg['refiner.steps'] > 0 and 'refiner.weights' in UNTRAINED)
    return 'untrained' if untrained else ''


# --- FLOPs ---------------------------------------------------------------------------------------

def classical_flops_per_pixel(levels: int = 4) -> Dict[str, float]:
    """
    Analytic FLOPs per output pixel of the non-network stages (OpenCV/numpy: no counter).

    Rough counts of the arithmetic the code does (adds, multiplies, compares), within about 2x:
    AGC (subtract, scale, clip), YCrCb split and merge, the thermal prior (17-tap separable
    Gaussian, threshold, 3x3 opening, labelling, 9-tap Gaussian of the targets, boundaries) and
    the Laplacian pyramid fusion (two 5-tap separable pyrDown/pyrUp pyramids, selection,
    collapse; the 1 + 1/4 + 1/16 + ... factor for the coarser levels).
    """
    geometric = sum(0.25 ** i for i in range(levels))
    return {
        'decode': 4.0,
        'colour': 14.0 + 11.0,
        'prior': 68.0 + 1.0 + 36.0 + 10.0 + 36.0 + 8.0,
        'laplacian': 2 * (5.0 + 12.0 + 1.0) * geometric + (3.0 + 13.0) * geometric + 2.0,
    }


def counted_flops(pipeline, messages) -> Optional[int]:
    """Count the torch FLOPs (conv, matmul, attention) of one frame with FlopCounterMode."""
    try:
        import torch  # noqa: F401
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    counter = FlopCounterMode(display=False)
    with counter:
        fuse_once(pipeline, *messages[0], stamp=0.0)
    return int(counter.get_total_flops())


def pipeline_flops(config_name: str, pipeline, messages, size: Tuple[int, int]) -> dict:
    w, h = size
    per_pixel = classical_flops_per_pixel(pipeline.config['first_stage.levels'])
    if config_name == 'classical':
        total = sum(per_pixel.values()) * w * h
        return {'flops': int(total), 'how': 'analytic estimate (OpenCV/numpy stages), within 2x'}
    counted = counted_flops(pipeline, messages)
    if counted is None:
        return {'flops': None, 'how': 'torch not available'}
    rest = (per_pixel['decode'] + per_pixel['colour'] + per_pixel['prior']) * w * h
    return {'flops': int(counted + rest),
            'how': 'FlopCounterMode for the networks + analytic estimate for the other stages'}


# --- memory growth -------------------------------------------------------------------------------

def memory_growth(pipeline, messages, frames: int, warmup: int = 30) -> dict:
    """RSS at the end of warm-up vs the largest RSS after it, sampled every 10 frames."""
    warmup = min(warmup, max(1, frames // 5))
    base = None
    highest = 0.0
    trace = []
    for i in range(frames):
        fuse_once(pipeline, *messages[i % len(messages)], stamp=i / 30.0)
        if i + 1 == warmup:
            base = proc_status('VmRSS')
        if base is not None and (i + 1) % 10 == 0:
            rss = proc_status('VmRSS')
            highest = max(highest, rss)
            trace.append(round(rss, 1))
    highest = max(highest, proc_status('VmRSS'))
    growth = (highest - base) / base * 100.0 if base else 0.0
    return {'frames': frames, 'warmup': warmup, 'rss_after_warmup_mib': round(base or 0.0, 1),
            'rss_max_after_warmup_mib': round(highest, 1), 'growth_percent': round(growth, 2),
            'flat': growth < 5.0, 'rss_trace_mib_every_10': trace}


# --- report --------------------------------------------------------------------------------------

def short(text: str, limit: int = 90) -> str:
    """Return a skip reason short enough for a table cell (the JSON keeps it whole)."""
    text = text.replace('|', '/').replace(str(HERE.parent) + '/', '')
    return text if len(text) <= limit else text[: limit - 3] + '...'


def cell(stage: dict) -> str:
    return f"{stage['median']:.1f} / {stage['p90']:.1f}"


def markdown(report: dict) -> str:
    m = report['machine']
    lines = [f"# Pipeline benchmark ({report['device']})", '',
             f"{m['date']}; CPU {m['cpu']} ({m['logical_cpus']} logical, {m['physical_cores']} "
             f"physical cores){'; GPU ' + m['gpu'] if m.get('gpu') else ''}; torch {m['torch']}"
             + (f" ({m['torch_threads']} threads)" if m.get('torch_threads') else '')
             + f", onnxruntime {m['onnxruntime']}, OpenCV "
             f"{m['opencv']}, numpy {m['numpy']}; load average {m['load_average_1min_at_start']} "
             f"at start, {report.get('load_average_1min_at_end')} at end; commit "
             f"{m.get('git_commit')}.", '',
             f"Command: `{report['command']}`", '',
             'Milliseconds per frame, **median / p90**; prior = thermal fallback (SAM checkpoints '
             'are not available here); `e2e` = msg_in + pipeline + encode (raw '
             'sensor_msgs/Image), fps = 1000 / median e2e; `jpeg` (CompressedImage, q=90) is '
             'timed on its own, not in e2e. Peak RSS is per row (VmHWM reset before each row).'
             + (' Rows marked (untrained) time the learned stages with freshly initialised '
                'weights (latency only).' if report.get('untrained') else ''), '']
    head = (['config', 'backend', 'size', 'frames'] + list(STAGES)
            + ['jpeg', 'e2e', 'fps', 'peak RSS MiB'])
    if report['device'] == 'cuda':
        head.append('CUDA max alloc MiB')
    lines.append('| ' + ' | '.join(head) + ' |')
    lines.append('|' + '---|' * len(head))
    for row in report['rows']:
        base = [row['config'] + (' (untrained)' if row.get('weights') else ''), row['backend'],
                row['size']]
        if row['status'] != 'ok':
            lines.append('| ' + ' | '.join(base) + f" | skipped: {short(row['status'])} |"
                         + ' |' * (len(head) - 4))
            continue
        stages = row['stages']
        cells = base + [str(row['frames'])]
        cells += [cell(stages[s]) if s in stages else '-' for s in STAGES]
        cells += [cell(stages['jpeg']), f"**{cell(stages['e2e'])}**", f"**{row['fps']:.1f}**",
                  f"{row['peak_rss_mib']:.0f}"]
        if report['device'] == 'cuda':
            cells.append(f"{row.get('cuda_max_allocated_mib', 0):.0f}")
        lines.append('| ' + ' | '.join(cells) + ' |')
    seed = report.get('seed_reference')
    if seed:
        lines += ['', '## Seed method (SR3-sized refiner, 60 steps) vs this pipeline, per frame '
                  f'at {RATIO_SIZE[0]}x{RATIO_SIZE[1]}', '']
        timed = seed.get('frame_seconds')
        load = seed['machine'].get('load_average_1min_at_start',
                                   seed['machine'].get('load_average_1min'))
        lines.append(f"Seed refiner: {seed['parameters'] / 1e6:.1f} M parameters, "
                     f"{seed['flops_per_step'] / 1e12:.2f} TFLOP per step ("
                     f"{seed['flops_per_frame'] / 1e12:.0f} TFLOP per frame); one step "
                     + (f"{seed['step_seconds']:.1f} s on {seed['machine']['cpu']} "
                        f"({seed['date']}, load {load}) -> "
                        f'{timed:.0f} s per frame.' if timed else
                        'not timed (run with --seed-ref).'))
        lines += ['', '| config | backend | our e2e ms (median) | our GFLOP/frame | time ratio '
                  'seed/ours | FLOP ratio seed/ours | how our FLOPs were counted |',
                  '|---|---|---|---|---|---|---|']
        for r in report.get('seed_ratios', []):
            if r['status'] != 'ok':
                lines.append(f"| {r['config']} | {r['backend']} | skipped: {short(r['status'])} "
                             '| | | | |')
                continue
            fl = r['flops']['flops']
            name = r['config'] + (' (untrained)' if r.get('weights') else '')
            lines.append(
                f"| {name} | {r['backend']} | {r['e2e_ms_median']:.1f} | "
                f'{fl / 1e9:.3f} | '
                + (f"{r['time_ratio']:,.0f}x" if r.get('time_ratio') else '-') + ' | '
                + (f"{r['flop_ratio']:,.0f}x" if r.get('flop_ratio') else '-')
                + f" | {r['flops']['how']} |")
    mem = report.get('memory')
    if mem and mem.get('status') != 'ok':
        lines += ['', f"## Memory: skipped ({short(mem.get('status', ''))})"]
    elif mem:
        lines += ['', f"## Memory over {mem['frames']} frames at {MEMORY_SIZE[0]}x"
                  f"{MEMORY_SIZE[1]} ({mem['config']}, {mem['backend']})", '',
                  f"RSS {mem['rss_after_warmup_mib']} MiB after {mem['warmup']} warm-up frames, "
                  f"at most {mem['rss_max_after_warmup_mib']} MiB after: growth "
                  f"**{mem['growth_percent']:.2f} %** ("
                  + ('flat, < 5 %' if mem['flat'] else 'NOT flat, >= 5 %') + ').']
    return '\n'.join(lines) + '\n'


# --- the parts of a run --------------------------------------------------------------------------

def seed_reference_record(time_it: bool) -> Optional[dict]:
    """
    Return the seed reference: timed now (--seed-ref, cached), else the cache, else counts.

    Runs ``seed_reference.py`` in a child process, so its memory and torch threads stay there.
    """
    script = HERE / 'seed_reference.py'
    if time_it:
        print('timing one step of the SR3-sized seed refiner at 640x480 (child process) ...',
              flush=True)
        done = subprocess.run([sys.executable, str(script)], text=True)
        if done.returncode != 0:
            print('seed reference failed; see above')
    cache = RESULTS / 'seed_reference.json'
    if cache.is_file():
        return json.loads(cache.read_text())
    done = subprocess.run([sys.executable, str(script), '--no-time', '--json'],
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f'seed reference unavailable: {done.stderr.strip().splitlines()[-1:]}')
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_row(config_name, backend, device, size, messages, args) -> dict:
    label = f'{device} {config_name:<11} {backend:<5} {size[0]}x{size[1]}'
    pipeline, why = build(config_name, 'torch' if backend == '-' else backend, device,
                          args.threads)
    row = {'config': config_name, 'backend': backend, 'size': f'{size[0]}x{size[1]}',
           'device': device, 'weights': weights_note(config_name)}
    if pipeline is None:
        row['status'] = why
        print(f'{label}: skipped ({why})', flush=True)
        return row
    with pipeline:
        row.update(run_row(pipeline, messages, args.frames, args.warmup, args.max_seconds,
                           device))
    print(f"{label}: e2e {row['e2e_ms_median']:.1f} ms median, {row['fps']:.1f} fps, "
          f"peak RSS {row['peak_rss_mib']:.0f} MiB", flush=True)
    return row


def run_memory(report: dict, args, device: str) -> None:
    if args.memory_frames <= 0 or device != 'cpu':
        return
    pipeline, why = build(args.memory_config, 'torch', device, args.threads)
    if pipeline is None:
        report['memory'] = {'status': why}
        print(f'memory run skipped: {why}')
        return
    with pipeline:
        mem = memory_growth(pipeline, input_messages(MEMORY_SIZE), args.memory_frames)
    mem.update(status='ok', config=args.memory_config,
               backend='-' if args.memory_config == 'classical' else 'torch',
               weights=weights_note(args.memory_config))
    report['memory'] = mem
    print(f"memory: {mem['frames']} frames at 640x512: RSS {mem['rss_after_warmup_mib']} -> max "
          f"{mem['rss_max_after_warmup_mib']} MiB after warm-up, growth "
          f"{mem['growth_percent']:.2f} % ({'flat' if mem['flat'] else 'NOT FLAT'})", flush=True)


# --- main ----------------------------------------------------------------------------------------

def parse_sizes(text: str) -> List[Tuple[int, int]]:
    sizes = []
    for item in text.split(','):
        w, h = item.lower().split('x')
        sizes.append((int(w), int(h)))
    return sizes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Per-stage latency, fps and memory of the '
                                                 'fusion pipeline.')
    parser.add_argument('--sizes', default=DEFAULT_SIZES, help='WxH,WxH,...')
    parser.add_argument('--frames', type=int, default=50, help='timed frames per row')
    parser.add_argument('--warmup', type=int, default=5, help='untimed frames per row')
    parser.add_argument('--quick', action='store_true',
                        help='10 frames, 2 warm-up, at most 15 s per row')
    parser.add_argument('--configs', default=','.join(CONFIGS), help=f"of {','.join(CONFIGS)}")
    parser.add_argument('--devices', default=None, help='cpu,cuda (default: what is available)')
    parser.add_argument('--backends', default=None, help='torch,onnx (default: what is '
                                                         'installed)')
    parser.add_argument('--threads', type=int, default=0,
                        help='config `threads` (0 = library default)')
    parser.add_argument('--max-seconds', type=float, default=60.0,
                        help='stop a row after this long (at least 3 frames)')
    parser.add_argument('--memory-frames', type=int, default=0,
                        help='also run this many frames at 640x512 and report RSS growth')
    parser.add_argument('--memory-config', default='classical', choices=list(CONFIGS))
    parser.add_argument('--seed-ref', action='store_true',
                        help='time one step of the SR3-sized seed refiner and cache it')
    parser.add_argument('--no-seed', action='store_true', help='skip the seed comparison')
    parser.add_argument('--untrained', action='store_true',
                        help='time the learned stages with freshly initialised weights when no '
                             'trained ones exist (latency only: the output is meaningless)')
    parser.add_argument('--out', default=str(RESULTS), help='results folder')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='NAME=VALUE', help='config override for every row (repeatable)')
    parser.add_argument('--suffix', default='',
                        help='results go to pipeline_<device>_<suffix>.json/.md')
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.warmup, args.max_seconds = 10, 2, min(args.max_seconds, 15.0)
    sizes = parse_sizes(args.sizes)
    configs = [c.strip() for c in args.configs.split(',') if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f'unknown config(s) {unknown}')
    try:
        EXTRA_OVERRIDES.update(parse_override(text) for text in args.overrides)
    except SgdfuseError as err:
        parser.error(str(err))
    gpu = cuda_device_name()
    devices = args.devices.split(',') if args.devices else (['cpu', 'cuda'] if gpu else ['cpu'])
    backends = args.backends.split(',') if args.backends else available_backends()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_description(gpu)
    command_args = argv if argv is not None else sys.argv[1:]
    command = 'python benchmarks/bench_pipeline.py ' + ' '.join(command_args)
    print(f"machine: {machine['cpu']}, {machine['logical_cpus']} CPUs, torch {machine['torch']}, "
          f"onnxruntime {machine['onnxruntime']}")

    # The seed reference runs in its own process: its 1 GB of activations would otherwise stay
    # in this process's resident set and hide the pipeline's own peak memory.
    seed = None
    if not args.no_seed:
        seed = seed_reference_record(args.seed_ref)

    scratch = [None]

    def prepare_untrained() -> None:  # imports torch: only once the classical rows are done
        if not args.untrained or scratch[0] is not None:
            return
        import tempfile

        from sgdfuse_ros.config import resolve_model_path
        scratch[0] = tempfile.TemporaryDirectory(prefix='sgdfuse_bench_')
        defaults = load_config()
        for param, module_name in (('first_stage.weights', 'sgdfuse_ros.fusion.network'),
                                   ('refiner.weights', 'sgdfuse_ros.fusion.refiner')):
            if resolve_model_path(defaults[param], param.split('.')[0] + '.pt').is_file():
                continue  # trained weights exist: time those
            path, why = untrained_weights(module_name, Path(scratch[0].name))
            if path is not None:
                UNTRAINED[param] = str(path)
                print(f'{param}: untrained weights for timing ({path.name})')
            else:
                print(f'{param}: no untrained stand-in ({why})')

    messages_by_size: Dict[Tuple[int, int], list] = {}

    def messages_for(size):
        if size not in messages_by_size:
            messages_by_size[size] = input_messages(size)
        return messages_by_size[size]

    # classical rows first: they never import torch, so their memory is the classical node's
    ordered = [c for c in configs if c == 'classical'] + [c for c in configs if c != 'classical']
    for device in devices:
        report = {'device': device, 'machine': machine, 'command': command, 'quick': args.quick,
                  'rows': []}
        for config_name in ordered:
            if config_name == 'classical' and device != 'cpu':
                continue  # no network: the device does not matter
            if config_name != 'classical':
                prepare_untrained()
            for size in sizes:
                for backend in (['-'] if config_name == 'classical' else backends):
                    report['rows'].append(bench_row(config_name, backend, device, size,
                                                    messages_for(size), args))
            if config_name == 'classical' and args.memory_config == 'classical':
                run_memory(report, args, device)
        if args.memory_config != 'classical':
            prepare_untrained()
            run_memory(report, args, device)
        report['untrained'] = sorted(UNTRAINED)
        # restore the order of the --sizes / --configs options in the table
        report['rows'].sort(key=lambda r: (sizes.index(parse_sizes(r['size'])[0]),
                                           configs.index(r['config'])))

        if seed is not None and device == 'cpu':
            report['seed_reference'] = seed
            report['seed_ratios'] = []
            ratio_messages = input_messages(RATIO_SIZE)
            for config_name in ordered:
                if config_name != 'classical':
                    prepare_untrained()
                pipeline, why = build(config_name, 'torch', device, args.threads)
                entry = {'config': config_name, 'backend': '-' if config_name == 'classical'
                         else 'torch', 'weights': weights_note(config_name)}
                if pipeline is None:
                    entry['status'] = why
                else:
                    with pipeline:
                        row = run_row(pipeline, ratio_messages, min(args.frames, 20),
                                      args.warmup, args.max_seconds, device)
                        entry.update(status='ok', e2e_ms_median=row['e2e_ms_median'],
                                     flops=pipeline_flops(config_name, pipeline, ratio_messages,
                                                          RATIO_SIZE))
                    if seed.get('frame_seconds'):
                        entry['time_ratio'] = seed['frame_seconds'] * 1e3 / entry['e2e_ms_median']
                    if entry['flops']['flops']:
                        entry['flop_ratio'] = seed['flops_per_frame'] / entry['flops']['flops']
                    print(f"seed/ours {config_name}: time x{entry.get('time_ratio', 0):,.0f}, "
                          f"FLOPs x{entry.get('flop_ratio', 0):,.0f}", flush=True)
                report['seed_ratios'].append(entry)
            report['seed_ratios'].sort(key=lambda r: configs.index(r['config']))

        report['load_average_1min_at_end'] = round(os.getloadavg()[0], 2)
        if 'torch' in sys.modules:
            report['machine'] = dict(machine, torch_threads=sys.modules['torch'].get_num_threads())
        stem = out_dir / (f'pipeline_{device}' + (f'_{args.suffix}' if args.suffix else ''))
        write_results(stem, report, markdown(report), show=True)
    if scratch[0] is not None:
        scratch[0].cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
