"""`python -m pointsbench` (what `make bench` runs): see pointsbench.bench."""

import sys

from .bench import main

sys.exit(main())
