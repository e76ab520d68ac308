"""`python -m crawler` is the same as the `crawler` command."""

from .cli import main

raise SystemExit(main())
