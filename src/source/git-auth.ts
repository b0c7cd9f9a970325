import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RepositoryCredentials } from '../config/load.js';

/** A repository URL split into what may be stored and shown, and credentials that were embedded in it. */
export interface RemoteUrl {
  /** The URL without user information for http(s): what the cache stores, hashes and shows in messages. */
  readonly url: string;
  readonly transport: 'http' | 'ssh' | 'file' | 'other';
  /** `scheme://host:port` of an http(s) URL: the credentials header is only sent there. */
  readonly origin?: string | undefined;
  readonly embeddedUsername?: string | undefined;
  readonly embeddedPassword?: string | undefined;
}

export function parseRemoteUrl(raw: string): RemoteUrl {
  if (/^https?:\/\//i.test(raw)) {
    const u = new URL(raw);
    const embeddedUsername = u.username === '' ? undefined : decodeURIComponent(u.username);
    const embeddedPassword = u.password === '' ? undefined : decodeURIComponent(u.password);
    u.username = '';
    u.password = '';
    return { url: u.toString(), transport: 'http', origin: u.origin, embeddedUsername, embeddedPassword };
  }
  if (/^ssh:\/\//i.test(raw) || /^[A-Za-z0-9._-]+@[^:/]+:/.test(raw)) return { url: raw, transport: 'ssh' };
  if (/^file:\/\//i.test(raw) || raw.startsWith('/')) return { url: raw, transport: 'file' };
  return { url: raw, transport: 'other' };
}

/** What one git call needs to authenticate: environment entries, values to scrub from its output, and clean-up. */
export interface CallAuth {
  readonly env: Readonly<Record<string, string>>;
  readonly secrets: readonly string[];
  dispose(): Promise<void>;
}

/** The username sent with a token when none is configured; GitHub, Gitea and others accept any name with a token. */
const TOKEN_USERNAME = 'x-access-token';

/**
 * Credentials for one call, never stored: an HTTPS `Authorization: Basic` header scoped to the repository's origin
 * and given through `GIT_CONFIG_*` environment entries (not `-c`, which the process list would show to every local
 * user), or an SSH key and known_hosts written to 0600 files in a private temporary directory for the call.
 */
export async function callAuth(remote: RemoteUrl, credentials: RepositoryCredentials | undefined): Promise<CallAuth> {
  const noop = (): Promise<void> => Promise.resolve();
  if (remote.transport === 'http') {
    const secret = credentials?.password?.reveal() ?? credentials?.token?.reveal() ?? remote.embeddedPassword;
    if (secret === undefined || remote.origin === undefined) return { env: {}, secrets: [], dispose: noop };
    const username =
      credentials?.username ?? remote.embeddedUsername ?? (credentials?.token === undefined ? '' : TOKEN_USERNAME);
    const basic = Buffer.from(`${username}:${secret}`).toString('base64');
    return {
      env: {
        GIT_CONFIG_COUNT: '1',
        GIT_CONFIG_KEY_0: `http.${remote.origin}/.extraHeader`,
        GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
      },
      secrets: [secret, basic],
      dispose: noop,
    };
  }
  if (remote.transport === 'ssh' && (credentials?.sshKey !== undefined || credentials?.knownHosts !== undefined)) {
    const dir = await mkdtemp(join(tmpdir(), 'deployer-ssh-'));
    const dispose = (): Promise<void> => rm(dir, { recursive: true, force: true });
    try {
      const parts = ['ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes'];
      const secrets: string[] = [];
      if (credentials.sshKey !== undefined) {
        const key = credentials.sshKey.reveal();
        const keyFile = join(dir, 'key');
        // OpenSSH refuses a key whose last line has no newline.
        await writeFile(keyFile, key.endsWith('\n') ? key : `${key}\n`, { mode: 0o600 });
        parts.push('-i', shellQuote(keyFile), '-o', 'IdentitiesOnly=yes');
        secrets.push(key);
      }
      if (credentials.knownHosts !== undefined) {
        const knownHosts = join(dir, 'known_hosts');
        await writeFile(knownHosts, `${credentials.knownHosts.reveal()}\n`, { mode: 0o600 });
        parts.push('-o', `UserKnownHostsFile=${shellQuote(knownHosts)}`);
      }
      // git runs GIT_SSH_COMMAND through a shell; the only variable parts are our own quoted temporary paths.
      return { env: { GIT_SSH_COMMAND: parts.join(' ') }, secrets, dispose };
    } catch (err) {
      await dispose();
      throw err;
    }
  }
  return { env: {}, secrets: [], dispose: noop };
}

function shellQuote(path: string): string {
  if (path.includes("'")) throw new Error('temporary directory path contains a quote');
  return `'${path}'`;
}
