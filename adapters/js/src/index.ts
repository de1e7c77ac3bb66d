/** Syncline's JavaScript client: typed documents, the connection, the change feed. */
export const VERSION = "0.1.0";
export { connect, SynclineConnection } from "./connection.js";
export type { ConnectionOptions, ConnectionEvents, ConnectionErrorEvent, RollbackEvent, StatusEvent, SyncStatus, WebSocketClass } from "./connection.js";
export { Backoff } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export { CloseCode, CLOSE_REASONS, closeAction } from "./closecodes.js";
export type { CloseAction } from "./closecodes.js";
