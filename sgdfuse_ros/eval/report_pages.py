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
The parts of a run's report that ``sgdfuse evaluate`` and ``sgdfuse replay`` share.

- :func:`per_image_table`: one row per image (or frame): its name, each metric, its time;
- :func:`run_plot`: one PNG per run, the distribution of each metric over the images and the
  time of each pipeline stage (matplotlib, file-only backend);
- :func:`contact_sheet`: rows of labelled panels, every row the same width, labels on a band
  above each panel in a size that reads at 100 %;
- :func:`report_html`: the report's markdown as a page that opens in a browser (tables,
  headings, the plot and the contact sheet beside it), with no dependency beyond this module.
"""

from __future__ import annotations

import html
import io
import math
import re
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

SHEET_WIDTH = 1280      # every contact-sheet row is this wide
LABEL_BAND = 30         # pixels above each panel for its label
LABEL_SCALE = 0.62      # cv2 Hershey simplex: about 14 px capitals, legible at 100 %
GAP = 6
BACKGROUND = (32, 32, 32)


def cell_text(value, digits: int = 4) -> str:
    """Return a table cell: a float to ``digits`` places, '-' for a missing value."""
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.{digits}f}' if math.isfinite(value) else str(value)
    return str(value)


def per_image_table(rows: Sequence[Tuple[str, Optional[Dict[str, float]], Optional[float]]],
                    metrics: Sequence[str], name_header: str = 'image',
                    time_header: str = 'time (ms)') -> List[str]:
    """
    Return the markdown lines of the per-image table: name, each metric, time.

    ``rows``: (name, {metric: value} or None when not scored, time in ms or None).
    """
    lines = ['| ' + ' | '.join([name_header, *metrics, time_header]) + ' |',
             '|---|' + '---:|' * (len(metrics) + 1)]
    for name, values, ms in rows:
        values = values or {}
        cells = [str(name).replace('|', '/')] + [cell_text(values.get(m)) for m in metrics] + \
            [cell_text(ms, 1)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines


def pyplot():
    """Return matplotlib's pyplot on the file-only backend (imported on the first plot)."""
    import matplotlib  # optional heavy import (plots only), with the file-only backend
    matplotlib.use('Agg', force=True)
    from matplotlib import pyplot as plt  # see above
    return plt


