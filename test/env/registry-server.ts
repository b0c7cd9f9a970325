import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { dump } from 'js-yaml';
import type { Started } from './global-setup.js';
import type { RegistryGround } from './ground.js';
import { spawnServer, stopAll, waitFor, waitForUrl, type ServerProcess } from './processes.js';
import { startTokenServer, type TokenServer } from './token-server.js';

const run = promisify(execFile);

const REGISTRY_BIN = '/usr/bin/docker-registry';
const TOKEN_SERVICE = 'deployer-test-registry';
const TOKEN_ISSUER = 'deployer-test-token-server';
/** Short, so that token expiry is real within a test run; still longer than any single test needs. */
const TOKEN_LIFETIME_SECONDS = 30;

type Flavour = 'anonymous' | 'basic' | 'bearer';

/**
 * Starts one docker-registry (distribution 2.8) on `127.0.0.1:0`, filesystem storage under `dir`, deletes enabled;
 * the port is read from its "listening on" log line (no race for a free port).
 */
async function startRegistry(
  flavour: Flavour,
  dir: string,
  logsDir: string,
  auth: Record<string, unknown> | undefined,
): Promise<{ host: string; process: ServerProcess }> {
  const root = join(dir, flavour);
  mkdirSync(join(root, 'data'), { recursive: true });
  const config = {
    version: 0.1,
    log: { level: 'info', formatter: 'text', fields: { service: `registry-${flavour}` } },
    storage: {
      filesystem: { rootdirectory: join(root, 'data') },
      delete: { enabled: true },
      cache: { blobdescriptor: 'inmemory' },
    },
    http: { addr: '127.0.0.1:0', secret: `deployer-test-${flavour}`, headers: { 'X-Content-Type-Options': ['nosniff'] } },
    ...(auth === undefined ? {} : { auth }),
  };
  const configFile = join(root, 'config.yml');
  writeFileSync(configFile, dump(config));

  const process = spawnServer({
    name: `registry-${flavour}`,
    command: REGISTRY_BIN,
    args: ['serve', configFile],
    logsDir,
    cwd: root,
  });
  let host = '';
  try {
    await waitFor(
      () => {
        const match = /listening on (127\.0\.0\.1:\d+)/.exec(readFileSync(process.logFile, 'utf8'));
        if (match?.[1] !== undefined) host = match[1];
        return Promise.resolve(host !== '');
      },
      { what: `registry-${flavour} to listen`, process, timeoutMs: 30_000, intervalMs: 100 },
    );
    await waitForUrl(`http://${host}/v2/`, {
      what: `registry-${flavour} to answer GET /v2/`,
      process,
      timeoutMs: 30_000,
      ok: (status) => status === 200 || status === 401,
    });
  } catch (err) {
    await process.stop();
    throw err;
  }
  return { host, process };
}

/**
 * The registry part of the test ground: three registries on loopback, plain http:
 * - anonymous: no authentication;
 * - basic: htpasswd (bcrypt) basic auth;
 * - bearer: token auth, fronted by the token server of `token-server.ts` (basic credentials at the realm).
 */
export async function startRegistries(dir: string, logsDir: string): Promise<Started<RegistryGround>> {
  mkdirSync(dir, { recursive: true });
  const processes: ServerProcess[] = [];
  let tokenServer: TokenServer | undefined;
  const stop = async (): Promise<void> => {
    await stopAll(processes);
    await tokenServer?.stop().catch(() => undefined);
  };

  try {
    const basicUser = { username: 'ci-basic', password: 'basic-secret-1' };
    const bearerUser = { username: 'ci-bearer', password: 'bearer-secret-2' };

    const { stdout: htpasswdLine } = await run('htpasswd', ['-Bbn', basicUser.username, basicUser.password]);
    const htpasswdFile = join(dir, 'htpasswd');
    writeFileSync(htpasswdFile, htpasswdLine.trim() + '\n');

    const keyFile = join(dir, 'token-key.pem');
    const certFile = join(dir, 'token-cert.pem');
    await run('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-noenc', '-keyout', keyFile, '-out', certFile,
      '-days', '2', '-subj', '/CN=deployer test token issuer',
    ]);
    tokenServer = await startTokenServer({
      service: TOKEN_SERVICE,
      issuer: TOKEN_ISSUER,
      users: { [bearerUser.username]: bearerUser.password },
      keyPem: readFileSync(keyFile, 'utf8'),
      certPem: readFileSync(certFile, 'utf8'),
      expiresInSeconds: TOKEN_LIFETIME_SECONDS,
    });
    const realm = tokenServer.realm;

    const started = await Promise.allSettled([
      startRegistry('anonymous', dir, logsDir, undefined),
      startRegistry('basic', dir, logsDir, { htpasswd: { realm: 'deployer-test', path: htpasswdFile } }),
      startRegistry('bearer', dir, logsDir, {
        token: { realm, service: TOKEN_SERVICE, issuer: TOKEN_ISSUER, rootcertbundle: certFile },
      }),
    ]);
    for (const s of started) if (s.status === 'fulfilled') processes.push(s.value.process);
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const [anonymous, basic, bearer] = started.map((s) => (s as PromiseFulfilledResult<{ host: string }>).value.host);

    return {
      info: {
        anonymous: anonymous!,
        basic: { host: basic!, ...basicUser },
        bearer: { host: bearer!, ...bearerUser, realm },
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
