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

"""The /diagnostics the node publishes: levels, rates, latency, drops, prior; its timer."""


from node_support import FakePipeline, H, make_core, NS, send_pair, thermal_msg, W
import numpy as np
from sgdfuse_ros import messages
from sgdfuse_ros.node.diagnostics import as_dict, ERROR, OK, WARN


def test_diagnostics_report_rates_latency_drops_and_prior(scene):
    core, t = make_core({'warn.period_s': 60.0})
    core.configure()
    t.fire_timers()
    report = as_dict(t.sent('/diagnostics')[-1])
    assert report['cam/fusion_node: processing']['level'] == ERROR  # inactive
    core.activate()
    for i in range(6):
        send_pair(t, scene, 1.0 + i / 30)
        core.process_pending()
    t.publish('thermal/image_raw', thermal_msg(np.zeros((H, W, 3), np.uint8), 5.0, 'bgr8'))
    t.fire_timers()
    array = t.sent('/diagnostics')[-1]
    assert array.__msgtype__ == messages.DIAGNOSTIC_ARRAY
    report = as_dict(array)
    inputs = report['cam/fusion_node: inputs']
    assert inputs['level'] == WARN and 'rejected' in inputs['message']
    assert float(inputs['values']['thermal rate (Hz)']) > 0
    assert inputs['values']['thermal rejected (encoding)'] == '1'
    assert inputs['values']['rgb topic'] == f'{NS}/rgb/image_raw'
    processing = report['cam/fusion_node: processing']
    assert processing['level'] == OK
    values = processing['values']
    for key in ('latency total p50 (ms)', 'latency prior p90 (ms)', 'latency end_to_end p50 (ms)',
                'output rate (Hz)', 'dropped (worker busy)', 'device', 'prior source',
                'prior age (s)'):
        assert key in values, key
    assert values['prior source'] == 'thermal' and values['device'] == 'cpu'
    assert values['first stage'] == 'network (tuned for images)'  # which shipped weights
    assert values['published'] == '6'
    # how the CPU is used (thread_policy): the shipped default, the count in use
    assert values['thread policy'] == 'adaptive' and values['backend'] in ('onnx', 'torch')
    assert int(values['threads']) >= 1 and 'omp wait policy' in values
    sync = report['cam/fusion_node: synchronisation']
    assert sync['values']['pairs'] == '6' and sync['values']['thermal dropped (unmatched)'] == '0'
    assert all(s.hardware_id == 'cpu' for s in array.status)
    core.shutdown()


def test_diagnostics_name_the_first_stage_weights_that_run(scene):
    for overrides, expected in (
            ({'first_stage.tuned_for': 'detectors'}, 'network (tuned for detectors)'),
            ({'first_stage.type': 'laplacian'}, 'laplacian')):
        core, t = make_core(overrides)
        core.configure()
        core.activate()
        send_pair(t, scene, 1.0)
        core.process_pending()
        t.fire_timers()
        values = as_dict(t.sent('/diagnostics')[-1])['cam/fusion_node: processing']['values']
        assert values['first stage'] == expected
        assert values['published'] == '1'
        core.shutdown()


def test_diagnostics_timer_follows_its_period_parameter():
    core, t = make_core(factory=FakePipeline)
    core.configure()
    assert [timer.period_s for timer in t.timers if not timer.cancelled] == [1.0]
    core.set_parameters({'diagnostics.period_s': 0.5})
    assert [timer.period_s for timer in t.timers if not timer.cancelled] == [0.5]
    core.shutdown()
