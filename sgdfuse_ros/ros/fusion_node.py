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
``fusion_node``: the rclpy lifecycle node.

    ros2 run sgdfuse_ros fusion_node --ros-args --params-file config/fusion.yaml
    ros2 launch sgdfuse_ros fusion.launch.py thermal_topic:=/flir/image_raw

Lifecycle (``rclpy.lifecycle``), started automatically unless ``autostart`` is false:

- configure: parameters read and validated, the outputs created as lifecycle publishers
  (silent until activated), /diagnostics and its timer created;
- activate: the lifecycle publishers enabled, the fusion pipeline built and warmed up on a dummy
  frame (models load here), the camera subscriptions created;
- deactivate: subscriptions destroyed, worker stopped, pipeline closed (models freed, CUDA cache
  emptied, heap trimmed), lifecycle publishers disabled;
- cleanup: publishers destroyed.

Every parameter of :mod:`sgdfuse_ros.parameters` is declared with a descriptor (description,
range, choices, read-only flag). Runtime changes (``ros2 param set``) are checked in the
on-set callback against the same table (out-of-range values are refused with the reason, never
clamped; read-only parameters can only come from the parameter file or the command line) and
applied in the post-set callback, once rclpy has stored them (rclpy without
``add_post_set_parameters_callback``, i.e. Humble: applied at the end of the on-set callback).
Per-topic QoS: the standard ``qos_overrides.<topic>.<publisher|subscription>.<policy>``
parameters (:mod:`sgdfuse_ros.ros.rclpy_transport`).

All the logic lives in :class:`sgdfuse_ros.node.core.FusionNodeCore`; this module only adapts it
to rclpy.
"""

from __future__ import annotations

import array
import sys
from typing import Any, Dict

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node, State, TransitionCallbackReturn
from rclpy.parameter import Parameter

from .rclpy_transport import RclpyTransport
from ..errors import ConfigError, SgdfuseError
from ..exits import exit_status
from ..node.core import check_config, FusionNodeCore
from ..parameters import ALL_PARAMS, ParamSpec, SPECS

NODE_NAME = 'fusion_node'


def parameter_descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """Build the ROS descriptor of one parameter: description, range or choices, read-only."""
    descriptor = ParameterDescriptor(name=spec.name, description=spec.description,
                                     read_only=bool(spec.read_only))
    if spec.choices is not None:
        descriptor.additional_constraints = 'one of: ' + ', '.join(map(str, spec.choices))
    if spec.kind is int and spec.min is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.min),
                                                 to_value=int(spec.max), step=0)]
    elif spec.kind is float and spec.min is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.min), to_value=float(spec.max), step=0.0)]
    return descriptor


def _plain(value: Any) -> Any:
    """Convert rclpy parameter values to the table's types (arrays come as array.array)."""
    if isinstance(value, array.array):
        return list(value)
    return value


def _changes(parameters) -> Dict[str, Any]:
    """``{name: value}`` of the node's own parameters among rclpy ``Parameter`` objects."""
    return {p.name: _plain(p.value) for p in parameters if p.name in SPECS}


