import sys

from points_client.cli import main

sys.exit(main())
