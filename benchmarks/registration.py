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
Automatic registration (``sgdfuse register``) on simulated rigs made from registered pairs.

For each rig one homography is drawn (``sgdfuse_ros.registration.simulate.random_rig``: thermal
640x512, 384x288 or 320x256; thermal field 55-85 % of the visible width; centre shifted up to
8 %; rotation up to 3 degrees; slight perspective) and every pair of the rig is rendered through
it: the visible image resized to 640x480, the thermal image rendered at the thermal camera's
resolution (with 1.5 grey levels of noise). The rig's frames are drawn from one set (RoadScene,
MSRS day = names ending in D, MSRS night = N) of one split; ``--subset train`` for tuning,
``test`` to report. Error: mean distance, in visible pixels, between the thermal frame's four
corners mapped by the true and by the estimated homography.

Rows per set and frames per rig (12, then the first 3, then the first 1 of the same rig):
median, 90th percentile and worst error over the rigs; how many rigs the confidence check would
refuse (refused rigs are scored all the same: nothing is hidden); the median jackknife
uncertainty the tool reports; seconds per rig. Baseline, on the same rigs and frames: OpenCV's
ECC (``MOTION_HOMOGRAPHY``) on gradient magnitudes, coarse to fine (visible widths 160, 320,
640), from a centred guess (the thermal field at the middle of the drawn range, 70 %, centred,
no rotation), one pair at a time.

Where the content agrees (12 pairs per rig): the estimator's finer levels started from the TRUE
homography (the content optimum) and, with no edges, the zoom about the thermal centre at which
the mutual information of the intensities peaks; their distance from the truth is what the set's
own registration contributes, the estimate's distance from the content optimum is the
estimator's own error. ``--add-optimum`` adds both to the rigs of a finished table.

    python benchmarks/registration.py --roadscene ../shared/data/roadscene \\
        --msrs ../shared/data/msrs128 --subset test --rigs 8

