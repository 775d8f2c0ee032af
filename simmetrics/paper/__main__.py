"""``python -m simmetrics.paper --out results/ [--docs docs] [--smoke]``: run the paper's
reproduction and write its report (see :func:`simmetrics.paper.cli.main`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
