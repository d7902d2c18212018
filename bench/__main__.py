"""``python -m bench``: the side-by-side benchmark runner (see ``bench/run.py``)."""

import sys

from bench.run import main

sys.exit(main())
