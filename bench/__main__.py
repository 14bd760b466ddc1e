"""Entry point: ``python -m bench [--quick]``."""

from bench.cli import main

if __name__ == "__main__":
    main()
