import os

# No hub lookups in tests (they retry for ~25 s before failing offline) and no display for matplotlib.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
