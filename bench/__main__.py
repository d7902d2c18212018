"""``python -m bench``: the side-by-side benchmark runner (see ``bench/run.py``); with ``--ranks``,
W2 data-parallel over mpiexec (see ``bench/distributed.py``)."""

import sys

if any(a == "--ranks" or a.startswith("--ranks=") for a in sys.argv[1:]):
    from bench.distributed import main
else:
    from bench.run import main

sys.exit(main())
