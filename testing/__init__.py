"""What every test tier and ``bench/`` share: one way to do each chore of a test.

Import the module you need (``from testing.servers import Spawned``); this package
imports nothing itself, so a spawned stand-in or a benchmark does not pay for torch or the
web app it does not use.

- ``ports``: a free 127.0.0.1 port.
- ``waiting``: ``poll``, the one bounded wait on a condition (no fixed sleeps in tests).
- ``servers``: an ASGI app under uvicorn in a thread (``InThread``) and a real process
  (``Spawned``), both ready once their readiness path answers 200, both with ``stop()``.
- ``app``: the real ``sanet-serve`` process tree on a free port (``Running``), and
  ``engine_held``, which stops its engine for a block.
- ``metrics``: the one /metrics reader (samples, maxima, histograms) of tests and benchmarks.
- ``checkpoints``: random SA-ResNets and the checkpoint files written from them.
- ``images``: distinct photo-like test images.
- ``standin``: a stand-in of sanet-serve for testing the load generator.
- ``fixtures``: the pytest fixtures ``checkpoint`` and ``serve`` (tests/ and bench/tests).
- ``training``: a small SA-ResNet trained in seconds on generated images (INT8 fidelity).
- ``scaling_plot``: the figure of an autoscaling run.
- ``settings_doc``: writes docs/settings.md from the Settings object.
- ``ci``, ``tools``, ``paths``: CI policy (a missing component fails under CI=true), external
  tools, and the repository's paths.
"""
