"""``python -m escalation_matrix``: the same command as ``escalation-matrix``."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="escalation-matrix")
