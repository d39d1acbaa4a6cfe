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
Who may import whom in ``sgdfuse_ros``, read from the code (``ast``; nothing is imported).

A unit is a folder of the package (``node``, ``pipeline``, ...) or one of its top-level modules
(``errors``, ``config``, ...). ``LAYERS`` lists them from the ground up: a module imports only
its own unit and units of lower layers (units of one layer never import each other), so there
are no import circles and nothing below reaches up: library code never imports ``cli``.
An import inside a function is kept only where it is deliberate (a heavy or optional dependency
loaded only by what uses it: torch after the pipeline set OpenMP's wait policy, onnxruntime,
segment_anything, ROS 2), each with its reason in a comment on its line or the line above; the
command line imports the module of the command that runs and no other (``importlib``, in
``cli/__init__.py``).

    python test/test_import_graph.py     # the figures: edges, circles, in-function imports
"""

import ast
from collections import defaultdict
from pathlib import Path
import sys

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = 'sgdfuse_ros'

#: the ground floor first; a unit may import only units of lower rows
LAYERS = (
    ('errors',),
    ('image_decode',),
    ('hardware', 'messages', 'parameters', 'progress', 'writing'),
    ('config', 'exits'),
    ('prior', 'registration'),
    ('fusion',),
    ('onnx',),
    ('pipeline',),
    ('eval', 'intake'),
    ('transport',),
    ('node',),
    ('bag',),
    ('training',),
    ('ros',),
    ('cli', '__main__'),
)
#: imports that cross the table today, each to be removed by the change named
PENDING = {}
#: the most import statements made inside functions, in all and of the package's own modules
MOST_IN_FUNCTION = 12
MOST_OWN_IN_FUNCTION = 5


def modules():
    """{dotted name: path} of every module of the package."""
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob('*.py')):
        parts = list(path.relative_to(ROOT).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        out['.'.join(parts)] = path
    return out


def _targets(name: str, is_package: bool, node, known) -> list:
    """Return the package modules an import statement names (a module, or a name's module)."""
    if isinstance(node, ast.Import):
        found = [alias.name for alias in node.names]
    else:
        base = node.module or ''
        if node.level:
            here = name.split('.') if is_package else name.split('.')[:-1]
            here = here[:len(here) - node.level + 1]
            base = '.'.join(here + ([node.module] if node.module else []))
        found = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in known else base
                 for alias in node.names]
    out = []
    for target in found:
        if target != PACKAGE and not target.startswith(PACKAGE + '.'):
            continue
        while target not in known and '.' in target:
            target = target.rsplit('.', 1)[0]
        out.append(target)
    return out


def imports():
    """Return [(module, line, target module, inside a function, line text)] of the package."""
    known = modules()
    found = []
    for name, path in known.items():
        text = path.read_text()
        lines = text.splitlines()
        is_package = path.name == '__init__.py'

        def visit(node, in_function):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in _targets(name, is_package, child, known) or [None]:
                        found.append((name, child.lineno, target, in_function,
                                      lines[child.lineno - 1]))
                visit(child, in_function or isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
        visit(ast.parse(text, str(path)), False)
    return found


def unit(module: str) -> str:
    """Return the folder (or top-level module) of the package a module belongs to."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else PACKAGE


def edges():
    """Return {module: {modules it imports}} (package modules only, not the package itself)."""
    out = defaultdict(set)
    for module, _, target, _, _ in imports():
        if target is not None and target != module and target != PACKAGE:
            out[module].add(target)
    return out


def circles():
    """Return the groups of modules that import each other (strongly connected, 2 or more)."""
    graph, index, low, stack, on_stack, groups = edges(), {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))
    for v in sorted(modules()):
        if v not in index:
            strong(v)
    return groups


def layer_of():
    return {name: row for row, names in enumerate(LAYERS) for name in names}


def crossings():
    """Return [(importer, imported, line)] where a unit imports one not below it."""
    layer = layer_of()
    bad = []
    for module, line, target, _, _ in imports():
        if target is None or target == PACKAGE:
            continue
        a, b = unit(module), unit(target)
        if a != b and layer[a] <= layer[b] and (a, b) not in PENDING:
            bad.append((module, target, line))
    return bad


def in_function(own_only: bool = True):
    """Return [(module, line, text)] of the import statements inside functions."""
    return sorted({(module, line, text.strip()) for module, line, target, inside, text in imports()
                   if inside and (target is not None or not own_only)})


def test_every_unit_has_a_layer():
    units = {unit(m) for m in modules()} - {PACKAGE}
    assert units <= set(layer_of()), sorted(units - set(layer_of()))


def test_no_import_circles():
    assert circles() == []


def test_nothing_imports_upward():
    assert crossings() == []


def test_library_code_never_imports_the_cli():
    found = [(m, line) for m, line, target, _, _ in imports()
             if target is not None and unit(target) == 'cli' and unit(m) not in ('cli',)
             and (unit(m), 'cli') not in PENDING]
    assert found == []


def test_pending_crossings_still_exist():
    """An entry of PENDING that no import needs any more must go."""
    seen = {(unit(m), unit(t)) for m, _, t, _, _ in imports() if t is not None}
    assert set(PENDING) <= seen


def test_in_function_imports_are_bounded():
    assert len(in_function(False)) <= MOST_IN_FUNCTION, in_function(False)
    assert len(in_function()) <= MOST_OWN_IN_FUNCTION, in_function()


def test_every_in_function_import_says_why():
    known = modules()
    silent = []
    for module, line, text in in_function(False):
        lines = known[module].read_text().splitlines()
        if '#' not in lines[line - 1] and not lines[line - 2].strip().startswith('#'):
            silent.append((module, line, text))
    assert silent == []


def main() -> int:
    graph = edges()
    units = defaultdict(set)
    for a, targets in graph.items():
        for b in targets:
            if unit(a) != unit(b):
                units[unit(a)].add(unit(b))
    print('units importing units:')
    for name in sorted(units, key=lambda n: -layer_of().get(n, -1)):
        print(f'  {name} -> {", ".join(sorted(units[name]))}')
    print(f'import circles: {len(circles())}', *circles())
    print(f'imports crossing the layer table (PENDING left out): {len(crossings())}')
    print(f'PENDING crossings: {len(PENDING)}')
    print(f'in-function imports: {len(in_function(False))} in all, '
          f"{len(in_function())} of the package's own modules")
    return 0


if __name__ == '__main__':
    sys.exit(main())
