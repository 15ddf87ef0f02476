"""Run work over a dependency graph, independent nodes at the same time (Terraform-style walk).

A node starts once everything it depends on has finished; a node whose dependency failed (or
was skipped) is skipped, while independent nodes still run to the end, so every failure is
reported at once.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Hashable

MAX_WORKERS = 8


@dataclass
class Walk:
    done: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)  # node -> exception
    skipped: dict = field(default_factory=dict)  # node -> the dependency that did not finish


def walk(nodes: list[Hashable], deps: dict[Hashable, tuple], work: Callable[[Hashable], None], workers: int = MAX_WORKERS) -> Walk:
    """`deps[n]` lists what n waits for (only nodes in `nodes` count). `work(n)` raises to fail n."""
    result = Walk()
    waiting = list(nodes)
    running: dict[Future, Hashable] = {}
    finished: set = set()

    def blocked_by(node):
        return next((d for d in deps.get(node, ()) if d in result.failed or d in result.skipped), None)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="awsprac") as pool:
        while waiting or running:
            # Skips first, to a fixed point: a node listed before the dependency that is being skipped
            # (destroy walks reversed) is skipped in the same pass, not left waiting as if in a cycle.
            skipping = True
            while skipping:
                skipping = False
                for node in list(waiting):
                    blocker = blocked_by(node)
                    if blocker is not None:
                        result.skipped[node] = blocker
                        finished.add(node)
                        waiting.remove(node)
                        skipping = True
            for node in list(waiting):
                if all(d in finished or d not in nodes for d in deps.get(node, ())):
                    running[pool.submit(work, node)] = node
                    waiting.remove(node)
            if not running:
                if waiting:  # nothing can start: only a cycle does this
                    raise RuntimeError(f"dependency cycle among {waiting}")
                break
            complete, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in complete:
                node = running.pop(future)
                error = future.exception()
                if error is None:
                    result.done.append(node)
                elif isinstance(error, Exception):
                    result.failed[node] = error
                else:
                    raise error
                finished.add(node)
    return result


def concurrently(*calls: Callable[[], object]) -> list:
    """Independent reads at once; results in order; the first error is raised after all finish."""
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="awsprac-read") as pool:
        futures = [pool.submit(call) for call in calls]
    return [f.result() for f in futures]
