/** Syncline's JavaScript client: typed documents, the connection, the change feed. */
export const VERSION = "0.1.0";
export { connect, SynclineConnection } from "./connection.js";
export type { ConnectionOptions, ConnectionEvents, ConnectionErrorEvent, RollbackEvent, StatusEvent, SyncStatus, WebSocketClass } from "./connection.js";
export { Backoff } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export { CloseCode, CLOSE_REASONS, closeAction } from "./closecodes.js";
export type { CloseAction } from "./closecodes.js";
export { ChangeFeed, FEED_EVENT_TYPES } from "./feed.js";
export type { ChangeData, ChangeFeedOptions, FeedEvent, FeedEventType, FeedEvents, FeedHealth, FeedStatus, ResetData } from "./feed.js";
export { FetchEventSource } from "./sse.js";
export type { EventSourceClass, EventSourceLike, SseMessage } from "./sse.js";
