import sys

from nlstudy.cli import main

sys.exit(main())
