/** Syncline's JavaScript client: typed documents, the connection, the change feed. */
export const VERSION = "0.1.0";
export { canonicalJson, lineKey } from "./canonical.js";
export { Cart, type CartLine, type CartStatus, type CartView, type MergeResult } from "./cart.js";
export { StockLedger, type LedgerView, type RecordOptions, type ResolveOptions } from "./stock.js";
export type { Adjustment, Resolution, Strategy } from "./entries.js";
export type { Conflict } from "./conflicts.js";
export type { SchemaIssue, Clock, ModelOptions } from "./schema.js";
export type { JsonObject, JsonValue } from "./validation.js";
export {
  AlreadyMerged, CartClosed, DuplicateAdjustment, DuplicateResolution, EngineError, UnknownConflict, UnknownLine,
  ValidationError,
} from "./errors.js";
export {
  Order, PAYMENTS, STAGES, type MoveOptions, type OrderLine, type OrderLineInput, type OrderView, type Payment,
  type PlaceOptions, type Stage, type Transition, type TransitionKind,
} from "./order.js";
export { OrderNotPlaced, TransitionRefused } from "./errors.js";
