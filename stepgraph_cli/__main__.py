"""``python -m stepgraph_cli``: the same as the ``stepgraph`` command."""

from __future__ import annotations

import sys

from stepgraph_cli.app import main

sys.exit(main())
