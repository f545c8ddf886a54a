import sys

from ladarts.cli import main

sys.exit(main())
