"""Syncline's sans-IO core: document models, merge semantics, the sync core, and the protocol.

The protocol has modules of its own, which any peer imports without the relay:
:mod:`.names` (document names), :mod:`.protocol` (the y-websocket and extension message
codec), :mod:`.closecodes` (WebSocket close codes) and :mod:`.tokens` (pure token checks).
"""

from .cart import Cart as Cart
from .cart import CartLine as CartLine
from .cart import CartStatus as CartStatus
from .cart import CartView as CartView
from .cart import MergeResult as MergeResult
from .cart import PricedLine as PricedLine
from .cart import line_key as line_key
from .cart import price_lines as price_lines
from .errors import AlreadyMerged as AlreadyMerged
from .errors import CartClosed as CartClosed
from .errors import DuplicateAdjustment as DuplicateAdjustment
from .errors import DuplicateCount as DuplicateCount
from .errors import DuplicateResolution as DuplicateResolution
from .errors import EngineError as EngineError
from .errors import InvalidStateVector as InvalidStateVector
from .errors import InvalidUpdate as InvalidUpdate
from .errors import OrderNotPlaced as OrderNotPlaced
from .errors import TransitionRefused as TransitionRefused
from .errors import UnknownConflict as UnknownConflict
from .errors import UnknownLine as UnknownLine
from .errors import ValidationError as ValidationError
from .schema import SchemaIssue as SchemaIssue
from .structs import DEFAULT_LIMITS as DEFAULT_LIMITS
from .structs import StructLimits as StructLimits
from .structs import UpdateShape as UpdateShape
from .structs import read_update as read_update
from .sync import apply_update as apply_update
from .sync import apply_update_state as apply_update_state
from .sync import encode_diff as encode_diff
from .sync import state_vector as state_vector
from .sync import validate_update as validate_update
from .conflicts import Conflict as Conflict
from .entries import Adjustment as Adjustment
from .entries import Count as Count
from .entries import Resolution as Resolution
from .stock import LedgerView as LedgerView
from .stock import StockLedger as StockLedger
from .order import Order as Order
from .order import OrderLine as OrderLine
from .order import OrderView as OrderView
from .order import Transition as Transition
