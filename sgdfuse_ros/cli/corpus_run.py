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
How ``sgdfuse corpus`` runs its bags: one task per bag, in local worker processes or on Ray.

:func:`fuse_bag` is the task: the bag replayed by ``sgdfuse replay``'s own code
(:func:`sgdfuse_ros.cli.replay.run`, the same options parsed by the same parser), its row made
from the replay's result, whatever happened (a bag that fails is a ``failed`` row with the
reason; nothing it does reaches the other bags). Its entry is saved in its folder at once, so
a later run skips it (same key, same bag files).

A long bag may be cut into chunks of pairs (``--chunk-frames``; :mod:`sgdfuse_ros.bag.chunks`):
each chunk is a task like a bag (:func:`fuse_chunk`), which keeps its part and its entry in
``OUT/bags/ID/chunks/K/``; the command merges the parts into the bag's one row, report and
fused output (:mod:`sgdfuse_ros.cli.corpus_chunks`).

- :func:`run_local`: ``--jobs N`` worker processes (spawned, each imports the pipeline once and
  takes one bag at a time), frames reported as they are fused; a worker that dies (killed, out
  of memory) is replaced and its bag tried again, up to ``retries`` times.
- :func:`run_ray`: one Ray task per bag (``num_cpus`` = the threads of one replay, a fraction of
  a GPU where the config asks for CUDA, ``max_retries`` for workers that die); results come back
  through the object store, there is no shared state. A local Ray is started in this process
  when none is running (``--ray auto``), or the cluster at ``--ray ADDRESS`` is joined.

