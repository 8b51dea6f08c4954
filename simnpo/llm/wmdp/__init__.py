"""WMDP (Li et al. 2024, arXiv 2403.03218): hazardous-knowledge accuracy and MMLU, scored by lm-evaluation-harness."""
