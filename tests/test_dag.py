"""The graph walk behind plan, up and destroy: order, concurrency, failures."""

import threading

import pytest

from awsprac.engine import dag


def test_dependents_start_only_after_what_they_need():
    log = []
    deps = {"subnets": ("vpc",), "igw": ("vpc",), "routes": ("subnets", "igw")}
    result = dag.walk(["vpc", "subnets", "igw", "routes"], deps, log.append)
    assert log[0] == "vpc" and log[-1] == "routes" and sorted(log[1:3]) == ["igw", "subnets"]
    assert sorted(result.done) == ["igw", "routes", "subnets", "vpc"]


def test_independent_nodes_run_at_the_same_time():
    both_started = threading.Barrier(2, timeout=60)
    # Each waits for the other to start: this only finishes if they run concurrently.
    result = dag.walk(["ecr", "secrets"], {}, lambda node: both_started.wait())
    assert sorted(result.done) == ["ecr", "secrets"]


def test_a_failure_skips_its_dependents_and_lets_independent_work_finish():
    def work(node):
        if node == "vpc":
            raise ValueError("boom")

    deps = {"subnets": ("vpc",), "routes": ("subnets",)}
    result = dag.walk(["vpc", "subnets", "routes", "ecr"], deps, work)
    assert list(result.failed) == ["vpc"] and str(result.failed["vpc"]) == "boom"
    assert result.skipped == {"subnets": "vpc", "routes": "subnets"}
    assert result.done == ["ecr"]


def test_a_cycle_is_a_clear_error():
    with pytest.raises(RuntimeError, match="dependency cycle"):
        dag.walk(["a", "b"], {"a": ("b",), "b": ("a",)}, lambda node: None)


def test_a_failure_skips_everything_after_it_even_listed_before_its_dependencies():
    """destroy walks the graph reversed: a node waiting on a failed one can be listed before the nodes
    in between. Every dependent is skipped in one go, not mistaken for a dependency cycle."""
    def work(node):
        if node == "routes":
            raise ValueError("boom")

    # Reverse (destroy) order: the VPC goes after the subnets, the subnets after the routes.
    deps = {"vpc": ("subnets", "igw"), "subnets": ("routes",), "igw": ("routes",)}
    result = dag.walk(["vpc", "subnets", "igw", "routes"], deps, work)
    assert list(result.failed) == ["routes"]
    assert result.skipped == {"subnets": "routes", "igw": "routes", "vpc": "subnets"}
    assert result.done == []

