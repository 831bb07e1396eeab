"""``python -m mailcarrier``: the `mailcarrier` command, as the console script runs it.

Only the entry point: the command line itself is cli.py's `main`.
"""

from __future__ import annotations

from mailcarrier.cli import main

if __name__ == "__main__":
    main()
