"""Shared fixtures. Each area keeps its fixtures in a ``fixtures_*.py`` module beside this file."""

from fixtures_archive import *  # noqa: F401,F403
from fixtures_s3 import *  # noqa: F401,F403
from fixtures_sim import *  # noqa: F401,F403
