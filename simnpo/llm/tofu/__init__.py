"""TOFU: data, the built-in mini-TOFU, metrics, evaluation and the benchmark's entry (``benchmark.BENCHMARK``)."""
