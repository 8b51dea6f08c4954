"""MUSE: data, the built-in mini-MUSE, metrics, evaluation and the benchmark's entry (``benchmark.BENCHMARK``)."""
