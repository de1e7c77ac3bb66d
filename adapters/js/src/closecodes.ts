/**
 * The relay's WebSocket close codes (engine/closecodes.py, docs/protocol.md) and what
 * the connection does after each.
 */

export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  INTERNAL_ERROR: 1011,
  INVALID_MESSAGE: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  INVALID_DOCUMENT_NAME: 4404,
  READ_ONLY: 4405,
  SLOW_CONSUMER: 4408,
  CLIENT_ID_TAKEN: 4409,
  TOO_LARGE: 4413,
  TOKEN_EXPIRED: 4419,
  INVALID_UPDATE: 4422,
  OUT_OF_ORDER: 4425,
  RATE_LIMITED: 4429,
  TOO_MANY_CONNECTIONS: 4430,
  TOKEN_CONNECTIONS: 4431,
  ROOM_LIMIT: 4503,
  STORE_UNAVAILABLE: 4504,
  FANOUT_UNAVAILABLE: 4505,
  SERVER_FULL: 4506,
} as const;

/** The relay's short reason for each code (the "name" column of docs/protocol.md). */
export const CLOSE_REASONS: Readonly<Record<number, string>> = {
  1000: "normal",
  1001: "going away",
  1011: "internal error",
  4400: "invalid message",
  4401: "unauthorized",
  4403: "forbidden",
  4404: "invalid document name",
  4405: "read-only",
  4408: "slow consumer",
  4409: "client id taken",
  4413: "too large",
  4419: "token expired",
  4422: "invalid update",
  4425: "out of order",
  4429: "rate limited",
  4430: "too many connections",
  4431: "too many token connections",
  4503: "room limit",
  4504: "store unavailable",
  4505: "fan-out unavailable",
  4506: "server full",
};

/**
 * What the connection does after the relay closed it with ``code``:
 * - ``retry``: reconnect with backoff (transient: the relay restarted, a network fault, a limit);
 * - ``read-only``: roll back the unacknowledged edits, then reconnect to read only (4405);
 * - ``refused``: roll back the unacknowledged edits and stay offline: the same request
 *   would fail again (4400, 4401, 4403, 4404, 4409, 4413, 4422, and any other 44xx);
 * - ``stop``: stay offline, keep the edits (4419: they are delivered once a new token connects).
 */
export type CloseAction = "retry" | "read-only" | "refused" | "stop";

const RETRYABLE_44XX: ReadonlySet<number> = new Set([
  CloseCode.SLOW_CONSUMER, CloseCode.OUT_OF_ORDER, CloseCode.RATE_LIMITED, CloseCode.TOO_MANY_CONNECTIONS,
  CloseCode.TOKEN_CONNECTIONS,
]);

export function closeAction(code: number): CloseAction {
  if (code === CloseCode.READ_ONLY) return "read-only";
  if (code === CloseCode.TOKEN_EXPIRED) return "stop";
  if (code >= 4400 && code < 4500 && !RETRYABLE_44XX.has(code)) return "refused";
  return "retry";
}
