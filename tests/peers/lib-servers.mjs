// Backends written the way their libraries' own READMEs write them, for the
// diagnosis tests (tests/test_peer_libraries.py).
//
//   node lib-servers.mjs NAME [NAME...]
//
// starts each named server on an ephemeral port and prints ONE JSON line:
//   {"event": "listening", "ports": {"ws-verify": 40001, ...}}
// then reports each connection as {"event": "connection", "server": NAME, ...}.
// Every server listens on 127.0.0.1, except ws-v6, which listens on ::1 only.
//
//   ws-verify     ws with verifyClient: the Origin must be the server's own origin
//   ws-page-origin ws with verifyClient allowing only the page's origin, http://localhost:5173
//   ws-path       ws with {server, path: '/ws'}: other paths get ws's own answer
//   ws-app        ws with {server, path: '/app/live'}: a socket below the prefix of a rule without rewrite
//   ws-noserver   ws's README routing: noServer + 'upgrade' on /live, socket.destroy() elsewhere
//   ws-v6         ws echo on [::1] only
//   express       Express (GET /hello) and ws at /ws on the same http server
//   socketio      Socket.IO v4: 'hello' is acknowledged with the transport in use
//   socketio-b    a second instance of socketio (for a target list)
//   socketio-eio3 the same with allowEIO3: true (Socket.IO v2 clients accepted)
//   gql           graphql-ws (graphql-transport-ws) at /graphql
//   gql-legacy    subscriptions-transport-ws (legacy 'graphql-ws' protocol) at /graphql
//   gql-auth      graphql-ws at /graphql whose onConnect wants connectionParams {token: 'secret'}
import { createServer } from 'node:http';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

function echo(name, ws, req) {
  out({ event: 'connection', server: name, path: req.url, protocol: ws.protocol, origin: req.headers.origin ?? null });
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

function plainHttp() {
  return createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`http ok ${req.url}\n`);
  });
}

async function listen(server, host = '127.0.0.1') {
  server.listen(0, host);
  await once(server, 'listening');
  return server.address().port;
}

const makers = {
  async 'ws-verify'() {
    const server = plainHttp();
    let port = 0;
    const wss = new WebSocketServer({
      server,
      // The check tutorials show: accept only the app's own origin.
      verifyClient: (info) => info.origin === `http://127.0.0.1:${port}`,
    });
    wss.on('connection', (ws, req) => echo('ws-verify', ws, req));
    port = await listen(server);
    return port;
  },
  async 'ws-page-origin'() {
    const server = plainHttp();
    // The other allow-list tutorials show: the dev server's page origin.
    const wss = new WebSocketServer({ server, verifyClient: (info) => info.origin === 'http://localhost:5173' });
    wss.on('connection', (ws, req) => echo('ws-page-origin', ws, req));
    return listen(server);
  },
  async 'ws-path'() {
    const server = plainHttp();
    const wss = new WebSocketServer({ server, path: '/ws' });
    wss.on('connection', (ws, req) => echo('ws-path', ws, req));
    return listen(server);
  },
  async 'ws-app'() {
    const server = plainHttp();
    const wss = new WebSocketServer({ server, path: '/app/live' });
    wss.on('connection', (ws, req) => echo('ws-app', ws, req));
    return listen(server);
  },
  async 'ws-noserver'() {
    const server = plainHttp();
    const wss = new WebSocketServer({ noServer: true });
    wss.on('connection', (ws, req) => echo('ws-noserver', ws, req));
    server.on('upgrade', (request, socket, head) => {
      const { pathname } = new URL(request.url, 'ws://base.url');
      if (pathname === '/live') {
        wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
      } else {
        socket.destroy();
      }
    });
    return listen(server);
  },
  async 'ws-v6'() {
    const server = plainHttp();
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws, req) => echo('ws-v6', ws, req));
    return listen(server, '::1');
  },
  async express() {
    const { default: express } = await import('express');
    const app = express();
    app.get('/hello', (req, res) => res.json({ hello: 'from express', url: req.url }));
    const server = createServer(app);
    const wss = new WebSocketServer({ server, path: '/ws' });
    wss.on('connection', (ws, req) => echo('express', ws, req));
    return listen(server);
  },
  async socketio() {
    const { Server } = await import('socket.io');
    // A page for the browser test: socket.io's own client script, served by the server.
    const server = createServer((req, res) => {
      if (req.url !== '/sio.html') return;
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><script src="/socket.io/socket.io.js"></script><script>
        const socket = io({ reconnection: false });
        socket.io.engine.on('upgrade', (t) => {
          socket.emit('hello', 'from chromium', (ack) => { window.result = ack; });
        });
        socket.on('connect_error', (e) => { window.result = { error: String(e.message) }; });
      </script>`);
    });
    const io = new Server(server);
    io.on('connection', (socket) => {
      out({ event: 'connection', server: 'socketio', transport: socket.conn.transport.name });
      socket.on('hello', (data, ack) => ack({ echo: data, transport: socket.conn.transport.name }));
    });
    return listen(server);
  },
  async 'socketio-eio3'() {
    // The documented way to let Socket.IO v2 clients (Engine.IO 3) in.
    const { Server } = await import('socket.io');
    const server = createServer();
    const io = new Server(server, { allowEIO3: true });
    io.on('connection', (socket) => {
      out({ event: 'connection', server: 'socketio-eio3', transport: socket.conn.transport.name });
      socket.on('hello', (data, ack) => ack({ echo: data, transport: socket.conn.transport.name }));
    });
    return listen(server);
  },
  async gql() {
    const { useServer } = await import('graphql-ws/use/ws');
    const server = plainHttp();
    const wss = new WebSocketServer({ server, path: '/graphql' });
    wss.on('connection', (ws, req) => out({ event: 'connection', server: 'gql', protocol: ws.protocol }));
    useServer({ schema: await schema(), roots: await roots() }, wss);
    return listen(server);
  },
  async 'gql-auth'() {
    const { useServer } = await import('graphql-ws/use/ws');
    const server = plainHttp();
    const wss = new WebSocketServer({ server, path: '/graphql' });
    useServer({ schema: await schema(), roots: await roots(),
                onConnect: (ctx) => ctx.connectionParams?.token === 'secret' }, wss);
    return listen(server);
  },
  async 'gql-legacy'() {
    const { SubscriptionServer } = await import('subscriptions-transport-ws');
    const { execute, subscribe } = await import('graphql');
    const server = plainHttp();
    await listen(server);
    const s = await schema();
    const rootValue = await roots();
    SubscriptionServer.create(
      { schema: s, execute, subscribe, rootValue: rootValue.subscription,
        onConnect: () => { out({ event: 'connection', server: 'gql-legacy' }); return true; } },
      { server, path: '/graphql' },
    );
    return server.address().port;
  },
};

async function schema() {
  const { buildSchema } = await import('graphql');
  return buildSchema('type Query { hello: String } type Subscription { greetings: String }');
}

async function roots() {
  return {
    query: { hello: () => 'world' },
    subscription: {
      greetings: async function* greetings() {
        for (const hi of ['Hi', 'Bonjour', 'Hola']) yield { greetings: hi };
      },
    },
  };
}

makers['socketio-b'] = makers.socketio;

const ports = {};
for (const name of process.argv.slice(2)) {
  if (!makers[name]) {
    out({ event: 'error', message: `unknown server ${name}` });
    process.exit(2);
  }
  ports[name] = await makers[name]();
}
out({ event: 'listening', ports });
// Stop when the test closes stdin.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
