"""Benchmarks, grouped by what they measure (docs/performance.md has the results):

- ``bench.model``: the network alone (``speed``: SA's cost per engine; ``fidelity``: INT8);
- ``bench.pipeline``: no HTTP (``decode``: large JPEGs; ``inprocess``: decode + model);
- ``bench.http``: load over HTTP and gRPC (``load``, its ``report``; ``signal``: autoscaling
  signals; ``soak``: memory and p99 drift);
- ``bench.e2e``: sanet-serve beside the authors' export on LitServe (``run``, ``baseline``).

``common``, ``proctree`` and ``server`` are shared by them; ``tests`` tests the tools;
``openvino_sa_op`` is a standalone experiment outside ``make bench``. bench/ imports
``testing/`` and never ``tests/``.
"""
