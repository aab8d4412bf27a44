"""``python -m mettl_async.testing``: run the fake Mettl until interrupted."""

from mettl_async.testing import main

main()
