"""Mixtures of Markov chains, small transformers trained on them, and the reference-model-bias experiments."""
