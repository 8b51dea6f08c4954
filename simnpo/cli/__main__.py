"""``python -m simnpo.cli``: the same command as the ``simnpo`` console script."""

from simnpo.cli import main

main()
