// Fan-out load generator: R rooms x C real Yjs clients (WebsocketProvider over `ws`) in one process.
//
// Every client edits E times a second for D seconds. An edit is one Yjs transaction that sets
// key `${clientID}:${n}` of the Y.Map "lat" to the sender's clock (performance.timeOrigin +
// performance.now()); every other client of the room records (receive time - send time) from a
// map observer. All clients share this process, hence one clock.
//
// Usage (run from the repository root, which holds node_modules):
//   node benchmarks/js/fanout.mjs --url ws://127.0.0.1:8787/v1/sync --token TOKEN \
//        --rooms 40 --clients 5 --rate 20 --duration 10 [--drain 10] [--prefix bench/cart/r]
//
// Without --token no query parameter is sent (the Node reference server ignores it anyway).
// --deflate false stops offering permessage-deflate (offered by default, as browsers and `ws` do;
// the server decides whether to accept it).
// stdout is JSON lines: {"event":"connected"}, {"event":"start"}, {"event":"edits_done"},
// {"event":"done"} (the caller samples the server's CPU at "start" and "done"), and last
// {"event":"result", ...} with every number (latency_cdf: [fraction, ms] points of the
// distribution, for plots). Diagnostics go to stderr.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { int, num, parseArgs } from './args.mjs'

const args = parseArgs(process.argv.slice(2))
const URL_BASE = args.url
const TOKEN = args.token || null
const ROOMS = int(args.rooms, 40)
const CLIENTS = int(args.clients, 5)
const RATE = num(args.rate, 20)
const DURATION = num(args.duration, 10)
const DRAIN = num(args.drain, 10)
const CONNECT_TIMEOUT = num(args['connect-timeout'], 60)
const SETTLE_MS = num(args.settle, 0.5) * 1000
const PREFIX = args.prefix || 'bench/cart/r'
const LATE_JOINER = args['late-joiner'] !== 'false'
const DEFLATE = args.deflate !== 'false' // offer permessage-deflate as browsers and `ws` do by default
const EDITS_PER_CLIENT = Math.round(RATE * DURATION)
const PERIOD_MS = 1000 / RATE
const TICK_MS = 2

if (!URL_BASE) {
  console.error('--url is required')
  process.exit(2)
}
process.setMaxListeners(0) // each WebsocketProvider adds a process 'exit' listener

const now = () => performance.timeOrigin + performance.now()
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

// A `ws` WebSocket with permessage-deflate offered or not (browsers always offer it; `ws` too by
// default). Passed as WebsocketProvider's polyfill.
class BenchWebSocket extends WebSocket {
  constructor (address, protocols) {
    super(address, protocols, { perMessageDeflate: DEFLATE })
  }
}

const counters = {
  connection_close: 0, // 'connection-close' events while the run was on (after everyone synced)
  connection_error: 0,
  terminal_close: 0, // 'closed': the server refused reconnection (4400-4499)
  close_codes: {},
  reconnect_syncs: 0 // 'sync' true events after the first one: a client had to reconnect
}
let running = false
let measuring = false

const clients = []
for (let r = 0; r < ROOMS; r++) {
  for (let c = 0; c < CLIENTS; c++) clients.push(makeClient(r, c))
}

function roomName (r) {
  return `${PREFIX}${r}`
}

function makeClient (room, index) {
  const doc = new Y.Doc()
  const map = doc.getMap('lat')
  const provider = new WebsocketProvider(URL_BASE, roomName(room), doc, {
    WebSocketPolyfill: BenchWebSocket,
    params: TOKEN ? { token: TOKEN } : {},
    disableBc: true, // all clients share one process: BroadcastChannel would bypass the server
    maxBackoffTime: 1000
  })
  const client = {
    room, index, doc, map, provider, sent: 0, received: 0, synced: false, syncs: 0, phase: 0, extensions: ''
  }
  provider.on('sync', (state) => {
    if (!state) return
    client.syncs++
    if (client.syncs > 1 && running) counters.reconnect_syncs++
    client.synced = true
    if (provider.ws) client.extensions = provider.ws.extensions || ''
  })
  provider.on('connection-close', (event) => {
    if (!running) return
    counters.connection_close++
    const code = event ? String(event.code) : 'local'
    counters.close_codes[code] = (counters.close_codes[code] || 0) + 1
  })
  provider.on('connection-error', () => { if (running) counters.connection_error++ })
  provider.on('closed', () => { if (running) counters.terminal_close++ })
  map.observe((event, txn) => {
    if (txn.local || !measuring) return
    const t = now()
    for (const key of event.keysChanged) {
      const sentAt = map.get(key)
      if (typeof sentAt !== 'number') continue
      client.received++
      latencies.push(t - sentAt)
      sendTimes.push(sentAt)
      if (t > lastReceive) lastReceive = t
    }
  })
  return client
}

