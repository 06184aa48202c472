import sys

from mmfedrec.cli import main

sys.exit(main())
