"""The rosbag2 storage and format-version choices, importable without rosbags or numpy, so the
command line can offer them in ``--help`` at once (bags.py explains the versions)."""

STORAGE_NAMES = ("mcap", "sqlite3")
DEFAULT_STORAGE = "mcap"
BAG_VERSIONS = (8, 9)
DEFAULT_BAG_VERSION = 8  # read by Humble and Jazzy (see bags.py)
