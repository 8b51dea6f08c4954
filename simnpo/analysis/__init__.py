"""Figures read from result files on disk (never from live models) and shared figure style."""
