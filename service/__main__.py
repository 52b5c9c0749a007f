import sys

from modelmedic.cli import main

sys.exit(main())
