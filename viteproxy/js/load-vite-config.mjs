// Load a project's vite.config.* with the project's own Vite (its config
// loader: TypeScript, ESM/CJS, defineConfig, env files) and print the parts
// viteproxy imports as JSON on stdout. Functions are printed as their source
// text, so that Python can translate the common forms.
//
// usage: node load-vite-config.mjs PROJECT_DIR [CONFIG_FILE] [MODE]
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [projectDir, configFile, mode] = process.argv.slice(2);
const root = path.resolve(projectDir || '.');

function fail(code, message) {
  process.stdout.write(JSON.stringify({ error: { code, message } }) + '\n');
  process.exit(0);
}

let vitePath;
try {
  vitePath = createRequire(path.join(root, 'package.json')).resolve('vite');
} catch (e) {
  fail('VITE_NOT_FOUND', `Vite is not installed in ${root}: run npm install there (or npm install -D vite)`);
}

function plain(value, seen = new Set()) {
  if (typeof value === 'function') return { __function__: value.toString() };
  if (value instanceof RegExp) return { __regexp__: value.source, flags: value.flags };
  if (value instanceof URL) return value.href;
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return { __unsupported__: 'circular reference' };
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => plain(v, seen));
  const ctor = value.constructor && value.constructor.name;
  if (ctor && ctor !== 'Object') return { __unsupported__: `a ${ctor} object` };
  const out = {};
  for (const [k, v] of Object.entries(value)) out[k] = plain(v, seen);
  return out;
}

const vite = await import(pathToFileURL(vitePath).href);
let loaded;
try {
  loaded = await vite.loadConfigFromFile(
    { command: 'serve', mode: mode || 'development', isSsrBuild: false, isPreview: false },
    configFile ? path.resolve(root, configFile) : undefined,
    root,
    'silent',
  );
} catch (e) {
  fail('VITE_CONFIG_ERROR', String((e && e.message) || e));
}
if (!loaded) fail('VITE_CONFIG_NOT_FOUND', `no vite.config.* in ${root}`);
const server = loaded.config.server || {};
process.stdout.write(JSON.stringify({
  file: loaded.path,
  vite: vite.version,
  server: { port: server.port ?? null, host: server.host ?? null, https: !!server.https,
            proxy: plain(server.proxy || {}) },
}) + '\n');
