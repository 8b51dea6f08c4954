"""The loss library on Hugging Face causal LMs: TOFU and MUSE data, unlearning, evaluation, relearning."""