const latencies = []
const sendTimes = []
let lastReceive = 0

function allSynced () {
  return clients.every((c) => c.synced)
}

async function waitFor (predicate, timeoutSeconds, pollMs = 10) {
  const deadline = performance.now() + timeoutSeconds * 1000
  while (!predicate()) {
    if (performance.now() > deadline) return false
    await sleep(pollMs)
  }
  return true
}

function sleep (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

async function main () {
  const t0 = performance.now()
  const synced = await waitFor(allSynced, CONNECT_TIMEOUT)
  const connectSeconds = (performance.now() - t0) / 1000
  if (!synced) {
    const missing = clients.filter((c) => !c.synced).length
    emit({ event: 'result', ok: false, error: `${missing} of ${clients.length} clients did not sync within ${CONNECT_TIMEOUT} s` })
    shutdown(1)
    return
  }
  emit({ event: 'connected', seconds: connectSeconds })
  await sleep(SETTLE_MS) // awareness greetings settle before the clock starts

  const loop = monitorEventLoopDelay({ resolution: 5 })
  loop.enable()
  const cpuBefore = process.cpuUsage()
  running = true
  measuring = true
  emit({ event: 'start' })
  const start = now()
  clients.forEach((c, i) => { c.phase = (i / clients.length) * PERIOD_MS })
  let firstSend = Infinity
  let lastSend = 0

  // One scheduler for every client: each tick, every client catches up with the edits it owes
  // by now, so the offered load stays exactly RATE x DURATION per client even if a tick is late.
  await new Promise((resolve) => {
    const tick = () => {
      const elapsed = now() - start
      let pending = false
      for (const c of clients) {
        const due = Math.min(EDITS_PER_CLIENT, Math.floor((elapsed - c.phase) / PERIOD_MS) + 1)
        while (c.sent < due) {
          const n = c.sent++
          const t = now()
          if (t < firstSend) firstSend = t
          lastSend = t
          c.doc.transact(() => { c.map.set(`${c.doc.clientID}:${n}`, t) })
        }
        if (c.sent < EDITS_PER_CLIENT) pending = true
      }
      if (pending) setTimeout(tick, TICK_MS)
      else resolve()
    }
    tick()
  })
  const editsDone = now()
  emit({ event: 'edits_done' })

  const expected = clients.length * EDITS_PER_CLIENT * (CLIENTS - 1)
  const delivered = () => latencies.length
  const caughtUp = await waitFor(() => delivered() >= expected, DRAIN, 5)
  const end = now()
  measuring = false
  const cpu = process.cpuUsage(cpuBefore)
  loop.disable()
  emit({ event: 'done' })
  running = false

  const sorted = Float64Array.from(latencies).sort()
  const window = Math.max(1e-9, (Math.max(lastReceive, lastSend) - firstSend) / 1000)
  const perClientExpected = EDITS_PER_CLIENT * (CLIENTS - 1)
  const minReceived = Math.min(...clients.map((c) => c.received))
  const result = {
    event: 'result',
    ok: true,
    config: {
      rooms: ROOMS, clients_per_room: CLIENTS, clients: clients.length, rate: RATE, duration: DURATION,
      drain: DRAIN, edits_per_client: EDITS_PER_CLIENT, permessage_deflate_offered: DEFLATE
    },
    negotiated_extensions: [...new Set(clients.map((c) => c.extensions))],
    connect_seconds: connectSeconds,
    sent: clients.reduce((s, c) => s + c.sent, 0),
    expected_deliveries: expected,
    delivered: delivered(),
    all_delivered: delivered() === expected,
    caught_up: caughtUp,
    catch_up_seconds: caughtUp ? Math.max(0, (lastReceive - editsDone) / 1000) : null,
    min_client_delivery_fraction: perClientExpected ? minReceived / perClientExpected : 1,
    offered_updates_per_s: clients.length * RATE,
    offered_deliveries_per_s: clients.length * RATE * (CLIENTS - 1),
    send_seconds: (lastSend - firstSend) / 1000,
    delivery_window_seconds: window,
    delivered_per_s: delivered() / window,
    wall_seconds: (end - start) / 1000,
    latency_ms: stats(sorted),
    latency_cdf: cdf(sorted),
    timeline: timeline(start),
    errors: counters,
    client_cpu_seconds: (cpu.user + cpu.system) / 1e6,
    client_event_loop_delay_ms: {
      // the histogram records whole sampling intervals: take the 5 ms resolution off
      p50: Math.max(0, loop.percentile(50) / 1e6 - 5),
      p99: Math.max(0, loop.percentile(99) / 1e6 - 5),
      max: Math.max(0, loop.max / 1e6 - 5)
    }
  }
  if (LATE_JOINER) result.late_joiner = await lateJoiners()
  emit(result)
  shutdown(0)
}

function stats (sorted) {
  const q = (p) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : null
  let sum = 0
  for (const v of sorted) sum += v
  return {
    count: sorted.length,
    mean: sorted.length ? sum / sorted.length : null,
    p50: q(0.5),
    p95: q(0.95),
    p99: q(0.99),
    max: sorted.length ? sorted[sorted.length - 1] : null
  }
}

// The latency distribution as [fraction, ms] points (for plots): 200 even steps and the far tail.
function cdf (sorted) {
  if (!sorted.length) return []
  const fractions = []
  for (let i = 0; i < 200; i++) fractions.push(i / 200)
  fractions.push(0.995, 0.999, 0.9999, 1)
  return fractions.map((f) => [f, sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))]])
}

