// Prints what Vite's own loadEnv(mode, dir, '') gives for the keys asked (tests/test_envfiles.py).
// usage: node loadenv-probe.mjs MODE DIR '["KEY", ...]'
import { loadEnv } from 'vite';

const [mode, dir, keys] = process.argv.slice(2);
const env = loadEnv(mode, dir, '');
const out = {};
for (const k of JSON.parse(keys)) out[k] = env[k] ?? null;
console.log(JSON.stringify(out));
