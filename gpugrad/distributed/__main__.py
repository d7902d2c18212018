"""``python -m gpugrad.distributed -n N script.py``: run a script as an N-process job here."""

import sys

from .launch import main

sys.exit(main())
