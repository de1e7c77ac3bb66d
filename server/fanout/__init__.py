"""Cross-node fan-out behind one narrow interface: none (one node) or Redis pub/sub."""

from .base import Fanout as Fanout
from .base import FanoutError as FanoutError
from .base import FanoutListener as FanoutListener
from .base import FanoutUnavailable as FanoutUnavailable
from .factory import create_fanout as create_fanout
from .factory import describe_fanout as describe_fanout
from .local import LocalFanout as LocalFanout
