// An unmodified Yjs client (yjs + y-websocket's WebsocketProvider) driven by a Python test.
//
//   node peer.mjs '{"server": "ws://127.0.0.1:PORT/v1/sync", "room": "acme/cart/c-1",
//                   "token": "...", "roots": {"ops": "array", "lines": "map"}, "timeoutMs": 20000}'
//
// stdin: one JSON command per line, each with a "seq"; every command gets exactly one
// reply line {"reply": seq, ...} (or {"reply": seq, "error": "..."}), in order.
// stdout: replies and events, one JSON object per line. Events:
//   {"event": "status", "status": "connecting" | "connected" | "disconnected"}
//   {"event": "synced", "clientID": n}          the provider emitted 'sync' true
//   {"event": "close", "code": n | null, "reason": s, "established": bool}
//                                               code null: we closed it ourselves;
//                                               established false: a failed connection attempt
//   {"event": "closed", "code": n, "reason": s}  the provider gave up (a 44xx close)
//   {"event": "connection-error", "message": s}
//   {"event": "update", "remote": bool}          the document changed
//   {"event": "awareness"}                       someone's awareness state changed
//   {"event": "timeout"} / {"event": "fatal", "error": s}   then exit with status 3 / 2
// The program exits 0 when stdin ends or on {"cmd": "exit"}, after closing its socket.

import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const config = JSON.parse(process.argv[2] ?? '{}')
const roots = config.roots ?? {}

const emit = (message) => {
  process.stdout.write(JSON.stringify(message, (_key, value) =>
    typeof value === 'bigint' ? { $bigint: value.toString() } : value) + '\n')
}

const hardTimeout = setTimeout(() => {
  emit({ event: 'timeout' })
  process.exit(3)
}, config.timeoutMs ?? 20000)

process.on('uncaughtException', (error) => {
  emit({ event: 'fatal', error: String(error?.stack ?? error) })
  process.exit(2)
})

const doc = new Y.Doc()
const provider = new WebsocketProvider(config.server, config.room, doc, {
  WebSocketPolyfill: WebSocket,
  params: { token: config.token },
  disableBc: true, // only the relay may carry updates between peers
  maxBackoffTime: 500 // reconnect quickly after a relay restart
})

provider.on('status', ({ status }) => emit({ event: 'status', status }))
provider.on('sync', (synced) => { if (synced) emit({ event: 'synced', clientID: doc.clientID }) })
// Emitted before the provider resets wsconnected: established is false for a failed attempt.
provider.on('connection-close', (event) => emit({
  event: 'close',
  code: event ? event.code : null,
  reason: event ? event.reason : '',
  established: provider.wsconnected
}))
provider.on('closed', ({ code, reason }) => emit({ event: 'closed', code, reason }))
provider.on('connection-error', (event) =>
  emit({ event: 'connection-error', message: String(event?.message ?? event) }))
doc.on('update', (_update, origin) => emit({ event: 'update', remote: origin === provider }))
provider.awareness.on('change', () => emit({ event: 'awareness' }))

const root = (name, type) => {
  if (type === 'array') return doc.getArray(name)
  if (type === 'map') return doc.getMap(name)
  if (type === 'text') return doc.getText(name)
  throw new Error(`unknown root type ${type}`)
}

const dump = (which) => Object.fromEntries(
  Object.entries(which ?? roots).map(([name, type]) => [name, root(name, type).toJSON()]))

// docs/semantics.md, Part 2, "Cart document": the line key and the add operation.
const canonical = (v) => Array.isArray(v) ? `[${v.map(canonical).join(',')}]`
  : v && typeof v === 'object'
    ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`
    : JSON.stringify(v)

const lineKey = (product, attributes) =>
  createHash('sha256').update(canonical([product, attributes]), 'utf8').digest('hex').slice(0, 32)

const cartAdd = ({ product, attributes = {}, n }) => {
  const key = lineKey(product, attributes)
  const id = `${doc.clientID.toString(16)}.${Y.getState(doc.store, doc.clientID).toString(16)}`
  doc.transact(() => {
    const lines = doc.getMap('lines')
    if (!lines.has(key)) lines.set(key, { product, attributes })
    doc.getArray('ops').push([{ id, l: key, k: 'add', n }])
  })
  return { key, id }
}

const handlers = {
  // Append values to a Y.Array; "each": one transaction (one update) per value.
  push: ({ array, values, each = false }) => {
    const target = doc.getArray(array)
    if (each) values.forEach((value) => target.push([value]))
    else target.push(values)
    return {}
  },
  set: ({ map, key, value }) => { doc.getMap(map).set(key, value); return {} },
  cart_add: (command) => cartAdd(command),
  line_key: ({ product, attributes = {} }) => ({ key: lineKey(product, attributes) }),
  dump: ({ roots: which }) => ({ doc: dump(which), synced: provider.synced }),
  awareness_set: ({ field, value }) => { provider.awareness.setLocalStateField(field, value); return {} },
  awareness: () => ({
    self: doc.clientID,
    states: Array.from(provider.awareness.getStates().entries())
  }),
  disconnect: () => { provider.disconnect(); return {} },
  connect: () => { provider.connect(); return {} }
}

const shutDown = async (status) => {
  const socket = provider.ws
  provider.destroy() // tells the others our awareness state is gone, then closes the socket
  if (socket && socket.readyState !== WebSocket.CLOSED) {
    await new Promise((resolve) => {
      const bound = setTimeout(resolve, 1000)
      socket.once('close', () => { clearTimeout(bound); resolve() })
    })
  }
  clearTimeout(hardTimeout)
  process.exit(status)
}

const input = createInterface({ input: process.stdin })
input.on('line', (line) => {
  if (!line.trim()) return
  let command
  try {
    command = JSON.parse(line)
  } catch (error) {
    emit({ event: 'fatal', error: `not JSON: ${line}` })
    process.exit(2)
  }
  if (command.cmd === 'exit') {
    emit({ reply: command.seq })
    shutDown(0)
    return
  }
  const handler = handlers[command.cmd]
  try {
    if (!handler) throw new Error(`unknown command ${command.cmd}`)
    emit({ reply: command.seq, ...handler(command) })
  } catch (error) {
    emit({ reply: command.seq, error: String(error?.stack ?? error) })
  }
})
input.on('close', () => shutDown(0))
