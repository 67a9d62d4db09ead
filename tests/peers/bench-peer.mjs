// Load client, backend and Vite-like proxy for scripts/bench (Node: fast enough not to be the bottleneck).
//
//   node bench-peer.mjs backend PORT              WebSocket /ws/sink (ack every Nth), /ws/echo; GET /api/*
//   node bench-peer.mjs proxy PORT BACKEND_PORT   http-proxy-3 set up as Vite 8's server.proxy does
//   node bench-peer.mjs pipeline URL N SIZE WINDOW     -> {"msgs_per_s": ...}
//   node bench-peer.mjs rtt URL N SIZE                 -> {"median_ms": ..., "p99_ms": ...}
//   node bench-peer.mjs fanout URL CONNS ECHOES SIZE   -> {"msgs_per_s": ..., "seconds": ...}
//   node bench-peer.mjs memory URL N SIZE WINDOW       prints "warm" after a warm-up on the connection,
//                                                      waits for a line on stdin, then runs N messages
//
// Every client prints one JSON line on stdout and exits 0, or prints the error and exits 1.
import http from "node:http";
import { WebSocket, WebSocketServer } from "ws";

const [mode, ...args] = process.argv.slice(2);
const BODY = Buffer.from('{"id": 1, "name": "bench", "ok": true}\n');
const fail = (e) => { console.error(String(e && e.stack || e)); process.exit(1); };

function backend(port) {
  const server = http.createServer((req, res) => {
    // One write: headers and body together (Python's http.server sends two, which with
    // Nagle and delayed ACK caps a keep-alive connection near 25 requests/s).
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": BODY.length });
    res.end(BODY);
  });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 0 });
  server.on("upgrade", (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      const url = new URL(req.url, "http://x");
      if (url.pathname.startsWith("/ws/sink")) {
        // Counts messages; every `ack`-th it answers with the count (flow control for the client).
        const ack = Number(url.searchParams.get("ack") || 1000);
        let n = 0;
        ws.on("message", () => { n += 1; if (n % ack === 0) ws.send(String(n)); });
      } else {
        ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
      }
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(port, "127.0.0.1", () => console.log("ready"));
}

function proxy(port, backendPort) {
  // What Vite 8 does with `server.proxy: {'/ws': {target, ws: true}, '/api': target}`:
  // one http-proxy-3 server per rule (a string rule means changeOrigin: true),
  // prefix matching in order, web requests from a middleware, upgrades from the
  // http server's 'upgrade' event.
  return import("http-proxy-3").then(({ createProxyServer }) => {
    const target = `http://127.0.0.1:${backendPort}`;
    const rules = [
      ["/ws", { target, ws: true }],
      ["/api", { target, changeOrigin: true }],
    ].map(([prefix, opts]) => {
      const p = createProxyServer(opts);
      p.on("error", (err, _req, res) => {
        if (res && "req" in res && !res.headersSent) res.writeHead(502).end();
        else if (res && res.end) res.end();
      });
      return { prefix, opts, p };
    });
    const server = http.createServer((req, res) => {
      const r = rules.find((x) => req.url.startsWith(x.prefix));
      if (!r) { res.writeHead(404).end(); return; }
      r.p.web(req, res, {});
    });
    server.on("upgrade", (req, socket, head) => {
      const r = rules.find((x) => req.url.startsWith(x.prefix) && x.opts.ws);
      if (!r) { socket.destroy(); return; }
      r.p.ws(req, socket, head);
    });
    server.listen(port, "127.0.0.1", () => console.log("ready"));
  });
}

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
    ws.on("open", () => resolve(ws));
    ws.on("error", reject);
  });
}

async function pipeline(url, n, size, window) {
  // Up to two windows unacknowledged: the proxy always has data to read.
  n = Math.max(window, n - (n % window));  // whole windows: the last ack is for the last message
  const ws = await open(`${url}?ack=${window}`);
  const payload = "x".repeat(size);
  let sent = 0;
  const sendWindow = () => {
    const stop = Math.min(n, sent + window);
    while (sent < stop) { ws.send(payload); sent += 1; }
  };
  const t0 = process.hrtime.bigint();
  await new Promise((resolve) => {
    ws.on("message", (data) => {
      const acked = Number(data.toString());
      if (acked >= n) resolve();
      else if (sent < n) sendWindow();
    });
    sendWindow();
    sendWindow();
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  ws.close();
  console.log(JSON.stringify({ msgs_per_s: n / seconds, seconds }));
}

async function memory(url, n, size, window) {
  // One connection: a warm-up, then (when the caller has read the RSS) n messages on it.
  const ws = await open(`${url}?ack=${window}`);
  const payload = "m".repeat(size);
  let target = 0, sent = 0, done = null;
  ws.on("message", (data) => {
    const acked = Number(data.toString());
    if (acked >= target) done();
    else if (sent < target) burst();
  });
  const burst = () => { const stop = Math.min(target, sent + window); while (sent < stop) { ws.send(payload); sent += 1; } };
  const run = (count) => new Promise((resolve) => { done = resolve; target += count; burst(); burst(); });
  await run(window * 4);
  console.log("warm");
  await new Promise((resolve) => process.stdin.once("data", resolve));
  n = Math.max(window, n - (n % window));
  const t0 = process.hrtime.bigint();
  await run(n);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  ws.close();
  console.log(JSON.stringify({ msgs_per_s: n / seconds, seconds }));
}

async function rtt(url, n, size) {
  const ws = await open(url);
  const payload = "r".repeat(size);
  const times = [];
  let resolveOne;
  ws.on("message", () => resolveOne());
  for (let i = 0; i < n + 20; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise((resolve) => { resolveOne = resolve; ws.send(payload); });
    if (i >= 20) times.push(Number(process.hrtime.bigint() - t0) / 1e6);  // 20 warm-up round trips
  }
  ws.close();
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  console.log(JSON.stringify({ median_ms: at(0.5), p99_ms: at(0.99) }));
}

async function fanout(url, conns, echoes, size) {
  const payload = "f".repeat(size);
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: conns }, async () => {
    const ws = await open(url);
    let resolveOne;
    ws.on("message", () => resolveOne());
    for (let i = 0; i < echoes; i++) {
      await new Promise((resolve) => { resolveOne = resolve; ws.send(payload); });
    }
    ws.close();
  }));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ msgs_per_s: conns * echoes / seconds, seconds }));
}

const num = (i) => Number(args[i]);
try {
  if (mode === "backend") backend(num(0));
  else if (mode === "proxy") await proxy(num(0), num(1));
  else if (mode === "pipeline") await pipeline(args[0], num(1), num(2), num(3));
  else if (mode === "rtt") await rtt(args[0], num(1), num(2));
  else if (mode === "fanout") await fanout(args[0], num(1), num(2), num(3));
  else if (mode === "memory") await memory(args[0], num(1), num(2), num(3));
  else fail(`unknown mode ${mode}`);
  if (mode !== "backend" && mode !== "proxy") process.exit(0);
} catch (e) {
  fail(e);
}
