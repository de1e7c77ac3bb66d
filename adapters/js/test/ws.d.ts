// The `ws` package (a root dependency) has no bundled types; the tests only pass its class on.
declare module "ws" {
  const WebSocket: unknown;
  export default WebSocket;
  export { WebSocket };
}