A stop signal (the command's :class:`StopRequest`) is passed on: local workers stop their bag at
the next frame (its replay report is written, marked interrupted), Ray tasks are cancelled; bags
not started are ``not_run``. Bags finished before it are kept.
"""

from __future__ import annotations

import argparse
from collections import deque
import json
import logging
import multiprocessing
from multiprocessing import connection
import os
from pathlib import Path
import resource
import shutil
import signal
import threading
import time
import traceback
from typing import Callable, Dict, List, Optional

from . import replay
from .guard import Interrupted, stop_request, STOP_SIGNALS, StopRequest
from .. import writing
from ..bag.chunks import PartWriter, save_part
from ..bag.corpus import bag_fingerprint, bag_row, CorpusBag
from ..bag.reader import open_bag
from ..bag.replay import Replay
from ..config import load_config
from ..errors import error_line, SgdfuseError
from ..pipeline.fusion_pipeline import FusionPipeline

ENTRY = 'entry.json'
PROGRESS_EVERY_S = 0.25


def bag_folder(out: Path, bag: CorpusBag) -> Path:
    return Path(out) / 'bags' / bag.id


def make_task(out: Path, bag: CorpusBag, options: dict, key: str, write_bag: bool) -> dict:
    """Return what a worker needs for one bag (plain data: it crosses process bounds)."""
    folder = bag_folder(out, bag)
    return {'bag': str(bag.path), 'tags': bag.tags, 'row': bag.row, 'id': bag.id,
            'folder': str(folder), 'options': options, 'key': key, 'write_bag': write_bag}


def read_entry(out: Path, bag: CorpusBag, key: str) -> Optional[dict]:
    """Return the bag's row from an earlier run that did it with this key from these files."""
    path = bag_folder(out, bag) / ENTRY
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get('key') != key or \
            entry.get('fingerprint') != bag_fingerprint(bag.path) or \
            not isinstance(entry.get('row'), dict) or entry['row'].get('status') != 'ok':
        return None
    row = dict(entry['row'], resumed=True, tags=bag.tags)
    return row


def replay_args(task: dict) -> argparse.Namespace:
    """Return the replay's options for this bag, through ``sgdfuse replay``'s own parser."""
    parser = argparse.ArgumentParser(prog='sgdfuse replay')
    replay.add_arguments(parser)
    folder = Path(task['folder'])
    args = parser.parse_args([task['bag'], '--out', str(folder / 'fused'),
                              '--report', str(folder / 'report'), '--quiet', '--overwrite'])
    for name, value in task['options'].items():
        setattr(args, name, value)
    return args


class _FramesOut:
    """The replay's progress bar in a worker: fused pairs sent to the parent now and then."""

    def __init__(self, send: Optional[Callable[[int], None]]):
        self.send = send
        self.pending = 0
        self.last = time.monotonic()

    def __call__(self, expected):
        return self

    def update(self, n: int = 1) -> None:
        self.pending += n
        if self.send is not None and time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self.send is not None and self.pending:
            self.send(self.pending)
        self.pending = 0
        self.last = time.monotonic()

    def done(self, summary=None) -> None:
        self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.flush()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def attempt(work: Callable[[], None]) -> tuple:
    """Run ``work``; return (status, reason): ok, or interrupted / failed and why."""
    try:
        work()
    except Interrupted as err:
        return 'interrupted', str(err)
    except SgdfuseError as err:
        return 'failed', str(err)
    except OSError as err:
        return 'failed', (writing.os_error_line(err) if err.filename else error_line(err, 300))
    except MemoryError:
        return 'failed', 'out of memory'
    except Exception as err:  # noqa: B902 - a bug met by one bag costs only that bag
        where = traceback.extract_tb(err.__traceback__)[-1]
        return 'failed', (f'{type(err).__name__}: {error_line(err, 300)} '
                          f'({Path(where.filename).name}:{where.lineno})')
    return 'ok', None


def fuse_bag(task: dict, send_frames: Optional[Callable[[int], None]] = None,
             stop: Optional[StopRequest] = None) -> dict:
    """Replay one bag (or one chunk of it); return its row (never raises for what it does)."""
    if task.get('chunk') is not None:
        return fuse_chunk(task, send_frames, stop)
    bag = CorpusBag(task['bag'], task['tags'], task['row'])
    folder = Path(task['folder'])
    start = time.perf_counter()
    kept: List[dict] = []

    def work() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            (folder / ENTRY).unlink()  # this bag is being done again: no stale entry
        except FileNotFoundError:
            pass
        replay.run(replay_args(task), progress=_FramesOut(send_frames), stop=stop,
                   write_bag=task['write_bag'], keep=kept)

    status, reason = attempt(work)
    result = kept[0] if kept else None
    row = bag_row(bag, result, status, reason,
                  report=str(folder / 'report' / 'report.md') if result is not None else None,
                  fused_bag=str(folder / 'fused') if task['write_bag'] and result is not None
                  and (folder / 'fused').exists() else None,
                  task_s=time.perf_counter() - start, worker_pid=os.getpid(),
                  worker_peak_rss_mb=round(_peak_rss_mb(), 1), fingerprint=None)
    if status == 'ok':
        row['fingerprint'] = bag_fingerprint(bag.path)
        entry = {'key': task['key'], 'fingerprint': row['fingerprint'], 'row': row}
        try:
            writing.write_bytes(folder / ENTRY, (json.dumps(entry, indent=1) + '\n').encode())
        except OSError as err:
            row['status'], row['reason'] = 'failed', writing.write_failure(err, folder / ENTRY)
    return row


def failed_row(task: dict, status: str, reason: str) -> dict:
    bag = CorpusBag(task['bag'], task['tags'], task['row'])
    row = bag_row(bag, None, status, reason)
    if task.get('chunk') is not None:
        row['chunk'] = dict(task['chunk'])
    return row


# --- one chunk of a long bag ---------------------------------------------------------------------

def chunk_folder(task: dict) -> Path:
    """Where a chunk keeps its part and its entry: ``OUT/bags/ID/chunks/K``."""
    return Path(task['folder']) / 'chunks' / f"{task['chunk']['index']:05d}"


def _chunk_entry(task: dict, fingerprint: str) -> dict:
    chunk = task['chunk']
    return {'key': task['key'], 'fingerprint': fingerprint,
            'chunk': [chunk['index'], chunk['count'], chunk['first'], chunk['end']]}


def read_chunk_entry(task: dict) -> Optional[dict]:
    """Return the chunk's row from an earlier run with this key, bag and plan; or None."""
    try:
        entry = json.loads((chunk_folder(task) / ENTRY).read_text())
    except (OSError, ValueError):
        return None
    expected = _chunk_entry(task, bag_fingerprint(task['bag']))
    if not isinstance(entry, dict) or any(entry.get(k) != v for k, v in expected.items()) or \
            not isinstance(entry.get('row'), dict) or entry['row'].get('status') != 'ok':
        return None
    return dict(entry['row'], resumed=True)


def run_chunk(args, folder: Path, pairs: tuple, progress, stop: Optional[StopRequest]) -> dict:
    """
    Fuse the window ``pairs`` of ``args.in_bag`` as ``sgdfuse replay`` would; keep its part.

    The replay's own setup (config, intake, topics, report, pipeline), with a
    :class:`~sgdfuse_ros.bag.chunks.PartWriter` in place of the output bag; the report is
    finished only when the parts are merged (a chunk's books do not balance on their own).
    """
    overrides = dict(args.overrides)
    if args.every_frame_prior:
        overrides['prior.every_frame'] = True
    config = load_config(args.config, overrides)
    namespace = replay.check_namespace(args.namespace)
    in_path = Path(args.in_bag)
    stop = (stop if stop is not None else stop_request()).protect()
    with open_bag(in_path) as bag:
        topics, expected, report, custom = replay.setup(bag, in_path, None, config, args,
                                                        namespace)
        pipeline = FusionPipeline(config)
        first, end = pairs
        try:
            with PartWriter(folder) as writer, \
                    progress((end if end is not None else max(expected, first)) - first) as bar:
                fused = Replay(bag, topics, pipeline, config, writer, report, namespace,
                               with_metrics=not args.no_metrics, progress=bar, stop=stop,
                               pairs=pairs)
                start = time.perf_counter()
                fused.run()
                wall = time.perf_counter() - start
        finally:
            pipeline.close()
    if fused.write_error:
        raise SgdfuseError(fused.write_error)
    if fused.interrupted:
        raise stop.interrupted(f'in pairs {first}..{end if end is not None else "end"}: '
                               f'this chunk is not kept')
    return save_part(folder, fused, report, writer, wall, {'custom': custom})


def fuse_chunk(task: dict, send_frames: Optional[Callable[[int], None]] = None,
               stop: Optional[StopRequest] = None) -> dict:
    """Fuse one chunk of a bag; return its row (status, fused pairs; never raises)."""
    chunk = task['chunk']
    folder = chunk_folder(task)
    start = time.perf_counter()
    kept: List[dict] = []

    def work() -> None:
        shutil.rmtree(folder, ignore_errors=True)  # a chunk is done again whole
        folder.mkdir(parents=True)
        kept.append(run_chunk(replay_args(task), folder, (chunk['first'], chunk['end']),
                              _FramesOut(send_frames), stop))

    status, reason = attempt(work)
    row = failed_row(task, status, reason)
    part = kept[0] if kept else None
    row.update(fused=len(part['frames']) if part else None,
               failed=len(part['failures']) if part else None,
               wall_s=part['wall_s'] if part else None, part=str(folder),
               task_s=time.perf_counter() - start, worker_pid=os.getpid(),
               worker_peak_rss_mb=round(_peak_rss_mb(), 1))
    if status == 'ok':
        entry = dict(_chunk_entry(task, bag_fingerprint(task['bag'])), row=row)
        try:
            writing.write_bytes(folder / ENTRY, (json.dumps(entry, indent=1) + '\n').encode())
        except OSError as err:
            row['status'], row['reason'] = 'failed', writing.write_failure(err, folder / ENTRY)
    return row


# --- local worker processes ----------------------------------------------------------------------

class _SharedStop(StopRequest):
    """A worker's stop request: set when the parent, which receives the signals, says so."""

    def __init__(self, event, signum):
        super().__init__(())
        self._shared, self._shared_signum = event, signum

    @property
    def requested(self) -> bool:
        if self.signum is None and self._shared.is_set():
            self.signum = self._shared_signum.value or signal.SIGINT
        return self.signum is not None


def _worker(conn, event, signum, verbose: bool) -> None:
    """Run bags from ``conn`` until None (a local worker); send frames and rows back."""
    for sig in STOP_SIGNALS:  # the parent hears Ctrl-C (sent to the whole terminal group)
        signal.signal(sig, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING if verbose else logging.ERROR,
                        format='%(levelname)s %(name)s: %(message)s')
    stop = _SharedStop(event, signum).protect()
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        row = fuse_bag(task, lambda n: conn.send(('frames', n)), stop)
        conn.send(('done', row))


class _Slot:
    """One local worker process, its pipe and the bag it is on."""

    def __init__(self, ctx, event, signum, verbose):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(child, event, signum, verbose),
                                   daemon=True, name='sgdfuse-corpus-worker')
        self.process.start()
        child.close()
        self.task: Optional[dict] = None


