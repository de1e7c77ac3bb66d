/** Syncline's JavaScript client: typed documents, the connection, the change feed. */
export const VERSION = "0.1.0";
export { canonicalJson, lineKey } from "./canonical.js";
export { Cart, type CartLine, type CartState, type CartStatus, type CartView, type MergeResult } from "./cart.js";
export { StockLedger, type CountOptions, type Entry, type LedgerView, type RecordOptions, type ResolveOptions } from "./stock.js";
export type { Adjustment, Count, Resolution, Strategy } from "./entries.js";
export type { Conflict, ConflictKind } from "./conflicts.js";
export type { SchemaIssue, Clock, ModelOptions } from "./schema.js";
export type { JsonObject, JsonValue } from "./validation.js";
export {
  AlreadyMerged, CartClosed, DuplicateAdjustment, DuplicateCount, DuplicateResolution, EngineError, UnknownConflict, UnknownLine,
  ValidationError,
} from "./errors.js";
export { connect, SynclineConnection } from "./connection.js";
export type { ConnectionOptions, ConnectionEvents, ConnectionErrorEvent, RollbackEvent, StatusEvent, SyncStatus, WebSocketClass } from "./connection.js";
export { Backoff } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export { CloseCode, CLOSE_REASONS, closeAction } from "./closecodes.js";
export type { CloseAction } from "./closecodes.js";
export { CHANGE_EVENT_TYPES, ChangeFeed, FEED_EVENT_TYPES, eventsNamed } from "./feed.js";
export type {
  CartChangedData, ChangeData, ChangeEventType, ChangeFeedOptions, ChangedLine, ConnectedData, FeedEvent, FeedEventMap, FeedEventOf,
  FeedEventType, FeedEvents, FeedHealth, FeedStatus, FeedTypeFilter, GenericChangeData, OrderCreatedData, OrderMove,
  OrderPaymentData, OrderStageData, ResetData, StockConflictData, StockConflictResolvedData, StockLevelData,
} from "./feed.js";
export { FetchEventSource } from "./sse.js";
export type { EventSourceClass, EventSourceLike, SseMessage } from "./sse.js";
export {
  Order, PAYMENTS, STAGES, type MoveOptions, type OrderLine, type OrderLineInput, type OrderView, type Payment,
  type PlaceOptions, type Stage, type Transition, type TransitionKind,
} from "./order.js";
export { OrderNotPlaced, TransitionRefused } from "./errors.js";
export { allOrders, listOrders, MAX_ORDER_PAGE, RestProblem } from "./orders-api.js";
export type { ListOrdersOptions, OrderPage, OrderSummary } from "./orders-api.js";
