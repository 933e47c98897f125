"""A plugin whose import fails."""

import ganframe_no_such_module  # noqa: F401
