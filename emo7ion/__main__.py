import sys

from emo7ion.cli import main

sys.exit(main())
