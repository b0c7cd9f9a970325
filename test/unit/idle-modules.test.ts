import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * What a freshly started deployer holds in memory is mostly the code it loaded (each module costs heap, and Node's
 * bookkeeping per module more). These libraries are needed only by some requests or some configurations, and must
 * not be loaded by a start, even with Bugsnag and Slack configured: the bench measures what they would cost.
 */
const NOT_AT_START: ReadonlyArray<{ what: string; pattern: RegExp }> = [
  { what: 'Ajv (Fastify validates with zod here)', pattern: /node_modules\/(ajv|@fastify\/ajv-compiler)\// },
  // Fastify's prebuilt error serializer needs fast-json-stringify/lib/serializer.js; its schema compiler is the rest.
  {
    what: 'the fast-json-stringify compiler (no route has a response schema)',
    pattern: /node_modules\/(fast-json-stringify\/index\.js|@fastify\/fast-json-stringify-compiler\/)/,
  },
  { what: '@kubernetes/client-node (only for exec plugins and auth providers)', pattern: /node_modules\/@kubernetes\/client-node\// },
  { what: 'the Bugsnag client', pattern: /node_modules\/@bugsnag\// },
  { what: 'the Slack client', pattern: /node_modules\/@slack\// },
  { what: 'the GitHub client', pattern: /node_modules\/@octokit\// },
  { what: 'the CLI', pattern: /\/src\/cli\// },
];

/** Starts the deployer's composition root in a child process and lists every file and builtin it loaded. */
const CHILD = `
import { createRequire, registerHooks } from 'node:module';
const files = [];
registerHooks({ load(url, context, next) { files.push(url); return next(url, context); } });
const { parseConfig } = await import('./src/config/load.ts');
const { wire } = await import('./src/wire.ts');
const { pino } = await import('pino');
const config = parseConfig(JSON.parse(process.env.IDLE_CONFIG), {});
const { app } = wire({ config, logger: pino({ level: 'silent' }), version: 'test' });
await app.ready();
files.push(...Object.keys(createRequire(import.meta.url).cache));
process.stdout.write(JSON.stringify({ files, builtins: process.moduleLoadList }));
await app.close();
`;

const work = mkdtempSync(join(tmpdir(), 'deployer-idle-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('a started deployer (wire and app ready, no request yet)', () => {
  it('has not loaded the libraries that only some requests or configurations need', async () => {
    const kubeconfig = join(work, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:9' } }],
        users: [{ name: 'u', user: { token: 'x' } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'c',
      }),
    );
    const config = {
      tokens: { ops: { secret: { value: 'ops-secret' } } },
      services: { web: { repository: { url: 'https://git.example.com/web.git' }, namespace: 'web' } },
      kubernetes: { kubeconfig },
      cache: { dir: join(work, 'cache') },
      reports: {
        bugsnag: { apiKey: { value: '0123456789abcdef0123456789abcdef' } },
        slack: { webhookUrl: { value: 'https://hooks.slack.example.com/services/T/B/x' } },
      },
    };

    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
      cwd: process.cwd(),
      env: { ...process.env, IDLE_CONFIG: JSON.stringify(config) },
      maxBuffer: 16 * 1024 * 1024,
    });
    const loaded = JSON.parse(stdout) as { files: string[]; builtins: string[] };

    // The listing works: the libraries a start does need are in it.
    expect(loaded.files.some((f) => f.includes('/node_modules/fastify/'))).toBe(true);
    expect(loaded.files.some((f) => f.includes('/src/wire.ts'))).toBe(true);
    const found = NOT_AT_START.filter(({ pattern }) => loaded.files.some((f) => pattern.test(f))).map(({ what }) => what);
    expect(found).toEqual([]);
    // Node's bundled undici (fetch, WebSocket): an ESM import of node:http loads it through http's WebSocket getter.
    expect(loaded.builtins.filter((m) => m.includes('undici'))).toEqual([]);
  });
});
