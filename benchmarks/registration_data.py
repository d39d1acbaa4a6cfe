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
Where the registered pairs of a set agree, measured on edge centre lines (no edge width involved).

``benchmarks/registration.py`` scores an estimate against the set's own registration. This
script asks how well that registration agrees with the images' content. On each registered pair
(both images at 640x480, as the benchmark renders them) the centre lines of the edges are found
(Canny on the slightly smoothed image); every thermal centre-line point is moved by one model
shared by all pairs and matched to the nearest visible centre line, and the model is refined on
the distances along the thermal edge normal (iterated closest points):

    q = c + (1 - z - k r^2) (p - c) + t + h n

``z``: the thermal content is larger than the visible content by ``z`` near the centre ``c``;
``k``: a radial term (``r`` = distance from the centre / half the width), a lens distortion that
differs between the cameras, which no homography can undo; ``t``: a shift; ``h``: a halo, every
thermal edge displaced by ``h`` pixels towards its colder side (``n``: the unit thermal gradient,
towards the warmer side), which would make warm objects look larger in the thermal image. Rows:
zoom and shift alone, on the whole image and on its central 70 % (where the benchmark's rigs
look); then with the halo; then with the halo and the radial term.

``--rigs N`` then renders the first N rigs of ``registration.py --subset <split>`` (same seed)
twice, from the registered pairs as they are and from pairs whose thermal image was first moved
by the set's fitted model (the content put where the visible image has it), and runs the
estimator on both: what the set's registration costs the benchmark. A diagnostic; the models
are fitted on ``--fit-subset`` (default: the scored split).

    python benchmarks/registration_data.py --roadscene /work/shared/data/roadscene \
        --msrs /work/shared/data/msrs128 --subset train --pairs 100 --rigs 8
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
from harness import command, RESULTS, write_results
import machine
import numpy as np
from registration import content_optimum, set_pairs
from sgdfuse_ros.eval.datasets import read_pair
from sgdfuse_ros.registration import estimate as E
from sgdfuse_ros.registration import simulate as S

SIZE = (640, 480)
REACH = 6.0      # a centre-line point further than this from the nearest visible one is ignored
# Canny smoothing: MSRS images are 128 px wide upscaled 5x (wide edges), RoadScene's are sharp
SIGMAS = {'RoadScene': 1.5, 'MSRS day': 3.0, 'MSRS night': 3.0}


def centre_lines(gray: np.ndarray, sigma: float) -> np.ndarray:
    """Edge centre lines (bool): Canny on the smoothed image, thresholds from its gradient."""
    u8 = np.uint8(np.clip(cv2.GaussianBlur(gray, (0, 0), sigma) * 255.0, 0, 255))
    mag = cv2.magnitude(cv2.Sobel(u8, cv2.CV_32F, 1, 0), cv2.Sobel(u8, cv2.CV_32F, 0, 1))
    high = max(1.0, float(np.percentile(mag, 90)))
    return cv2.Canny(u8, 0.4 * high, high, L2gradient=True) > 0


def _points(thermal, visible, sigma, crop):
    h, w = thermal.shape
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    vis_lines = centre_lines(visible, sigma)
    dist, label = cv2.distanceTransformWithLabels(np.uint8(~vis_lines), cv2.DIST_L2, 5,
                                                  labelType=cv2.DIST_LABEL_PIXEL)
    vy, vx = np.nonzero(vis_lines)
    nearest = np.zeros(int(label.max()) + 1, np.int64)
    nearest[label[vy, vx]] = np.arange(len(vx))
    ys, xs = np.nonzero(centre_lines(thermal, sigma))
    keep = (np.abs(xs - c[0]) <= crop * w / 2.0) & (np.abs(ys - c[1]) <= crop * h / 2.0)
    ys, xs = ys[keep], xs[keep]
    smooth = cv2.GaussianBlur(thermal, (0, 0), sigma)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0)[ys, xs]
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1)[ys, xs]
    normal = np.stack([gx, gy], 1).astype(np.float64)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    vis_points = np.stack([vx, vy], 1).astype(np.float64)
    return np.stack([xs, ys], 1).astype(np.float64), normal, label, nearest, vis_points


