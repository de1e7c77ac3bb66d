// Connection capacity: open N concurrent y-websocket connections to one server and hold them idle.
//
// Each connection is a `ws` WebSocket (no permessage-deflate) that does what y-websocket's
// WebsocketProvider does first: send sync step 1 for its own Y.Doc and answer the server's
// step 1 (y-protocols/sync). It counts as connected once it has received the server's sync
// step 2. It then stays idle: no awareness heartbeat (a WebsocketProvider would send one every
// 15 s), only the WebSocket pings the server sends, which `ws` answers. With --write, each
// connection then sets one key of a Y.Map in its document (a room holding a small document).
//
// Usage (from the repository root, which holds node_modules):
//   node benchmarks/js/conns.mjs --url ws://127.0.0.1:8787/v1/sync --token TOKEN \
//        --count 10000 --rooms 100 [--prefix bench/cart/c] [--concurrency 200] [--timeout 120] [--write]
//
// Connection i joins room `${prefix}${i % rooms}`. At most --concurrency handshakes are in
// flight; the ramp stops at --count connections or after --timeout seconds, whichever first.
// stdout is JSON lines: {"event":"progress",...} about once a second, {"event":"held",...}
// when the ramp is over (the caller samples the server's memory then), and after the caller
// writes a line "release" to stdin (or --hold-max seconds), {"event":"result",...} with how many
// were still open, before every connection is closed.

import * as Y from 'yjs'
import * as syncProtocol from 'y-protocols/sync'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import WebSocket from 'ws'
import readline from 'node:readline'
import { int, num, parseArgs } from './args.mjs'

const args = parseArgs(process.argv.slice(2))
const BASE = args.url
const TOKEN = args.token || null
const COUNT = int(args.count, 1000)
const ROOMS = Math.max(1, int(args.rooms, 100))
const PREFIX = args.prefix || 'bench/cart/c'
const CONCURRENCY = int(args.concurrency, 200)
const TIMEOUT_S = num(args.timeout, 120)
const HANDSHAKE_TIMEOUT_S = num(args['handshake-timeout'], 30)
const HOLD_MAX_S = num(args['hold-max'], 120)
const WRITE = args.write === 'true'
const MESSAGE_SYNC = 0

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const conns = []
const errors = {}
const closeCodes = {}
let synced = 0
let failed = 0
let inflight = 0
let closedAfterSync = 0
let lastSyncedAt = 0

function url (i) {
  const room = `${PREFIX}${i % ROOMS}`
  return `${BASE}/${room}` + (TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : '')
}

function open (i) {
  return new Promise((resolve) => {
    const doc = new Y.Doc()
    const ws = new WebSocket(url(i), { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_TIMEOUT_S * 1000 })
    ws.binaryType = 'arraybuffer'
    const c = { ws, doc, synced: false, done: false }
    conns.push(c)
    const finish = (ok, why) => {
      if (c.done) return
      c.done = true
      clearTimeout(timer)
      if (ok) { synced++; c.synced = true; lastSyncedAt = performance.now() } else {
        failed++
        errors[why] = (errors[why] || 0) + 1
        try { ws.terminate() } catch {}
      }
      resolve()
    }
    const timer = setTimeout(() => finish(false, 'handshake timeout'), HANDSHAKE_TIMEOUT_S * 1000)
    ws.on('open', () => {
      const encoder = encoding.createEncoder()
      encoding.writeVarUint(encoder, MESSAGE_SYNC)
      syncProtocol.writeSyncStep1(encoder, doc)
      ws.send(encoding.toUint8Array(encoder))
    })
    ws.on('message', (data) => {
      const decoder = decoding.createDecoder(new Uint8Array(data))
      const type = decoding.readVarUint(decoder)
      if (type !== MESSAGE_SYNC) return
      const encoder = encoding.createEncoder()
      encoding.writeVarUint(encoder, MESSAGE_SYNC)
      const kind = syncProtocol.readSyncMessage(decoder, encoder, doc, null)
      if (encoding.length(encoder) > 1) ws.send(encoding.toUint8Array(encoder))
      if (kind === syncProtocol.messageYjsSyncStep2 && !c.synced && !c.done) {
        if (WRITE) {
          doc.on('update', (update) => {
            const e = encoding.createEncoder()
            encoding.writeVarUint(e, MESSAGE_SYNC)
            syncProtocol.writeUpdate(e, update)
            ws.send(encoding.toUint8Array(e))
          })
          doc.getMap('m').set('line', { sku: `sku-${i}`, qty: 2 })
        }
        finish(true)
      }
    })
    ws.on('error', (err) => finish(false, err.code || err.message || 'error'))
    ws.on('close', (code) => {
      if (c.synced) {
        closedAfterSync++
        closeCodes[code] = (closeCodes[code] || 0) + 1
      } else finish(false, `closed ${code}`)
    })
  })
}

function sleep (ms) { return new Promise((resolve) => setTimeout(resolve, ms)) }

async function main () {
  const t0 = performance.now()
  const deadline = t0 + TIMEOUT_S * 1000
  let next = 0
  const progress = setInterval(() => emit({ event: 'progress', seconds: (performance.now() - t0) / 1000, synced, failed, inflight }), 1000)
  await new Promise((resolve) => {
    const pump = () => {
      while (inflight < CONCURRENCY && next < COUNT && performance.now() < deadline) {
        const i = next++
        inflight++
        open(i).then(() => { inflight--; pump() })
      }
      if (inflight === 0 && (next >= COUNT || performance.now() >= deadline)) resolve()
      else if (inflight === 0) setTimeout(pump, 10)
    }
    pump()
  })
  clearInterval(progress)
  const rampSeconds = ((lastSyncedAt || performance.now()) - t0) / 1000
  emit({
    event: 'held', attempted: next, synced, failed, ramp_seconds: rampSeconds,
    connects_per_s: rampSeconds > 0 ? synced / rampSeconds : null, errors, timed_out: next < COUNT
  })
  const released = new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin })
    rl.on('line', (line) => { if (line.trim() === 'release') resolve('release') })
    rl.on('close', () => resolve('stdin closed'))
  })
  const why = await Promise.race([released, sleep(HOLD_MAX_S * 1000).then(() => 'hold-max')])
  const stillOpen = conns.filter((c) => c.synced && c.ws.readyState === WebSocket.OPEN).length
  emit({
    event: 'result', ok: true, attempted: next, synced, failed, still_open: stillOpen, closed_after_sync: closedAfterSync,
    close_codes: closeCodes, errors, ramp_seconds: rampSeconds, connects_per_s: rampSeconds > 0 ? synced / rampSeconds : null,
    released_by: why
  })
  for (const c of conns) { try { c.ws.terminate() } catch {} }
  setTimeout(() => process.exit(0), 200)
}


main().catch((err) => {
  console.error(err)
  emit({ event: 'result', ok: false, error: String((err && err.stack) || err) })
  process.exit(1)
})