def run_local(tasks: List[dict], jobs: int, on_frames: Callable[[int], None],
              on_row: Callable[[dict], None], stop: StopRequest, retries: int = 1,
              verbose: bool = False, ending: Optional[list] = None) -> None:
    """
    Run ``tasks`` in ``jobs`` worker processes; each row goes to ``on_row`` as it comes.

    The workers are told to end when the tasks are done; ``ending`` (a list): their processes
    are put there for the caller to :func:`join_workers` later (a worker's exit takes most of a
    second, which the caller spends writing its report), else they are joined here.
    """
    ctx = multiprocessing.get_context('spawn')
    event, signum = ctx.Event(), ctx.Value('i', 0)
    pending = deque(tasks)
    attempts: Dict[tuple, int] = {}  # tries that ended with the worker's death, per task

    def deliver(row: dict) -> None:
        row['attempts'] = attempts.get(_task_key(row), 0) + 1
        on_row(row)

    slots: List[_Slot] = []
    told = False
    try:
        while pending or any(s.task is not None for s in slots):
            if stop.requested and not told:
                signum.value = stop.signum or signal.SIGINT
                event.set()
                told = True
                for task in pending:
                    on_row(failed_row(task, 'not_run', f'not started: stopped by {stop.name}'))
                pending.clear()
            for slot in slots:
                if slot.task is None and pending:
                    slot.task = pending.popleft()
                    slot.conn.send(slot.task)
            while pending and len(slots) < jobs:
                slot = _Slot(ctx, event, signum, verbose)
                slots.append(slot)
                slot.task = pending.popleft()
                slot.conn.send(slot.task)
            busy = [s for s in slots if s.task is not None]
            ready = connection.wait([s.conn for s in busy] + [s.process.sentinel for s in busy],
                                    timeout=0.5)
            for slot in busy:
                dead = not slot.process.is_alive()
                if dead or slot.conn in ready or slot.process.sentinel in ready:
                    _collect(slot, on_frames, deliver)  # what it sent before it died too
                if dead and slot.task is not None:
                    task, slot.task = slot.task, None
                    code = slot.process.exitcode
                    slots.remove(slot)
                    key = _task_key(task)
                    attempts[key] = attempts.get(key, 0) + 1
                    if attempts[key] <= retries and not stop.requested:
                        pending.appendleft(task)
                    else:
                        row = failed_row(task, 'failed', f'its worker process died (exit '
                                         f'{code}) on each of {attempts[key]} tries')
                        on_row(dict(row, attempts=attempts[key]))
    finally:
        for slot in slots:
            try:
                slot.conn.send(None)
            except (OSError, ValueError):
                pass
        processes = [slot.process for slot in slots]
        if ending is not None:
            ending.extend(processes)
        else:
            join_workers(processes)


