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

"""The run reports of evaluate and replay: per-image table, plot, contact sheet, HTML (#24)."""

import json
import os
from pathlib import Path
import shutil
import subprocess

from bag_support import make_bag
import cv2
import numpy as np
import pytest
from sgdfuse_ros.cli import main
from sgdfuse_ros.eval.metrics import HEADLINE_METRICS
from sgdfuse_ros.eval.report_pages import contact_sheet, report_html, SHEET_WIDTH
from sgdfuse_ros.eval.synthetic_pairs import write_sample

CLASSICAL = ['--set', 'first_stage.type=laplacian', '--set', 'refiner.steps=0']


def table_rows(markdown: str, heading: str) -> list:
    """Return the cells of the rows of the table under ``heading`` (header, separator skipped)."""
    section = markdown.split(heading, 1)[1].split('\n## ', 1)[0]
    rows = [line for line in section.splitlines() if line.startswith('|')]
    return [[c.strip() for c in row.strip('|').split('|')] for row in rows[2:]]


def png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image


def evaluated(tmp_path) -> Path:
    sample = tmp_path / 's'
    write_sample(sample, n=3, size=(96, 64))
    out = tmp_path / 'eval'
    assert main(['evaluate', '--data', str(sample), '--out', str(out), '--quiet',
                 *CLASSICAL]) == 0
    return out


def test_evaluate_report_has_the_per_image_table_a_plot_and_an_html_page(tmp_path):
    out = evaluated(tmp_path)
    report = json.loads((out / 'metrics.json').read_text())
    rows = table_rows((out / 'report.md').read_text(), '## Per image')
    assert [r[0] for r in rows] == sorted(report['per_image']) == sorted(report['time_ms'])
    for cells in rows:
        name = cells[0]
        assert len(cells) == 1 + len(HEADLINE_METRICS) + 1
        for metric, cell in zip(HEADLINE_METRICS, cells[1:]):
            assert float(cell) == pytest.approx(report['per_image'][name][metric], abs=1e-4)
        assert float(cells[-1]) == pytest.approx(report['time_ms'][name], abs=0.06)
        assert report['time_ms'][name] > 0
    plot = png(out / 'plot.png')
    assert plot.shape[1] >= 800 and plot.std() > 10  # drawn, not blank
    sheet = png(out / 'contact_sheet.png')
    assert sheet.shape[1] == SHEET_WIDTH
    page = (out / 'report.html').read_text()
    assert page.startswith('<!DOCTYPE html>') and '<table>' in page
    assert '<img src="plot.png"' in page and '<img src="contact_sheet.png"' in page


def test_replay_report_has_the_per_frame_table_a_plot_and_an_html_page(tmp_path):
    in_bag = make_bag(tmp_path, 'in_bag', n=3)
    assert main(['replay', str(in_bag), '--out', str(tmp_path / 'out'), '--quiet',
                 *CLASSICAL]) == 0
    folder = tmp_path / 'out_report'
    report = json.loads((folder / 'report.json').read_text())
    rows = table_rows((folder / 'report.md').read_text(), '## Per frame')
    assert len(rows) == len(report['frames']) == 3
    for cells, frame in zip(rows, report['frames']):
        assert cells[0] == f"#{frame['index']} t={frame['stamp_ns'] / 1e9:.3f}"
        assert float(cells[1]) == pytest.approx(frame['metrics'][HEADLINE_METRICS[0]], abs=1e-4)
        assert float(cells[-1]) == pytest.approx(frame['timings_ms']['total'], abs=0.06)
    assert report['plot'] == 'plot.png' and png(folder / 'plot.png').std() > 10
    assert report['prior_sources'] == {'thermal': 3}
    assert png(folder / 'contact_sheet.png').shape[1] == SHEET_WIDTH
    assert '<img src="plot.png"' in (folder / 'report.html').read_text()


def test_contact_sheet_rows_are_one_width_with_labels_on_a_band():
    tall = np.full((200, 100), 200, np.uint8)
    wide = np.full((60, 300, 3), 90, np.uint8)
    sheet = contact_sheet([[('tall thermal', tall), ('wide', wide)],
                           [('a', wide), ('b', wide), ('c', tall), ('d', wide)]])
    assert sheet.shape[1] == SHEET_WIDTH
    band = sheet[:30, :200]
    assert band.max() >= 200 and np.median(band) < 60  # light text on a dark band


def test_html_escapes_what_comes_from_names():
    page = report_html('# run <b>\n\n| pair | EN |\n|---|---:|\n| <script>x</script> | 1 |\n',
                       'a <title>')
    assert '<script>' not in page and '&lt;script&gt;' in page and '<td>1</td>' in page


def test_html_report_renders_in_a_headless_browser(tmp_path):
    browser = shutil.which('chromium') or shutil.which('chromium-browser')
    if browser is None:
        pytest.skip('chromium is not installed (apt-get install chromium): the HTML report '
                    'is not rendered here')
    out = evaluated(tmp_path)
    shot = tmp_path / 'shot.png'
    env = dict(os.environ, HOME=str(tmp_path))
    done = subprocess.run(
        [browser, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
         '--no-first-run', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', f'--user-data-dir={tmp_path / "profile"}', f'--screenshot={shot}',
         '--window-size=1400,1800', (out / 'report.html').as_uri()],
        capture_output=True, timeout=120, env=env)
    assert done.returncode == 0 and shot.is_file(), done.stderr.decode()[-500:]
    image = png(shot)
    assert image.shape[:2] == (1800, 1400)
    # the page, not a blank or an error page: dark text on white at the top, the plot's and
    # the contact sheet's pixels (the sheet's dark bands) further down
    top = image[:200]
    assert (top > 240).mean() > 0.5 and (top < 80).mean() > 0.002
    assert (image[200:] < 60).mean() > 0.02
