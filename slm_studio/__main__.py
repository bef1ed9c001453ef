import sys

from slm_studio.cli import main

sys.exit(main())