class FusionNode(Node):
    """The lifecycle node; ``pipeline_factory`` replaces the pipeline (tests)."""

    def __init__(self, node_name: str = NODE_NAME, *, pipeline_factory=None, **kwargs):
        super().__init__(node_name, **kwargs)
        self.pipeline_factory = pipeline_factory
        self.core = None
        self._declare_parameters()
        self.transport = RclpyTransport(self)
        self.add_on_set_parameters_callback(self._check_parameters)
        # Humble's rclpy has no post-set callback: there the on-set callback also applies
        self._apply_on_check = not hasattr(self, 'add_post_set_parameters_callback')
        if not self._apply_on_check:
            self.add_post_set_parameters_callback(self._apply_parameters)

    # --- parameters ---------------------------------------------------------------------------
    def _declare_parameters(self) -> None:
        errors = []
        for spec in ALL_PARAMS:
            descriptor = parameter_descriptor(spec)
            # an empty list has no ROS type: declare the type, leave the value unset
            default = Parameter.Type.DOUBLE_ARRAY if spec.default == [] else spec.default
            try:
                self.declare_parameter(spec.name, default, descriptor)
            except Exception as err:  # wrong type or out of range in the parameter file
                errors.append(f'{spec.name}: {err}')
        if errors:
            raise ConfigError('invalid parameters: ' + '; '.join(errors))

    def parameter_values(self) -> Dict[str, Any]:
        values = {}
        for spec in ALL_PARAMS:
            try:
                value = _plain(self.get_parameter(spec.name).value)
            except Exception:  # declared by type only and never set
                value = None
            values[spec.name] = list(spec.default) if value is None and \
                isinstance(spec.default, list) else value
        return check_config(values)

    def _check_parameters(self, parameters) -> SetParametersResult:
        """On-set callback: accept or refuse, with the reason; changes nothing (but on Humble)."""
        changes = _changes(parameters)
        if not changes:  # qos_overrides.* and other parameters: not ours to judge
            return SetParametersResult(successful=True)
        try:
            if self.core is None:  # unconfigured: checked now, read on configure
                for name, value in changes.items():
                    SPECS[name].validate(value)
            elif self._apply_on_check:
                self.core.set_parameters(changes)
            else:
                self.core.check_parameters(changes)
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters) -> None:
        """Post-set callback: apply what the on-set callback accepted and rclpy stored."""
        changes = _changes(parameters)
        if not changes or self.core is None:
            return
        try:
            self.core.set_parameters(changes)
        except ConfigError as err:  # accepted a moment ago; the node state changed meanwhile
            self.get_logger().error(f'could not apply {sorted(changes)}: {err}')

    # --- lifecycle ------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            config = self.parameter_values()
            core = FusionNodeCore(self.transport, config, name=self.get_fully_qualified_name(),
                                  logger=self.get_logger(),
                                  pipeline_factory=self.pipeline_factory)
            core.configure()
        except SgdfuseError as err:
            self.get_logger().error(f'configure failed: {err}')
            return TransitionCallbackReturn.FAILURE
        self.core = core
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        # lifecycle publishers first: the first fused frame must not be dropped silently
        result = super().on_activate(state)
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        try:
            self.core.activate()
        except Exception as err:  # a model that does not load must not kill the process
            text = str(err) if isinstance(err, SgdfuseError) else f'{type(err).__name__}: {err}'
            self.get_logger().error(f'activate failed: {text}')
            super().on_deactivate(state)
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.core.deactivate()  # subscriptions gone, worker stopped, models and memory freed
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.core.cleanup()
        self.core = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self.get_logger().error('error during a transition: releasing everything')
        self._release()
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured

    def _release(self) -> None:
        if self.core is not None:
            try:
                self.core.shutdown()
            finally:
                self.core = None

    # --- start-up -------------------------------------------------------------------------------
    def autostart(self) -> bool:
        """Configure and activate; False (with the reason logged) if either failed."""
        self.trigger_configure()
        if self.core is None or self.core.state != 'inactive':
            return False
        self.trigger_activate()
        return self.core is not None and self.core.state == 'active'


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = FusionNode()
    except SgdfuseError as err:
        rclpy.try_shutdown()
        return exit_status('fusion_node', err)
    try:
        if node.get_parameter('autostart').value and not node.autostart():
            node.get_logger().error('could not start; fix the error above, then '
                                    '`ros2 lifecycle set` the node or restart it')
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C / SIGINT (launch's shutdown): a normal end, exit status 0
    finally:
        # after SIGINT the context is already shut down: release what we can, never raise here
        for step in (node._release, node.destroy_node):
            try:
                step()
            except Exception as err:
                print(f'fusion_node: shutdown: {type(err).__name__}: {err}', file=sys.stderr)
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
