"""``python -m mettl_async.testing``: run the fake Mettl until interrupted."""

from . import main

main()
