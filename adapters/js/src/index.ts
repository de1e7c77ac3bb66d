/** Syncline's JavaScript client: typed documents, the connection, the change feed. */
export const VERSION = "0.1.0";