def fit_content_model(thermals, visibles, sigma: float = 3.0, crop: float = 1.0,
                      halo: bool = False, radial: bool = False, iterations: int = 30) -> dict:
    """
    Fit ``q = c + (1 - z - k r^2)(p - c) + t + h n`` over registered pairs (module docstring).

    ``thermals``, ``visibles``: grey float images of one size, registered pair by pair.
    ``crop``: only thermal points within this share of the width and height around the centre.
    Returns ``zoom`` (z), ``radial`` (k), ``shift`` (t, pixels), ``halo`` (h, pixels towards
    the colder side), ``points`` (matched in the last iteration).
    """
    h, w = thermals[0].shape
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    half = w / 2.0
    data = [_points(t, v, sigma, crop) for t, v in zip(thermals, visibles)]
    z, k, hl, t = 0.0, 0.0, 0.0, np.zeros(2)
    cols = [0, 1, 2] + ([3] if halo else []) + ([4] if radial else [])
    matched = 0
    for _ in range(iterations):
        rows, rhs = [], []
        for pts, normal, label, nearest, vis_points in data:
            r2 = ((pts - c) ** 2).sum(1) / half ** 2
            q = c + (1.0 - z - k * r2)[:, None] * (pts - c) + t + hl * normal
            qi = np.rint(q).astype(np.int64)
            ok = (qi[:, 0] >= 0) & (qi[:, 0] < w) & (qi[:, 1] >= 0) & (qi[:, 1] < h)
            d = vis_points[nearest[label[qi[ok, 1], qi[ok, 0]]]] - q[ok]
            n = normal[ok]
            along = (d * n).sum(1)
            near = np.abs(along) < REACH
            n, along = n[near], along[near]
            radial_part = -((pts[ok][near] - c) * n).sum(1)
            rows.append(np.stack([radial_part, n[:, 0], n[:, 1], np.ones_like(along),
                                  radial_part * r2[ok][near]], 1))
            rhs.append(along)
        a = np.concatenate(rows)[:, cols]
        b = np.concatenate(rhs)
        matched = len(b)
        if matched < 16:
            raise ValueError('too few edge points match between the two images')
        step, *_ = np.linalg.lstsq(a, b, rcond=None)
        z += step[0]
        t = t + step[1:3]
        if halo:
            hl += step[3]
        if radial:
            k += step[-1]
        if np.abs(step).max() < 1e-5:
            break
    return {'zoom': float(z), 'radial': float(k), 'shift': [float(t[0]), float(t[1])],
            'halo': float(hl), 'points': int(matched)}


