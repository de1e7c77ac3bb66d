"""The Python sync client: an offline-first peer with a durable outbox.

See docs/client.md. The public names are re-exported here.
"""

from .backoff import Backoff as Backoff
from .client import SyncClient as SyncClient
from .errors import AcksUnsupported as AcksUnsupported
from .errors import ClientClosed as ClientClosed
from .errors import ClientError as ClientError
from .errors import ClientSettingsError as ClientSettingsError
from .errors import DocumentKindMismatch as DocumentKindMismatch
from .errors import Forbidden as Forbidden
from .errors import InvalidDocumentName as InvalidDocumentName
from .errors import InvalidQuery as InvalidQuery
from .errors import LocalStoreError as LocalStoreError
from .errors import RelayRejected as RelayRejected
from .errors import RelayUnreachable as RelayUnreachable
from .errors import RestProblem as RestProblem
from .errors import SyncTimeout as SyncTimeout
from .errors import TokenExpired as TokenExpired
from .errors import Unauthorized as Unauthorized
from .errors import UnexpectedResponse as UnexpectedResponse
from .errors import UpdateRefused as UpdateRefused
from .feed import ChangeFeed as ChangeFeed
from .feed import FeedEvent as FeedEvent
from .local_store import LocalStore as LocalStore
from .orders import OrderPage as OrderPage
from .orders import OrderSummary as OrderSummary
from .orders import all_orders as all_orders
from .orders import list_orders as list_orders
from .replica import Replica as Replica
from .replica import Subscription as Subscription
from .settings import ClientSettings as ClientSettings
from .status import Change as Change
from .status import Status as Status
