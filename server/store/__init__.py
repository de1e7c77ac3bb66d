"""Durable stores: the document log, and the change feed, receipts and catalog kept beside it."""

from .base import Catalog as Catalog
from .base import ChangeFeed as ChangeFeed
from .base import DocumentLog as DocumentLog
from .base import Receipts as Receipts
from .base import Store as Store
from .base import StoredDoc as StoredDoc
from .base import StoreError as StoreError
from .base import StoreUnavailable as StoreUnavailable
from .base import StoreLocked as StoreLocked
from .base import StoreCorrupt as StoreCorrupt
from .base import Change as Change
from .base import Price as Price
from .base import Receipt as Receipt
from .base import Claim as Claim
from .base import Access as Access
from .base import AccessLog as AccessLog
from .base import Binding as Binding
from .base import ClientsBound as ClientsBound
