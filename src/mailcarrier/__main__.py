"""``python -m mailcarrier``: the `mailcarrier` command, as the console script runs it.

Only the entry point: entry.py's `main` (the lean submission path, then cli.py).
"""

from __future__ import annotations

from mailcarrier.entry import main

if __name__ == "__main__":
    main()