def join_workers(processes: list, timeout: float = 30.0) -> None:
    """Wait for ended workers to exit (``timeout`` in all); terminate any still there."""
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()
            process.join(5)


def _task_key(task_or_row: dict) -> tuple:
    """Return a task's bag id, and its chunk's number for a chunk."""
    chunk = task_or_row.get('chunk')
    return task_or_row['id'], chunk['index'] if chunk is not None else None


def _collect(slot: _Slot, on_frames, on_row) -> None:
    try:
        while slot.conn.poll():
            kind, value = slot.conn.recv()
            if kind == 'frames':
                on_frames(value)
            elif kind == 'done':
                slot.task = None
                on_row(value)
    except (EOFError, OSError):
        pass  # the worker died: its bag is retried by the caller


# --- Ray -----------------------------------------------------------------------------------------

def _ray_task(task: dict) -> dict:
    """One bag on a Ray worker (the worker's logging kept to errors, as local workers)."""
    logging.getLogger('sgdfuse_ros').setLevel(logging.ERROR)
    return fuse_bag(task)


def start_ray(address: str, cpus: int):
    """
    Join a running Ray (``auto``: the local one if any) or start one in this process.

    Return ``(ray, how)``: ``how`` is ``'started'`` (a local Ray started here), ``'joined'`` (a
    running Ray or cluster connected to) or ``''`` (Ray was initialised in this process before:
    left as it is). ``ray.init`` puts its own SIGTERM handler in place (it exits at
    once) when called from the main thread; the command's stop request is put back, so that
    SIGTERM stops the corpus as Ctrl-C does.
    """
    import ray  # optional dependency: pip install sgdfuse_ros[ray] (or requirements.txt)
    if ray.is_initialized():
        return ray, ''
    handler = signal.getsignal(signal.SIGTERM)
    worker_log = logging.getLogger('ray._private.worker')
    level = worker_log.level
    worker_log.setLevel(logging.ERROR)  # "SIGTERM handler is not set" (off the main thread)
    try:
        return _init_ray(ray, address, cpus)
    finally:
        worker_log.setLevel(level)
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)


