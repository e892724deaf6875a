"""`python -m wheelferry` runs the command line."""

from wheelferry.cli import main

raise SystemExit(main())
