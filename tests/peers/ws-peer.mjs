// A Node `ws` peer for the cross-implementation tests (tests/test_peer_node_ws.py).
//
//   node ws-peer.mjs server --port 0 [--deflate on|off]
//   node ws-peer.mjs client --url ws://127.0.0.1:PORT/path [--deflate on|off] [--protocol p]...
//
// Driven by JSON lines on stdin, one command each:
//   {"op": "send", "data": "text" | "gen": {"kind": "text"|"random", "size": N},
//    "binary": false, "fin": true, "conn": N}     fin false sends a fragment
//   {"op": "ping", "data": "x", "conn": N}
//   {"op": "close", "code": 4001, "reason": "bye", "conn": N}
// and reporting as JSON lines on stdout: listening, open, message, ping, pong,
// close, sent, error. Messages are reported by size and sha256 (and text when
// short) so that large payloads are compared without being printed. `conn`
// defaults to the latest connection.
import { createHash, randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string', default: '0' },
    url: { type: 'string' },
    deflate: { type: 'string', default: 'off' },
    protocol: { type: 'string', multiple: true, default: [] },
  },
});
const mode = positionals[0];
// threshold 0: compress every message, small ones included, so that a proxy
// that mishandled compression would garble them all.
const deflate = values.deflate === 'on' ? { threshold: 0 } : false;

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
const conns = new Map();
let latest = 0;

function watch(ws, conn, extra) {
  conns.set(conn, ws);
  latest = conn;
  ws.on('message', (data, isBinary) => {
    const buf = Buffer.isBuffer(data) ? data : Buffer.concat([].concat(data));
    const msg = { event: 'message', conn, binary: isBinary, size: buf.length, sha256: sha256(buf) };
    if (!isBinary && buf.length <= 256) msg.text = buf.toString('utf8');
    out(msg);
  });
  ws.on('ping', (data) => out({ event: 'ping', conn, data: data.toString('utf8') }));
  ws.on('pong', (data) => out({ event: 'pong', conn, data: data.toString('utf8') }));
  ws.on('close', (code, reason) => out({ event: 'close', conn, code, reason: reason.toString('utf8') }));
  ws.on('error', (err) => out({ event: 'error', conn, message: String(err && err.message) }));
  out({ event: 'open', conn, protocol: ws.protocol, extensions: ws.extensions, ...extra });
}

function payload(cmd) {
  if (cmd.gen) {
    if (cmd.gen.kind === 'random') return randomBytes(cmd.gen.size);
    const unit = Buffer.from('viteproxy compresses well; ');
    return Buffer.alloc(cmd.gen.size, unit);
  }
  return Buffer.from(cmd.data ?? '', 'utf8');
}

function run(cmd) {
  const conn = cmd.conn ?? latest;
  const ws = conns.get(conn);
  if (!ws) return out({ event: 'error', conn, message: `no connection ${conn}` });
  if (cmd.op === 'send') {
    const buf = payload(cmd);
    ws.send(buf, { binary: !!cmd.binary, fin: cmd.fin ?? true }, (err) => {
      if (err) out({ event: 'error', conn, message: String(err.message) });
    });
    out({ event: 'sent', conn, size: buf.length, sha256: sha256(buf), fin: cmd.fin ?? true });
  } else if (cmd.op === 'ping') {
    ws.ping(Buffer.from(cmd.data ?? ''));
  } else if (cmd.op === 'close') {
    ws.close(cmd.code, cmd.reason);
  } else {
    out({ event: 'error', conn, message: `unknown op ${cmd.op}` });
  }
}

if (mode === 'server') {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(values.port), perMessageDeflate: deflate });
  let next = 0;
  wss.on('listening', () => out({ event: 'listening', port: wss.address().port }));
  wss.on('connection', (ws, req) => watch(ws, ++next, { path: req.url, offered: req.headers['sec-websocket-extensions'] ?? '' }));
} else if (mode === 'client') {
  const ws = new WebSocket(values.url, values.protocol, { perMessageDeflate: deflate });
  ws.on('unexpected-response', (req, res) => out({ event: 'unexpected-response', status: res.statusCode }));
  ws.on('open', () => watch(ws, 1, {}));
  ws.on('error', (err) => { if (!conns.size) out({ event: 'error', conn: 1, message: String(err.message) }); });
} else {
  process.stderr.write('usage: ws-peer.mjs server|client [options]\n');
  process.exit(2);
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => { if (line.trim()) run(JSON.parse(line)); });
// the test closing our stdin means it is done with us
rl.on('close', () => process.exit(0));