def _init_ray(ray, address: str, cpus: int):
    quiet = {'logging_level': logging.ERROR, 'log_to_driver': False}
    if address != 'auto':
        try:
            ray.init(address=address, **quiet)
        except Exception as err:  # noqa: B902 - Ray's errors for an unreachable cluster vary
            raise SgdfuseError(f'cannot join the Ray cluster at {address}: '
                               f'{error_line(err, 200)}') from None
        return ray, 'joined'
    try:
        ray.init(address='auto', **quiet)
        return ray, 'joined'
    except (ConnectionError, RuntimeError, ValueError):
        pass  # none running: start one here
    package_root = str(Path(__file__).resolve().parents[2])  # workers import this package
    paths = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    if package_root not in paths:
        os.environ['PYTHONPATH'] = os.pathsep.join([package_root] + paths)
    # A Ray started for one command sends no usage statistics unless the user asks for them
    # (RAY_USAGE_STATS_ENABLED=1): nothing leaves the machine unasked. (Its start takes as long
    # either way: benchmarks/ray_start.py.)
    os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0')
    ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=80 * 2**20, **quiet)
    return ray, 'started'


class RaySession:
    """
    Ray, started in the background.

    ``ray.init`` of a local Ray takes seconds (its processes start and import Ray), which the
    command spends finding and planning its bags meanwhile.

    :meth:`get` waits for it and returns ``(ray, how)`` (:func:`start_ray`; or raises what the
    start raised);
    :meth:`close` shuts a Ray started here down in the background (a second or two, while the
    report is written) and :meth:`wait_closed` waits for that.

    One thread starts Ray and later shuts it down, and lives in between: Ray's processes are
    bound to the life of the thread that started them (Linux's parent-death signal follows the
    thread, not the process), so a thread that started them and ended would take them down.
    The interpreter waits for the thread at exit, so a command stopped meanwhile still shuts
    down the Ray it started.
    """

    def __init__(self, address: str, cpus: int):
        self._result: Optional[tuple] = None
        self._error: Optional[BaseException] = None
        self._started = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._live, args=(address, cpus),
                                        name='sgdfuse-ray')
        self._thread.start()

    def _live(self, address: str, cpus: int) -> None:
        try:
            self._result = start_ray(address, cpus)
        except BaseException as err:  # noqa: B902 - handed to the thread that asks (get)
            self._error = err
        finally:
            self._started.set()
        if self._result is None:
            return
        self._closing.wait()
        if self._result[1]:
            self._result[0].shutdown()

    def get(self) -> tuple:
        self._started.wait()
        if self._error is not None:
            raise self._error
        return self._result

    def close(self) -> None:
        """Shut down a Ray started or joined here, in the background; leave an earlier one."""
        self._closing.set()

    def wait_closed(self) -> None:
        self._closing.set()
        self._thread.join()


def run_ray(tasks: List[dict], session: RaySession, address: str, threads: int,
            gpu_fraction: float, device: str, on_frames: Callable[[int], None],
            on_row: Callable[[dict], None], stop: StopRequest, retries: int = 1) -> tuple:
    """
    Run ``tasks`` as Ray tasks; return how (the cluster's resources) and the GPU share used.

    ``session``: the Ray to run on (:class:`RaySession`), closed when the tasks are done (a Ray
    started here is shut down in the background). A bag asks for ``gpu_fraction`` of a GPU
    when the config's device is ``cuda``, or ``auto`` on a cluster that has GPUs; else none.
    """
    try:
        ray, origin = session.get()
        resources = ray.cluster_resources()
        if device == 'cpu' or (device == 'auto' and not resources.get('GPU')):
            gpu_fraction = 0.0
        remote = ray.remote(_ray_task).options(
            num_cpus=threads, num_gpus=gpu_fraction, max_retries=retries,
            retry_exceptions=False)
        refs = {remote.remote(task): task for task in tasks}
        where = {'started': 'a local Ray started here', 'joined': (
            'the Ray running here' if address == 'auto' else address)}.get(origin, address)
        how = (f'Ray ({where}'
               f"; {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; "
               f'{threads} CPU{"s" if threads > 1 else ""}'
               + (f' and {gpu_fraction:g} GPU' if gpu_fraction else '') + ' per bag)')
        cancelled = False
        while refs:
            if stop.requested and not cancelled:
                cancelled = True
                for ref in refs:
                    ray.cancel(ref)
            done, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
            for ref in done:
                task = refs.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as err:  # noqa: B902 - cancelled, or the worker died each try
                    if cancelled:
                        row = failed_row(task, 'interrupted', f'cancelled: stopped by '
                                         f'{stop.name}')
                    else:
                        row = failed_row(task, 'failed', f'its Ray task failed after '
                                         f'{retries + 1} tries ({type(err).__name__}: '
                                         f'{error_line(err, 200)})')
                on_frames(row.get('fused') or 0)
                on_row(row)
        return how, gpu_fraction
    finally:
        session.close()