def run_plot(metric_values: Dict[str, List[float]], stage_ms: Dict[str, List[float]],
             title: str) -> Optional[bytes]:
    """
    Return one PNG: a histogram per metric over the images, and the per-stage time.

    None when there is nothing to draw (no metric and no timing).
    """
    metric_values = {m: [v for v in vals if v is not None and math.isfinite(v)]
                     for m, vals in metric_values.items()}
    metric_values = {m: vals for m, vals in metric_values.items() if vals}
    stage_ms = {s: [v for v in vals if v is not None and math.isfinite(v)]
                for s, vals in stage_ms.items()}
    stage_ms = {s: vals for s, vals in stage_ms.items() if vals}
    panels = len(metric_values) + (1 if stage_ms else 0)
    if not panels:
        return None
    plt = pyplot()
    columns = min(4, panels)
    rows = int(math.ceil(panels / columns))
    width, height = 3.6 * columns, 2.9 * rows + 0.5
    figure, axes = plt.subplots(rows, columns, figsize=(width, height), squeeze=False)
    # fixed margins (inches: room for the tick labels, the panel titles and the stage names);
    # matplotlib's tight_layout found about the same at the cost of a second drawing
    figure.subplots_adjust(left=(0.95 if stage_ms and len(metric_values) % columns == 0
                                 else 0.45) / width,
                           right=1 - 0.15 / width, bottom=0.5 / height,
                           top=1 - 0.75 / height, wspace=0.32, hspace=0.38)
    cells = list(axes.ravel())
    for ax, (name, values) in zip(cells, metric_values.items()):
        ax.hist(values, bins=min(20, max(5, len(values) // 2)), color='#4477aa')
        mean = float(np.mean(values))
        ax.axvline(mean, color='#cc3311', linewidth=1.5)
        ax.set_title(f'{name}: mean {mean:.3g} (n={len(values)})', fontsize=10)
        ax.tick_params(labelsize=8)
    if stage_ms:
        ax = cells[len(metric_values)]
        names = list(stage_ms)
        ax.boxplot([stage_ms[s] for s in names], orientation='horizontal', showfliers=True)
        ax.set_yticks(range(1, len(names) + 1))
        ax.set_yticklabels(names, fontsize=8)
        ax.set_xlabel('ms per frame', fontsize=8)
        ax.set_title('time per stage', fontsize=10)
        ax.tick_params(labelsize=8)
    for ax in cells[panels:]:
        ax.axis('off')
    figure.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating):
            image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
        else:
            image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3]


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    """Put ``panel`` under a dark band holding ``text``, cut to the panel's width."""
    width = panel.shape[1]
    band = np.full((LABEL_BAND, width, 3), BACKGROUND, np.uint8)
    while text:
        (w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, LABEL_SCALE, 1)
        if w <= width - 10:
            break
        text = text[:-2] + '~' if len(text) > 2 else ''
    cv2.putText(band, text, (5, LABEL_BAND - 10), cv2.FONT_HERSHEY_SIMPLEX, LABEL_SCALE,
                (240, 240, 240), 1, cv2.LINE_AA)
    return np.vstack([band, panel])


def contact_sheet(rows: Sequence[Sequence[Tuple[str, np.ndarray]]],
                  width: int = SHEET_WIDTH) -> Optional[np.ndarray]:
    """
    Return the contact sheet: each row ``[(label, image), ...]`` scaled to ``width`` pixels.

    The panels of a row share one height, chosen so that the row fills ``width`` exactly;
    each panel carries its label on a band above it.
    """
    built = []
    for row in rows:
        images = [_as_bgr(np.asarray(image)) for _, image in row]
        aspects = [im.shape[1] / max(im.shape[0], 1) for im in images]
        room = width - GAP * (len(images) - 1)
        height = max(8, int(room / sum(aspects)))
        widths = [max(1, int(round(a * height))) for a in aspects]
        widths[-1] += room - sum(widths)  # the row is exactly ``width`` wide
        panels = []
        for (label, _), image, w in zip(row, images, widths):
            panel = cv2.resize(image, (w, height), interpolation=cv2.INTER_AREA)
            panels.append(_label(panel, label))
            panels.append(np.full((height + LABEL_BAND, GAP, 3), BACKGROUND, np.uint8))
        built.append(np.hstack(panels[:-1]))
        built.append(np.full((GAP, width, 3), BACKGROUND, np.uint8))
    return np.vstack(built[:-1]) if built else None


# --- the HTML page -------------------------------------------------------------------------------

_INLINE = [
    (re.compile(r'!\[([^\]]*)\]\(([^)\s]+)\)'),
     r'<img src="\2" alt="\1">'),
    (re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)'), r'<a href="\2">\1</a>'),
    (re.compile(r'`([^`]+)`'), r'<code>\1</code>'),
    (re.compile(r'\*\*([^*]+)\*\*'), r'<strong>\1</strong>'),
]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1320px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; }
td { text-align: right; } td:first-child { text-align: left; }
th { background: #eee; } tr:nth-child(even) td { background: #f7f7f7; }
img { max-width: 100%; height: auto; border: 1px solid #ccc; }
code { background: #f0f0f0; padding: 0 3px; }
"""


def _inline(text: str) -> str:
    text = html.escape(text, quote=True)
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return text


def report_html(markdown: str, title: str) -> str:
    """
    Return the report's markdown as an HTML page (the subset the reports use).

    Headings, paragraphs, bullet lists, tables, images, links, ``code`` and **bold**; every
    text is escaped, so names from a bag or a folder cannot inject markup.
    """
    body: List[str] = []
    table: List[List[str]] = []
    items: List[str] = []

    def flush():
        if table:
            head, rest = table[0], table[1:]
            body.append('<table><thead><tr>' + ''.join(f'<th>{_inline(c)}</th>' for c in head)
                        + '</tr></thead><tbody>')
            body.extend('<tr>' + ''.join(f'<td>{_inline(c)}</td>' for c in row) + '</tr>'
                        for row in rest)
            body.append('</tbody></table>')
            table.clear()
        if items:
            body.append('<ul>' + ''.join(f'<li>{_inline(i)}</li>' for i in items) + '</ul>')
            items.clear()

    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith('|'):
            if items:
                flush()
            cells = [c.strip() for c in stripped.strip('|').split('|')]
            if not all(c and set(c) <= set('-:') for c in cells):
                table.append(cells)
            continue
        if stripped.startswith('- '):
            if table:
                flush()
            items.append(stripped[2:])
            continue
        flush()
        heading = re.match(r'(#{1,4}) (.*)', stripped)
        if heading:
            level = len(heading.group(1))
            body.append(f'<h{level}>{_inline(heading.group(2))}</h{level}>')
        elif stripped:
            body.append(f'<p>{_inline(stripped)}</p>')
    flush()
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n'
            + '\n'.join(body) + '\n</body></html>\n')
