import sys

from hub.command import main

sys.exit(main())
