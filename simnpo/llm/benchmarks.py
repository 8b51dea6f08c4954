"""The benchmarks the commands know, by name: a plain dict of ``benchmark.Benchmark`` implementations, one folder
each. Adding one is a folder and an entry here (docs/architecture.md)."""

from simnpo.llm.benchmark import Benchmark
from simnpo.llm.muse.benchmark import BENCHMARK as MUSE
from simnpo.llm.tofu.benchmark import BENCHMARK as TOFU
from simnpo.llm.wmdp.benchmark import BENCHMARK as WMDP

BENCHMARKS: dict[str, Benchmark] = {"tofu": TOFU, "muse": MUSE, "wmdp": WMDP}
