// Clients from the libraries people use, for tests/test_peer_libraries.py.
//
//   node lib-clients.mjs ws URL [--origin O] [--protocol P]...
//   node lib-clients.mjs gql URL [--token T]   graphql-ws client: subscribe { greetings }
//   node lib-clients.mjs gql-legacy URL        subscriptions-transport-ws client, same
//   node lib-clients.mjs socketio URL          socket.io-client: emit 'hello', wait for the upgrade
//   node lib-clients.mjs socketio-v2 URL/PATH [--websocket-only]  socket.io-client 2.x with that path: emit 'hello'
//
// Each reports JSON lines on stdout and exits when it is done:
//   {"event": "open", ...} / {"event": "response", "status": 401, "headers": {...}, "body": "..."}
//   {"event": "error", "message": ...} / {"event": "close", "code": 1002, "reason": ...}
//   {"event": "result", ...} / {"event": "done"}
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    origin: { type: 'string' },
    protocol: { type: 'string', multiple: true, default: [] },
    token: { type: 'string' },
    'websocket-only': { type: 'boolean', default: false },
  },
});
const [mode, url] = positionals;
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const finish = (code = 0) => { out({ event: 'done' }); setTimeout(() => process.exit(code), 10); };
setTimeout(() => { out({ event: 'error', message: 'client gave up after 20 s' }); finish(1); }, 20000);

function wsClient() {
  const ws = new WebSocket(url, values.protocol, values.origin ? { origin: values.origin } : {});
  ws.on('unexpected-response', (req, res) => {
    let body = '';
    res.on('data', (c) => { body += c; });
    res.on('end', () => {
      out({ event: 'response', status: res.statusCode, headers: res.headers, body: body.slice(0, 2000) });
      finish();
    });
  });
  ws.on('upgrade', (res) => out({ event: 'upgrade', status: res.statusCode, headers: res.headers }));
  ws.on('open', () => {
    out({ event: 'open', protocol: ws.protocol });
    ws.send('ping from ws client');
  });
  ws.on('message', (data) => {
    out({ event: 'message', text: data.toString() });
    ws.close(1000);
  });
  ws.on('error', (err) => { out({ event: 'error', message: String(err.message) }); });
  ws.on('close', (code, reason) => { out({ event: 'close', code, reason: reason.toString() }); finish(); });
}

async function gqlClient() {
  const { createClient } = await import('graphql-ws');
  const client = createClient({
    url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true,
    connectionParams: values.token ? { token: values.token } : undefined,
    on: {
      connected: (socket) => out({ event: 'open', protocol: socket.protocol }),
      closed: (e) => out({ event: 'close', code: e.code, reason: String(e.reason ?? '') }),
    },
  });
  const results = [];
  client.subscribe({ query: 'subscription { greetings }' }, {
    next: (r) => { results.push(r.data?.greetings); out({ event: 'result', data: r.data ?? null }); },
    error: (e) => {
      out({ event: 'error', message: String(e?.message ?? e?.reason ?? e?.code ?? e) });
      finish();
    },
    complete: () => { out({ event: 'complete', results }); client.dispose(); finish(); },
  });
}

async function gqlLegacyClient() {
  const { SubscriptionClient } = await import('subscriptions-transport-ws');
  const client = new SubscriptionClient(url, { reconnect: false }, WebSocket);
  client.onConnected(() => out({ event: 'open', protocol: client.client?.protocol }));
  client.onDisconnected(() => out({ event: 'close' }));
  const results = [];
  client.request({ query: 'subscription { greetings }' }).subscribe({
    next: (r) => { results.push(r.data?.greetings); out({ event: 'result', data: r.data ?? null }); },
    error: (e) => { out({ event: 'error', message: String(e?.message ?? e) }); finish(); },
    complete: () => { out({ event: 'complete', results }); client.close(); finish(); },
  });
}

async function socketioClient() {
  const { io } = await import('socket.io-client');
  // A URL ending in /socket.io names the path (as socketio-v2 does), not a namespace.
  const u = new URL(url);
  const socket = u.pathname.endsWith('socket.io')
    ? io(u.origin, { path: u.pathname, reconnection: false, timeout: 10000 })
    : io(url, { reconnection: false, timeout: 10000 });
  socket.on('connect', () => {
    out({ event: 'open', transport: socket.io.engine.transport.name });
  });
  socket.io.engine.on('upgrade', (t) => {
    out({ event: 'upgrade', transport: t.name });
    socket.emit('hello', 'hi', (ack) => { out({ event: 'result', ack }); socket.close(); finish(); });
  });
  socket.on('connect_error', (err) => { out({ event: 'error', message: String(err.message) }); finish(); });
}

async function socketioV2Client() {
  // socket.io-client 2.x (npm alias socket.io-client-v2): Engine.IO protocol 3.
  const { default: io } = await import('socket.io-client-v2');
  const u = new URL(url);
  const transports = values['websocket-only'] ? ['websocket'] : ['polling', 'websocket'];
  const socket = io(u.origin, { path: u.pathname, reconnection: false, timeout: 10000, transports });
  socket.on('connect', () => {
    socket.emit('hello', 'v2', (ack) => { out({ event: 'result', ack }); socket.close(); finish(); });
  });
  socket.on('connect_error', (err) => {
    out({ event: 'error', message: String(err?.message ?? err), status: err?.description ?? null });
    finish();
  });
}

const modes = { ws: wsClient, gql: gqlClient, 'gql-legacy': gqlLegacyClient, socketio: socketioClient,
                'socketio-v2': socketioV2Client };
if (!modes[mode]) {
  out({ event: 'error', message: `unknown mode ${mode}` });
  process.exit(2);
}
await modes[mode]();