def correct_thermal(thermal: np.ndarray, model: dict) -> np.ndarray:
    """Move the thermal image's content by the fitted geometry (not the halo): ``T'(q) = T(p)``."""
    h, w = thermal.shape[:2]
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    q = np.stack([xs, ys], -1)
    p = q.copy()
    for _ in range(10):  # p from q: a fixed point, the radial factor is close to 1
        r2 = ((p - c) ** 2).sum(-1, keepdims=True) / (w / 2.0) ** 2
        p = c + (q - c - np.array(model['shift'])) / (1.0 - model['zoom'] - model['radial'] * r2)
    return cv2.remap(thermal, p[..., 0].astype(np.float32), p[..., 1].astype(np.float32),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def registered(pair):
    """One registered pair as the benchmark renders it: grey thermal and BGR visible at 640x480."""
    t, v = read_pair(pair)
    return S.at_size(t, SIZE), S.at_size(v, SIZE)


MODELS = (('zoom, shift', 1.0, False, False), ('zoom, shift (central 70 %)', 0.7, False, False),
          ('zoom, shift, halo', 1.0, True, False),
          ('zoom, shift, halo (central 70 %)', 0.7, True, False),
          ('zoom, shift, halo, radial', 1.0, True, True))


def rig_errors(name, pairs, model, rigs: int, seed: int) -> list:
    """Score the estimator on the first ``rigs`` rigs of registration.py, as is and corrected."""
    rng = np.random.default_rng([seed, sum(map(ord, name))])
    out = []
    for index in range(rigs):
        rig = S.random_rig(rng)
        chosen = rng.choice(len(pairs), min(12, len(pairs)), replace=False)
        row = {'rig': rig.describe()}
        for label in ('as registered', 'corrected'):
            noise_rng = np.random.default_rng([seed, index, sum(map(ord, name)), 1])
            frames = []
            for i in chosen:
                t, v = registered(pairs[int(i)])
                if label == 'corrected':
                    t = correct_thermal(t, model)
                frames.append(S.render_pair(rig, t, v, noise=1.5, rng=noise_rng))
            for count in (12, 3):
                est = E.estimate([f[0] for f in frames[:count]], [f[1] for f in frames[:count]],
                                 refuse=False)
                row[f'{label}, {count} pairs'] = {
                    'error_px': S.corner_error(rig.homography, est.homography, rig.thermal_size),
                    'refused': bool(est.refusal)}
                if count == 12:
                    # where the frames' edges agree near the truth (registration.py's content
                    # optimum), and how far the estimate is from it
                    optimum = content_optimum(rig, frames[:12])
                    row[f'{label}, {count} pairs'].update(
                        optimum_px=S.corner_error(rig.homography, optimum, rig.thermal_size),
                        vs_optimum_px=S.corner_error(optimum, est.homography, rig.thermal_size))
        print(f'{name}/{index}: ' + ', '.join(
            f"{key} {val['error_px']:.2f}{' R' if val['refused'] else ''}"
            for key, val in row.items() if key != 'rig'), flush=True)
        out.append(row)
    return out


def markdown(report) -> str:
    lines = [f"# Where the registered pairs' edges agree ({report['fit_subset']} split)", '',
             f"`{report['command']}`", '',
             f"{report['pairs']} registered pairs per set at 640x480; z: thermal content larger "
             'than visible near the centre (%); k: radial term (%, at half the width the '
             'displacement ratio is z + k); halo: thermal edges displaced towards the colder side '
             '(px at 640).', '',
             '| set | model | z (%) | k (%) | shift (px) | halo (px) | points |',
             '|---|---|---:|---:|---|---:|---:|']
    for name, rows in report['models'].items():
        for label, m in rows.items():
            lines.append(f"| {name} | {label} | {100 * m['zoom']:+.2f} | "
                         f"{100 * m['radial']:+.2f} | ({m['shift'][0]:+.2f}, "
                         f"{m['shift'][1]:+.2f}) | {m['halo']:+.2f} | {m['points']} |")
    if report.get('rigs'):
        keys = ['as registered, 12 pairs', 'corrected, 12 pairs', 'as registered, 3 pairs',
                'corrected, 3 pairs']
        lines += ['', 'Estimator error on the first rigs of `registration.py --subset '
                  f"{report['subset']}` (px; R = refused), rendered from the pairs as they are "
                  'and from pairs whose thermal image was moved by the last model above (fitted '
                  f"on the {report['fit_subset']} split):", '',
                  '| set | ' + ' | '.join(keys) + ' |', '|---|' + '---|' * len(keys)]
        for name, rigs in report['rigs'].items():
            cells = []
            for key in keys:
                errors = [r[key]['error_px'] for r in rigs]
                cells.append(' '.join(f"{r[key]['error_px']:.2f}{'R' if r[key]['refused'] else ''}"
                                      for r in rigs) + f' (median {np.median(errors):.2f})')
            lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
        lines += ['', '12 pairs per rig: the content optimum (`registration.py`: the '
                  "estimator's finer levels started from the true homography) against the truth, "
                  'and the estimate against that optimum (px, median over the rigs):', '',
                  '| set | as registered: optimum vs truth / estimate vs optimum | corrected: '
                  'optimum vs truth / estimate vs optimum |', '|---|---|---|']
        for name, rigs in report['rigs'].items():
            cells = []
            for label in ('as registered', 'corrected'):
                runs = [r[f'{label}, 12 pairs'] for r in rigs]
                if not all('optimum_px' in r for r in runs):
                    cells.append('')
                    continue
                cells.append(' '.join(f"{r['optimum_px']:.2f}" for r in runs)
                             + f" (median {np.median([r['optimum_px'] for r in runs]):.2f}) / "
                             + ' '.join(f"{r['vs_optimum_px']:.2f}" for r in runs)
                             + f" (median {np.median([r['vs_optimum_px'] for r in runs]):.2f})")
            lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--roadscene', help='RoadScene folder')
    parser.add_argument('--msrs', help='msrs128 folder')
    parser.add_argument('--subset', choices=('train', 'test'), default='train')
    parser.add_argument('--fit-subset', choices=('train', 'test'), default=None,
                        help='fit the models on this split (default: --subset)')
    parser.add_argument('--pairs', type=int, default=100, help='registered pairs per set')
    parser.add_argument('--rigs', type=int, default=0, help='rigs per set rendered and estimated')
    parser.add_argument('--seed', type=int, default=22)
    args = parser.parse_args()
    if not (args.roadscene or args.msrs):
        sys.exit('registration_data.py: error: give --roadscene and/or --msrs')
    fit_subset = args.fit_subset or args.subset
    report = {'command': command(), 'subset': args.subset, 'fit_subset': fit_subset,
              'pairs': args.pairs,
              'machine': machine.describe(packages=('opencv',)), 'models': {}, 'rigs': {}}
    scored = set_pairs(args.roadscene, args.msrs, args.subset)
    for name, pairs in set_pairs(args.roadscene, args.msrs, fit_subset).items():
        start = time.perf_counter()
        rng = np.random.default_rng(5)
        chosen = rng.choice(len(pairs), min(args.pairs, len(pairs)), replace=False)
        grey = [registered(pairs[int(i)]) for i in chosen]
        thermals = [E.to_gray_float(t) for t, _ in grey]
        visibles = [E.to_gray_float(v) for _, v in grey]
        rows = {}
        for label, crop, halo, radial in MODELS:
            rows[label] = fit_content_model(thermals, visibles, SIGMAS[name], crop, halo, radial)
        report['models'][name] = rows
        print(f'{name}: ' + '; '.join(f"{label}: z {100 * m['zoom']:+.2f} %, k "
                                      f"{100 * m['radial']:+.2f} %, halo {m['halo']:+.2f} px"
                                      for label, m in rows.items())
              + f' ({time.perf_counter() - start:.0f} s)', flush=True)
        if args.rigs:
            report['rigs'][name] = rig_errors(name, scored[name], rows[MODELS[-1][0]], args.rigs,
                                              args.seed)
    stem = RESULTS / (f'registration_data_{args.subset}' if fit_subset == args.subset
                      else f'registration_data_{args.subset}_fit_{fit_subset}')
    write_results(stem, report, markdown(report), show=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