// Latency by the second in which the update was sent: shows whether the server falls behind.
function timeline (start) {
  const buckets = new Map()
  for (let i = 0; i < latencies.length; i++) {
    const s = Math.floor((sendTimes[i] - start) / 1000)
    if (!buckets.has(s)) buckets.set(s, [])
    buckets.get(s).push(latencies[i])
  }
  return [...buckets.keys()].sort((a, b) => a - b).map((s) => {
    const v = Float64Array.from(buckets.get(s)).sort()
    return { second: s, deliveries: v.length, p50_ms: v[Math.floor(0.5 * v.length)], p99_ms: v[Math.min(v.length - 1, Math.floor(0.99 * v.length))] }
  })
}

// After the run, one fresh client per room syncs from the server alone: did it keep everything?
async function lateJoiners () {
  const want = CLIENTS * EDITS_PER_CLIENT
  const joiners = []
  for (let r = 0; r < ROOMS; r++) {
    const doc = new Y.Doc()
    const provider = new WebsocketProvider(URL_BASE, roomName(r), doc, {
      WebSocketPolyfill: BenchWebSocket, params: TOKEN ? { token: TOKEN } : {}, disableBc: true
    })
    const j = { doc, provider, synced: false }
    provider.on('sync', (s) => { if (s) j.synced = true })
    joiners.push(j)
  }
  const t0 = performance.now()
  const ok = await waitFor(() => joiners.every((j) => j.synced), 30)
  const seconds = (performance.now() - t0) / 1000
  const complete = joiners.filter((j) => j.doc.getMap('lat').size === want).length
  for (const j of joiners) j.provider.destroy()
  return { rooms: ROOMS, synced: ok, rooms_complete: complete, keys_expected_per_room: want, seconds }
}

function shutdown (code) {
  running = false
  for (const c of clients) c.provider.destroy()
  setTimeout(() => process.exit(code), 200)
}


main().catch((err) => {
  console.error(err)
  emit({ event: 'result', ok: false, error: String(err && err.stack || err) })
  shutdown(1)
})
