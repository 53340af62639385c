import sys

from statehub.hub.command import main

sys.exit(main())
