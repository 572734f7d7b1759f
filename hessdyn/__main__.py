import sys

from hessdyn.cli import main

sys.exit(main())
