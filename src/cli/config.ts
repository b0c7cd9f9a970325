import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from './errors.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** Where a setting came from, for messages: "the environment" or the env file's path. */
export type Origin = string;

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

export interface CliConfig {
  /** The deployer's base URL, ending in `/`, without userinfo (fetch refuses URLs with credentials). */
  readonly url: URL;
  readonly urlOrigin: Origin;
  /** Basic credentials (token name and secret); absent for a deployer that runs with insecureNoAuth. */
  readonly credentials: Credentials | undefined;
  readonly tokenName: string;
  readonly tokenOrigin: Origin | undefined;
  /** For stderr: plain http to another host, an env file others can read. */
  readonly warnings: readonly string[];
}

export const KEYS = { url: 'DEPLOYER_URL', token: 'DEPLOYER_AUTH_TOKEN', tokenName: 'DEPLOYER_TOKEN_NAME' } as const;
/** The token name of the original deployer's single token; the server accepts any token's secret under it. */
export const DEFAULT_TOKEN_NAME = 'auth_token';
const ENVIRONMENT = 'the environment';

/** `~/.deployer/deployer_env`, as the original depctl read it. */
export function envFilePath(home: string): string {
  return join(home, '.deployer', 'deployer_env');
}

/**
 * Parses the env file: `KEY=VALUE` lines, optionally `export KEY=VALUE`, the value optionally in single or double
 * quotes (the original wrote `DEPLOYER_URL="host"`); `#` starts a comment line. No escapes and no expansion: the
 * file holds a secret, and a secret may contain `$` or `\`.
 */
export function parseEnvFile(text: string): { values: Record<string, string>; problems: string[] } {
  const values: Record<string, string> = Object.create(null) as Record<string, string>;
  const problems: string[] = [];
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (m === null) {
      problems.push(`line ${index + 1} is not KEY=VALUE; ignored`);
      continue;
    }
    const [, key = '', value = ''] = m;
    const quoted = /^(["'])(.*)\1$/.exec(value);
    values[key] = quoted === null ? value : (quoted[2] ?? '');
  }
  return { values, problems };
}

export interface EnvFile {
  readonly path: string;
  readonly text: string;
  /** The file's permission bits, to warn when others may read the token. */
  readonly mode?: number | undefined;
}

/** Reads the env file if there is one; a file that exists but cannot be read is an error, not "nothing configured". */
export function readEnvFile(path: string): EnvFile | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    return { path, text, mode: statSync(path).mode & 0o777 };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new UsageError(`cannot read ${path}: ${code ?? (err as Error).message}`);
  }
}

/** Loopback: the token does not leave the machine (a `kubectl port-forward`), so plain http is no risk there. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) ||
    host === '::1' ||
    /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(host)
  );
}

export function notConfiguredMessage(file: string): string {
  return [
    'no deployer configured.',
    `Set ${KEYS.url} and ${KEYS.token} in the environment, or write them to ${file}:`,
    '',
    `  ${KEYS.url}=https://deployer.example.com`,
    `  ${KEYS.token}=...`,
    `  # optional: the token's name on the deployer (default ${DEFAULT_TOKEN_NAME})`,
    `  ${KEYS.tokenName}=jane`,
  ].join('\n');
}

/**
 * The configuration from the environment and the env file, key by key (the environment wins). The URL must say its
 * scheme (the original guessed https). Plain http to a host other than loopback is allowed with a warning.
 */
export function resolveConfig(env: Env, file: EnvFile | undefined, filePath: string): CliConfig {
  const parsed = file === undefined ? undefined : parseEnvFile(file.text);
  const warnings = (parsed?.problems ?? []).map((p) => `${filePath}: ${p}`);
  const pick = (key: string): { value: string; origin: Origin } | undefined => {
    const fromEnv = env[key];
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, origin: ENVIRONMENT };
    const fromFile = parsed?.values[key];
    if (fromFile !== undefined && fromFile !== '') return { value: fromFile, origin: filePath };
    return undefined;
  };

  const rawUrl = pick(KEYS.url);
  if (rawUrl === undefined) throw new UsageError(notConfiguredMessage(filePath));
  const url = parseUrl(rawUrl.value, rawUrl.origin);
  const token = pick(KEYS.token);
  const tokenName = pick(KEYS.tokenName)?.value ?? DEFAULT_TOKEN_NAME;

  // `https://auth_token:secret@host` as in the thesis' curl example; fetch refuses it, so it becomes basic credentials.
  let credentials: Credentials | undefined;
  let tokenOrigin: Origin | undefined;
  if (token !== undefined) {
    credentials = { user: tokenName, password: token.value };
    tokenOrigin = token.origin;
  } else if (url.username !== '' || url.password !== '') {
    credentials = { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
    tokenOrigin = `${KEYS.url} (${rawUrl.origin})`;
  }
  url.username = '';
  url.password = '';

  if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
    warnings.push(`${KEYS.url} is plain http (${url.host}): the token travels unencrypted; use https`);
  }
  const usesFile = rawUrl.origin === filePath || tokenOrigin === filePath;
  if (usesFile && file?.mode !== undefined && (file.mode & 0o077) !== 0) {
    warnings.push(`${filePath} may be read by other users (mode ${file.mode.toString(8)}); chmod 600 it`);
  }
  return { url, urlOrigin: rawUrl.origin, credentials, tokenName: credentials?.user ?? tokenName, tokenOrigin, warnings };
}

function parseUrl(value: string, origin: Origin): URL {
  // Without a scheme, a wrong guess fails later with an OpenSSL error (https to a plain http port) or with nothing
  // (http to a TLS port): say it here, before any request.
  if (!/^https?:\/\//i.test(value)) {
    const from = origin === ENVIRONMENT ? '' : ` (in ${origin})`;
    throw new UsageError(`${KEYS.url} must start with http:// or https://: got ${JSON.stringify(redacted(value))}${from}`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${KEYS.url} (from ${origin}) is not a URL: ${JSON.stringify(redacted(value))}`);
  }
  url.search = '';
  url.hash = '';
  // A deployer behind a path prefix (`https://host/deployer`): requests go below it.
  if (!url.pathname.endsWith('/')) url.pathname = `${url.pathname}/`;
  return url;
}

/** A URL as a message may show it: a token written into it (`name:secret@host`) replaced by `***`. */
function redacted(value: string): string {
  return value.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)?[^/@]*@/, '$1***@');
}

/** The configuration for this user: environment, then `~/.deployer/deployer_env`. */
export function loadCliConfig(env: Env, home: string): CliConfig {
  const path = envFilePath(home);
  return resolveConfig(env, readEnvFile(path), path);
}
