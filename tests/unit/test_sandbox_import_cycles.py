"""The sandbox's modules import one another without a cycle.

A cycle (once: properties -> request_io -> sandbox -> properties, store, webhooks, and
values <-> properties) makes the import order matter and hides which module is the lower
layer; the typed field readers (`fields`) and the value rules' `PropertyDef` protocol keep
the lower modules free of the upper ones.
"""

from __future__ import annotations

import grimp


def test_no_sandbox_module_is_in_an_import_cycle() -> None:
    graph = grimp.build_graph("app")
    modules = sorted(m for m in graph.modules if m.startswith("app.sandbox."))
    assert len(modules) > 20
    cycles = [
        (a, b)
        for a in modules
        for b in modules
        if a < b
        and graph.chain_exists(importer=a, imported=b)
        and graph.chain_exists(importer=b, imported=a)
    ]
    assert cycles == []
