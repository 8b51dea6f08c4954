"""simnpo: LLM unlearning with SimNPO (arXiv 2410.07163), NPO and friends.

Parts: ``losses`` (every unlearning loss, pure functions), ``runs`` (run folders and atomic results),
``markov`` (mixtures of Markov chains), ``llm`` (Hugging Face models on TOFU and MUSE), ``analysis`` (plots
read from result files) and ``cli`` (the ``simnpo`` command).
"""

from importlib import metadata

try:
    __version__ = metadata.version("simnpo")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
