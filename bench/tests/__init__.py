"""Tests of the benchmark tools themselves (tier ``bench``, in ``make test``)."""