``--write-rig DIR`` instead writes one rig of the RoadScene split (``--seed``) as a camera pair
would record it - ``DIR/ir``, ``DIR/vis`` (PNG, each camera at its own size) and the true
homography as a parameter file ``DIR/true.yaml`` - for the end-to-end check of the fused
result (``sgdfuse make-bag --unregistered``, ``sgdfuse register``, ``sgdfuse replay --config``
with the estimated and with the true file; the commands are in ``results/registration.md``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
import sys
import time

import cv2
from harness import command, RESULTS, write_results
import machine
import numpy as np
from sgdfuse_ros.eval.datasets import dataset_pairs, read_pair
from sgdfuse_ros.eval.metric_kernels import mutual_info
from sgdfuse_ros.registration import estimate as E
from sgdfuse_ros.registration import simulate as S

PAIR_COUNTS = (12, 3, 1)
GUESS_FIELD = 0.70


def baseline_ecc(thermal: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Register one pair: OpenCV ECC homography on gradient magnitudes, 3 levels, centred guess."""
    t = E.to_gray_float(thermal)
    v = E.to_gray_float(visible)
    th, tw = t.shape
    vh, vw = v.shape
    h = S.rig_homography((tw, th), (vw, vh), GUESS_FIELD)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    for width in (160, 320, 640):
        kv = min(width, vw) / vw
        vl = E.resize_to_width(v, min(width, vw))
        step = math.sqrt(abs(np.linalg.det(h[:2, :2]))) * kv
        tl = E.resize_factor(t, min(1.0, step))
        vk = E.scale_between(v.shape, vl.shape)
        tk = E.scale_between(t.shape, tl.shape)
        warp = (vk @ h @ np.linalg.inv(tk)).astype(np.float32)
        warp /= warp[2, 2]
        tg = _grad(tl)
        vg = _grad(vl)
        try:
            _, warp = cv2.findTransformECC(tg, vg, warp, cv2.MOTION_HOMOGRAPHY, criteria, None, 5)
        except cv2.error:
            pass  # did not converge at this level: keep the estimate so far
        h = np.linalg.inv(vk) @ warp.astype(np.float64) @ tk
        h /= h[2, 2]
    return h


def _grad(image: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


def set_pairs(roadscene, msrs, subset: str) -> dict:
    sets = {}
    if roadscene:
        sets['RoadScene'] = dataset_pairs(roadscene, subset)
    if msrs:
        pairs = dataset_pairs(msrs, subset)
        sets['MSRS day'] = [p for p in pairs if p.name.endswith('D')]
        sets['MSRS night'] = [p for p in pairs if p.name.endswith('N')]
    return sets


def reference_offset(originals, visible_size) -> np.ndarray:
    """
    Return where the registered pairs' own edges agree: thermal (at visible size) -> visible.

    The sets' pairs were registered by their authors; their edges need not agree exactly (hand
    registration, another camera's lens). ECC over the rig's registered pairs from the identity
    (the same joint refinement as the estimator, at 640x480) finds ``B``; ``B @ H`` is where an
    edge-based method must land on the rendered rig, and its distance from ``H`` is the part of
    the error that the reference data itself carries.
    """
    vw, vh = visible_size
    therm, vis = [], []
    for t, v in originals:
        interp = cv2.INTER_AREA if v.shape[1] > vw else cv2.INTER_LINEAR
        therm.append(cv2.resize(E.to_gray_float(t), (vw, vh), interpolation=interp))
        vis.append(cv2.resize(E.to_gray_float(v), (vw, vh), interpolation=interp))
    eye = np.eye(3)
    b = eye
    for width in (160, 320, 640):
        level = E._Level(therm, vis, b, width, 2)
        b, _ = level.run(b, iterations=40, tol=0.01)
    return b


def content_optimum(rig, frames) -> np.ndarray:
    """
    Return where the rig's rendered frames agree best near the true homography.

    The estimator's finer levels (``estimate.refine_fine``: edge maps at 320 and 640, then the
    gradient orientations) started from the TRUE homography on the rig's frames: the nearest
    maximum of the similarity the estimator maximises. Its distance from the truth is what an
    estimator that lands exactly where the images' content agrees still scores against the set's
    registration; the estimate's distance from it is the estimator's own error (search and
    convergence).
    """
    therm = [E.to_gray_float(t) for t, _ in frames]
    vis = [E.to_gray_float(v) for _, v in frames]
    return E.refine_fine(therm, vis, rig.homography)[0]


MI_ZOOMS = np.linspace(0.94, 1.03, 46)   # zooms of the mutual-information profile (0.2 % apart)
MI_BINS = 32


def mutual_information_zoom(rig, frames, zooms=MI_ZOOMS) -> float:
    """
    Return the zoom about the thermal image's centre at which the frames' intensities agree best.

    An independent check of the edge-based content optimum: every thermal frame is warped into
    the visible image by the true homography composed with a zoom ``s`` about the thermal centre
    (all else true), and the mutual information of the warped thermal and the visible intensities
    (``MI_BINS`` levels each, one joint histogram over the rig's frames, where the thermal frame
    covers the visible image) is taken; the peak is refined by a parabola through its neighbours.
    No edges enter, so a zoom found by both this and the edge maps is in the images.
    """
    tw, th = rig.thermal_size
    vw, vh = rig.visible_size
    therm = [np.clip(E.to_gray_float(t) * MI_BINS, 0, MI_BINS - 1).astype(np.int32)
             .astype(np.float32) for t, _ in frames]
    vis = [np.clip(E.to_gray_float(v) * MI_BINS, 0, MI_BINS - 1).astype(np.intp)
           for _, v in frames]
    ones = np.ones((th, tw), np.uint8)
    scores = []
    for s in zooms:
        h = zoomed(rig, s)
        pairs_t, pairs_v = [], []
        for t, v in zip(therm, vis):
            warped = cv2.warpPerspective(t, h, (vw, vh), flags=cv2.INTER_NEAREST)
            inside = cv2.warpPerspective(ones, h, (vw, vh), flags=cv2.INTER_NEAREST) > 0
            pairs_t.append(warped[inside].astype(np.intp))
            pairs_v.append(v[inside])
        # one joint histogram over all the rig's frames
        scores.append(mutual_info((np.concatenate(pairs_t), MI_BINS),
                                  (np.concatenate(pairs_v), MI_BINS)))
    k = int(np.argmax(scores))
    if 0 < k < len(zooms) - 1:
        a, b, c = scores[k - 1], scores[k], scores[k + 1]
        den = a - 2 * b + c
        offset = 0.5 * (a - c) / den if den < 0 else 0.0
        return float(zooms[k] + offset * (zooms[1] - zooms[0]))
    return float(zooms[k])


def zoomed(rig, zoom: float) -> np.ndarray:
    """Return the true homography composed with a zoom about the thermal image's centre."""
    tw, th = rig.thermal_size
    centre = np.array([[1, 0, (tw - 1) / 2.0], [0, 1, (th - 1) / 2.0], [0, 0, 1.0]])
    return rig.homography @ centre @ np.diag([zoom, zoom, 1.0]) @ np.linalg.inv(centre)


def zoom_error(rig, zoom: float) -> float:
    """Corner error (visible px) of the true homography composed with a zoom about the centre."""
    return S.corner_error(rig.homography, zoomed(rig, zoom), rig.thermal_size)


def add_optimum(out: dict, rig, frames, estimate_h: np.ndarray) -> None:
    """Store the content optimum's distance from the truth and from the 12-pair estimate."""
    optimum = content_optimum(rig, frames)
    out['optimum_px'] = S.corner_error(rig.homography, optimum, rig.thermal_size)
    out['optimum_zoom'] = relative_zoom(rig.homography, optimum)
    out['runs']['12']['error_vs_optimum_px'] = S.corner_error(optimum, estimate_h,
                                                              rig.thermal_size)
    add_mi_zoom(out, rig, frames)


def add_mi_zoom(out: dict, rig, frames) -> None:
    """Store the mutual-information zoom profile's peak and its corner error."""
    out['mi_zoom'] = mutual_information_zoom(rig, frames)
    out['mi_zoom_px'] = zoom_error(rig, out['mi_zoom'])


def relative_zoom(truth: np.ndarray, other: np.ndarray) -> float:
    """Scale of ``other`` against ``truth`` in thermal pixels (1: the same size)."""
    rel = np.linalg.inv(truth) @ other
    rel /= rel[2, 2]
    return float(math.sqrt(abs(np.linalg.det(rel[:2, :2]))))


def run_rig(rig, frames, with_baseline: bool, originals=None, optimum: bool = True) -> dict:
    out = {'rig': rig.describe(), 'runs': {}}
    edge_truth = None
    if originals is not None:
        edge_truth = reference_offset(originals, rig.visible_size) @ rig.homography
        out['reference_offset_px'] = S.corner_error(rig.homography, edge_truth, rig.thermal_size)
    for count in PAIR_COUNTS:
        th = [f[0] for f in frames[:count]]
        vi = [f[1] for f in frames[:count]]
        start = time.perf_counter()
        est = E.estimate(th, vi, refuse=False)
        seconds = time.perf_counter() - start
        out['runs'][str(count)] = {
            'error_px': S.corner_error(rig.homography, est.homography, rig.thermal_size),
            'uncertainty_px': est.uncertainty_px, 'refusal': est.refusal,
            'correlation': est.correlation, 'peak_contrast': est.peak_contrast,
            'seconds': seconds}
        if edge_truth is not None:
            out['runs'][str(count)]['error_vs_edges_px'] = S.corner_error(
                edge_truth, est.homography, rig.thermal_size)
        if count == 12 and optimum and len(frames) >= 12:
            add_optimum(out, rig, frames[:12], est.homography)
    if with_baseline:
        errors = []
        for t, v in frames:
            errors.append(S.corner_error(rig.homography, baseline_ecc(t, v), rig.thermal_size))
        out['baseline_px'] = errors
    return out


def summarise(rigs: list) -> dict:
    rows = {}
    for count in PAIR_COUNTS:
        runs = [r['runs'][str(count)] for r in rigs]
        errors = np.array([r['error_px'] for r in runs])
        refused = [r for r in runs if r['refusal']]
        rows[str(count)] = {
            'rigs': len(runs), 'median_px': float(np.median(errors)),
            'p90_px': float(np.percentile(errors, 90)), 'worst_px': float(errors.max()),
            'refused': len(refused),
            'worst_accepted_px': float(max([r['error_px'] for r in runs if not r['refusal']],
                                           default=float('nan'))),
            'median_uncertainty_px': float(np.median([r['uncertainty_px'] for r in runs])),
            'median_seconds': float(np.median([r['seconds'] for r in runs]))}
        if all('error_vs_edges_px' in r for r in runs):
            rows[str(count)]['median_vs_edges_px'] = float(np.median(
                [r['error_vs_edges_px'] for r in runs]))
    optima = [r['optimum_px'] for r in rigs if 'optimum_px' in r]
    if len(optima) == len(rigs):
        own = np.array([r['runs']['12']['error_vs_optimum_px'] for r in rigs])
        rows['optimum'] = {'median_px': float(np.median(optima)),
                           'best_px': float(np.min(optima)), 'worst_px': float(np.max(optima)),
                           'rigs_within_1_5px': int(np.sum(np.array(optima) <= 1.5)),
                           'estimate_vs_optimum_median_px': float(np.median(own)),
                           'estimate_vs_optimum_worst_px': float(own.max())}
        if all('optimum_zoom' in r and 'mi_zoom' in r for r in rigs):
            rows['optimum'].update(
                zoom_median=float(np.median([r['optimum_zoom'] for r in rigs])),
                mi_zoom_median=float(np.median([r['mi_zoom'] for r in rigs])),
                mi_zoom_median_px=float(np.median([r['mi_zoom_px'] for r in rigs])),
                mi_rigs_within_1_5px=int(sum(r['mi_zoom_px'] <= 1.5 for r in rigs)))
    offsets = [r['reference_offset_px'] for r in rigs if 'reference_offset_px' in r]
    if offsets:
        rows['reference'] = {'median_px': float(np.median(offsets)),
                             'worst_px': float(np.max(offsets))}
    base = [e for r in rigs for e in r.get('baseline_px', [])]
    if base:
        rows['baseline'] = {'pairs': len(base), 'median_px': float(np.median(base)),
                            'p90_px': float(np.percentile(base, 90)),
                            'worst_px': float(np.max(base)),
                            'share_within_4px': float(np.mean(np.array(base) <= 4.0))}
    return rows


def markdown(report: dict) -> str:
    lines = [f"# Automatic registration on simulated rigs ({report['subset']} splits)", '',
             f"`{report['command']}`", '',
             f"{report['machine'].get('cpu', '')}; {report['rigs_per_set']} rigs per set, "
             'error = mean thermal-corner distance in visible pixels (640x480).', '',
             '| set | pairs per rig | median (px) | p90 (px) | worst (px) | refused | worst '
             'accepted (px) | reported uncertainty, median (px) | s per rig | baseline ECC per '
             'pair: median / p90 / worst (px), share <= 4 px | reference offset: median / worst '
             '(px) | median vs edge reference (px) |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|']
    for name, rows in report['summary'].items():
        base = rows.get('baseline')
        ref = rows.get('reference')
        for count in PAIR_COUNTS:
            r = rows[str(count)]
            b = (f"{base['median_px']:.1f} / {base['p90_px']:.1f} / {base['worst_px']:.1f}, "
                 f"{100 * base['share_within_4px']:.0f} %" if base and count == 12 else '')
            o = (f"{ref['median_px']:.2f} / {ref['worst_px']:.2f}" if ref and count == 12
                 else '')
            e = f"{r['median_vs_edges_px']:.2f}" if 'median_vs_edges_px' in r else ''
            lines.append(f"| {name} | {count} | {r['median_px']:.2f} | {r['p90_px']:.2f} | "
                         f"{r['worst_px']:.2f} | {r['refused']} | {r['worst_accepted_px']:.2f} | "
                         f"{r['median_uncertainty_px']:.2f} | {r['median_seconds']:.1f} | {b} | "
                         f'{o} | {e} |')
    optimum_rows = [(name, rows['optimum']) for name, rows in report['summary'].items()
                    if 'optimum' in rows]
    if optimum_rows:
        lines += ['', "Where the content agrees (12 pairs per rig): the estimator's finer levels "
                  "started from the *true* homography on the rig's frames end at the content "
                  'optimum, this far from the truth; the 12-pair estimate is this far from it. '
                  'Mutual information: the zoom about the thermal centre (all else true) at '
                  'which the intensities agree best (no edges), and its corner error.', '',
                  '| set | content optimum vs truth: median / best / worst (px) | rigs whose '
                  'optimum is within 1.5 px of the truth | its zoom, median | estimate vs '
                  'content optimum: median / worst (px) | mutual information: zoom, median | '
                  'its corner error, median (px) | rigs within 1.5 px |',
                  '|---|---|---:|---:|---|---:|---:|---:|']
        for name, o in optimum_rows:
            mi = (f"{o['mi_zoom_median']:.4f} | {o['mi_zoom_median_px']:.2f} | "
                  f"{o['mi_rigs_within_1_5px']} of {report['rigs_per_set']}"
                  if 'mi_zoom_median' in o else ' | | ')
            zoom = f"{o['zoom_median']:.4f}" if 'zoom_median' in o else ''
            lines.append(f"| {name} | {o['median_px']:.2f} / {o['best_px']:.2f} / "
                         f"{o['worst_px']:.2f} | {o['rigs_within_1_5px']} of "
                         f"{report['rigs_per_set']} | {zoom} | "
                         f"{o['estimate_vs_optimum_median_px']:.2f} / "
                         f"{o['estimate_vs_optimum_worst_px']:.2f} | {mi} |")
    lines += ['', 'Refused: `sgdfuse register` would refuse the rig (jackknife spread of the '
              'corners above 3 px, two distant placements fitting about equally well, or '
              f'registered edges agreeing less than {E.MIN_CORRELATION:g}); its '
              'error is counted above all the same. Worst accepted: the worst rig that would not '
              'be refused. `sgdfuse register` also refuses fewer than 3 frames by default '
              '(`--min-frames`); the 1-pair rows are the estimator alone.', '',
              "Reference offset: the same joint ECC run on the rig's 12 *registered* pairs (at "
              "640x480, from the identity) moves the thermal corners by this much: the sets' own "
              'registration is not where their thermal and visible edges agree best, and an '
              "edge-based estimate inherits that offset (an estimator given the thermal camera's "
              'own view of the visible image, same modality, lands within 0.05 px). Median vs '
              'edge '
              'reference: the error measured from the edge-agreeing placement instead (true '
              "homography composed with that offset); it is the estimator's own share.", '']
    return '\n'.join(lines)


def write_rig(out: Path, roadscene: Path, subset: str, seed: int) -> int:
    if roadscene is None:
        sys.exit('registration.py: error: --write-rig needs --roadscene')
    rig = S.random_rig(np.random.default_rng(seed))
    (out / 'ir').mkdir(parents=True, exist_ok=True)
    (out / 'vis').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 1])
    for pair in dataset_pairs(roadscene, subset):
        t, v = read_pair(pair)
        thermal, visible = S.render_pair(rig, t, v, noise=1.5, rng=rng)
        cv2.imwrite(str(out / 'ir' / f'{pair.name}.png'), thermal)
        cv2.imwrite(str(out / 'vis' / f'{pair.name}.png'), visible)
    numbers = ', '.join(repr(float(x)) for x in rig.homography.ravel())
    (out / 'true.yaml').write_text(f'# the true homography of rig {seed}: {rig.describe()}\n'
                                   f'/**:\n  ros__parameters:\n    registration:\n'
                                   f'      homography: [{numbers}]\n')
    print(f'{out}: {rig.describe()}')
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--roadscene', type=Path, help='RoadScene folder')
    parser.add_argument('--msrs', type=Path, help='msrs128 folder')
    parser.add_argument('--subset', choices=('train', 'test'), default='test')
    parser.add_argument('--rigs', type=int, default=8, help='rigs per set (default 8)')
    parser.add_argument('--seed', type=int, default=22)
    parser.add_argument('--no-baseline', action='store_true')
    parser.add_argument('--no-reference', action='store_true',
                        help='skip the reference offset (ECC on the registered pairs themselves)')
    parser.add_argument('--add-optimum', action='store_true',
                        help='add the content optimum to finished rigs that lack it (their '
                             '12-pair estimate is run again, nothing else)')
    parser.add_argument('--sets', nargs='*', help='only these sets (names as in the table)')
    parser.add_argument('--out', default=None, help='result stem (default registration[_train])')
    parser.add_argument('--write-rig', type=Path, metavar='DIR',
                        help='write one rig of the RoadScene split to DIR and stop')
    args = parser.parse_args()
    if args.write_rig:
        return write_rig(args.write_rig, args.roadscene, args.subset, args.seed)
    if not (args.roadscene or args.msrs):
        sys.exit('registration.py: error: give --roadscene and/or --msrs')
    stem = RESULTS / (args.out or ('registration' if args.subset == 'test'
                                   else f'registration_{args.subset}'))
    stem.parent.mkdir(parents=True, exist_ok=True)
    # finished rigs are kept per set (a run per set may go in parallel) and read back by any run
    done = {}
    for cached in sorted(stem.parent.glob(stem.name + '*.partial.json')):
        done.update(json.loads(cached.read_text()))
    if args.add_optimum and stem.with_suffix('.json').is_file():
        # the finished table's rigs, in the order they were drawn
        for name, rigs in json.loads(stem.with_suffix('.json').read_text())['rigs'].items():
            for index, rig in enumerate(rigs):
                done.setdefault(f'{name}/{index}', rig)
    sets = set_pairs(args.roadscene, args.msrs, args.subset)
    results = {}
    for name, pairs in sets.items():
        if args.sets and name not in args.sets:
            continue
        rng = np.random.default_rng([args.seed, sum(map(ord, name))])
        results[name] = []
        partial = stem.with_name(f"{stem.name}.{name.replace(' ', '_')}.partial.json")
        mine = json.loads(partial.read_text()) if partial.exists() else {}
        for index in range(args.rigs):
            rig = S.random_rig(rng)
            chosen = rng.choice(len(pairs), min(12, len(pairs)), replace=False)
            noise_rng = np.random.default_rng([args.seed, index, sum(map(ord, name)), 1])
            key = f'{name}/{index}'
            checks = {'optimum_px', 'optimum_zoom', 'mi_zoom'}
            if key in done and not (args.add_optimum and not checks <= set(done[key])):
                results[name].append(done[key])
                continue
            frames, originals = [], []
            for i in chosen:
                t, v = read_pair(pairs[int(i)])
                originals.append((t, v))
                frames.append(S.render_pair(rig, t, v, noise=1.5, rng=noise_rng))
            if key in done:
                if done[key].get('pairs') != [pairs[int(i)].name for i in chosen]:
                    sys.exit(f'registration.py: error: {key} was made from other pairs than '
                             'this run draws (another --seed or data?)')
                # a finished rig without the content optimum: the 12-pair estimate once more
                # (it must reproduce the stored error) and the optimum, nothing else redone
                out = done[key]
                if 'optimum_px' in out:
                    if 'optimum_zoom' not in out:
                        out['optimum_zoom'] = relative_zoom(rig.homography,
                                                            content_optimum(rig, frames))
                    if 'mi_zoom' not in out:
                        add_mi_zoom(out, rig, frames)
                else:
                    est = E.estimate([f[0] for f in frames], [f[1] for f in frames],
                                     refuse=False)
                    out['runs']['12']['recheck_error_px'] = S.corner_error(
                        rig.homography, est.homography, rig.thermal_size)
                    add_optimum(out, rig, frames, est.homography)
                results[name].append(out)
                mine[key] = out
                partial.write_text(json.dumps(mine))
                print(f"{key}: 12 pairs {out['runs']['12']['error_px']:.2f} px (again "
                      f"{out['runs']['12'].get('recheck_error_px', float('nan')):.2f}); "
                      f"content optimum {out['optimum_px']:.2f} px from the truth (zoom "
                      f"{out['optimum_zoom']:.4f}), estimate "
                      f"{out['runs']['12']['error_vs_optimum_px']:.2f} px from it; mutual "
                      f"information peaks at zoom {out['mi_zoom']:.4f} "
                      f"({out['mi_zoom_px']:.2f} px)", flush=True)
                continue
            out = run_rig(rig, frames, not args.no_baseline,
                          None if args.no_reference else originals)
            out['pairs'] = [pairs[int(i)].name for i in chosen]
            results[name].append(out)
            mine[key] = out
            partial.write_text(json.dumps(mine))
            runs = out['runs']
            print(f"{key}: {out['rig']}: " + ', '.join(
                f"{c} pairs {runs[str(c)]['error_px']:.2f} px"
                f"{' (refused)' if runs[str(c)]['refusal'] else ''}" for c in PAIR_COUNTS)
                + (f"; ECC median {np.median(out['baseline_px']):.1f} px"
                   if 'baseline_px' in out else '')
                + (f"; reference offset {out['reference_offset_px']:.2f} px"
                   if 'reference_offset_px' in out else '')
                + (f"; content optimum {out['optimum_px']:.2f} px from the truth, mutual "
                   f"information at zoom {out['mi_zoom']:.4f}" if 'optimum_px' in out else ''),
                flush=True)
    report = {'command': command(), 'subset': args.subset, 'rigs_per_set': args.rigs,
              'machine': machine.describe(packages=('opencv',)),
              'summary': {name: summarise(rigs) for name, rigs in results.items()},
              'rigs': results}
    write_results(stem, report, markdown(report), show=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
