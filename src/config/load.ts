import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { z } from 'zod';
import { FileConfig, ALL_ACTIONS, type Action, type SecretRef } from './schema.js';
import { resolveNotifications, type ServiceNotifications } from './notifications.js';
import { Secret } from './secret.js';

export type Env = Readonly<Record<string, string | undefined>>;

export interface TokenScope {
  readonly secret: Secret;
  readonly services: readonly string[];
  readonly actions: readonly Action[];
}

export interface RepositoryCredentials {
  readonly username?: string | undefined;
  readonly password?: Secret | undefined;
  readonly token?: Secret | undefined;
  readonly sshKey?: Secret | undefined;
  readonly knownHosts?: Secret | undefined;
}

type FileService = FileConfig['services'][string];
export interface ServiceConfig extends Omit<FileService, 'repository' | 'notifications'> {
  readonly name: string;
  readonly notifications?: ServiceNotifications | undefined;
  readonly repository: Omit<FileService['repository'], 'credentials'> & {
    readonly credentials?: RepositoryCredentials | undefined;
  };
}

export interface RegistryCredentials {
  readonly username?: string | undefined;
  readonly password?: Secret | undefined;
  readonly insecure: boolean;
}

/** The configuration after parsing and resolving every secret reference; parsed once at start, passed down. */
type FileAnalysis = FileConfig['analysis'];
export interface PrometheusConnection extends Omit<NonNullable<FileAnalysis['prometheus']>, 'password' | 'bearerToken'> {
  readonly password?: Secret | undefined;
  readonly bearerToken?: Secret | undefined;
}
export interface AnalysisConfig extends Omit<FileAnalysis, 'prometheus'> {
  readonly prometheus?: PrometheusConnection | undefined;
}

export interface Config extends Omit<FileConfig, 'tokens' | 'services' | 'registries' | 'reports' | 'analysis'> {
  readonly analysis: AnalysisConfig;
  readonly tokens: Readonly<Record<string, TokenScope>>;
  readonly services: Readonly<Record<string, ServiceConfig>>;
  readonly registries: Readonly<Record<string, RegistryCredentials>>;
  readonly reports: {
    readonly bugsnag?:
      | { apiKey: Secret; notifyEndpoint?: string | undefined; sessionsEndpoint?: string | undefined; releaseStage: string }
      | undefined;
    readonly slack?: { webhookUrl: Secret; channel?: string | undefined; notifyOnSuccess: boolean } | undefined;
  };
}

/** A configuration that cannot be used; the message names the key and the problem. */
export class ConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}

/** Service names that would be shadowed by the deployer's own endpoints (`GET /version`, `GET /healthz`, ...). */
export const RESERVED_SERVICE_NAMES: readonly string[] = ['version', 'healthz', 'readyz', 'metrics', 'hooks'];

/** The token name of the original deployer's single `DEPLOYER_AUTH_TOKEN`; it has every scope. */
export const LEGACY_TOKEN_NAME = 'auth_token';

/**
 * Loads the configuration: the YAML file `DEPLOYER_CONFIG` names (none: defaults only), then environment overrides:
 * `DEPLOYER_AUTH_TOKEN` (one token with every scope, as in the original), `PORT`/`DEPLOYER_PORT`. Relative paths
 * in the file are relative to the file's directory, as kubectl takes those of a kubeconfig.
 */
export function loadConfig(env: Env, options: { file?: string | undefined } = {}): Config {
  const file = options.file ?? env['DEPLOYER_CONFIG'];
  let raw: unknown = {};
  if (file !== undefined && file !== '') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      raw = loadYaml(text, { filename: file }) ?? {};
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`, { cause: err });
    }
  }
  return parseConfig(raw, env, { baseDir: file === undefined || file === '' ? undefined : dirname(resolve(file)) });
}

/**
 * Parses an already-read configuration object; see `loadConfig`. Every unresolvable secret (an unset environment
 * variable, an unreadable file) and a bad PORT are reported together, so that a start names all of them at once
 * rather than one per restart.
 */
export function parseConfig(raw: unknown, env: Env, options: { baseDir?: string | undefined } = {}): Config {
  const parsed = FileConfig.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`invalid config: ${describeIssues(parsed.error)}`);
  const fc = withPathsResolved(parsed.data, options.baseDir);
  const problems: string[] = [];
  const secret = (ref: SecretRef, key: string): Secret => {
    try {
      return resolveSecret('file' in ref && options.baseDir !== undefined ? { file: resolve(options.baseDir, ref.file) } : ref, key, env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err.message);
      // Never used: the problems are thrown below, before the configuration is returned.
      return new Secret('unresolved');
    }
  };

  const tokens: Record<string, TokenScope> = {};
  for (const [tokenName, t] of Object.entries(fc.tokens)) {
    tokens[tokenName] = { secret: secret(t.secret, `tokens.${tokenName}.secret`), services: t.services, actions: t.actions };
  }
  const legacy = env['DEPLOYER_AUTH_TOKEN'];
  if (legacy !== undefined && legacy !== '') {
    tokens[LEGACY_TOKEN_NAME] = { secret: new Secret(legacy), services: ['*'], actions: [...ALL_ACTIONS] };
  }

  const services: Record<string, ServiceConfig> = {};
  for (const [serviceName, s] of Object.entries(fc.services)) {
    if (RESERVED_SERVICE_NAMES.includes(serviceName)) {
      throw new ConfigError(`services.${serviceName}: the name is reserved for the deployer's own endpoint /${serviceName}`);
    }
    const c = s.repository.credentials;
    const key = `services.${serviceName}.repository.credentials`;
    const opt = (ref: SecretRef | undefined, k: string): Secret | undefined =>
      ref === undefined ? undefined : secret(ref, `${key}.${k}`);
    services[serviceName] = {
      ...s,
      name: serviceName,
      repository: {
        ...s.repository,
        credentials:
          c === undefined
            ? undefined
            : {
                username: c.username,
                password: opt(c.password, 'password'),
                token: opt(c.token, 'token'),
                sshKey: opt(c.sshKey, 'sshKey'),
                knownHosts: opt(c.knownHosts, 'knownHosts'),
              },
      },
      notifications: resolveNotifications(s.notifications, `services.${serviceName}.notifications`, secret),
    };
  }

  const registries: Record<string, RegistryCredentials> = {};
  for (const [host, r] of Object.entries(fc.registries)) {
    registries[host] = {
      username: r.username,
      password: r.password === undefined ? undefined : secret(r.password, `registries.${host}.password`),
      insecure: r.insecure,
    };
  }

  const { bugsnag, slack } = fc.reports;
  // In a pod, Kubernetes' Service links set DEPLOYER_PORT=tcp://IP:PORT for a Service named deployer in the
  // namespace (the installation's own): that is an address, not an override.
  const override = env['DEPLOYER_PORT'];
  const port = override !== undefined && !override.startsWith('tcp://') ? override : env['PORT'];
  const listen = { ...fc.listen };
  if (port !== undefined && port !== '') {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 0 || n > 65535) problems.push(`PORT: "${port}" is not a port number`);
    else listen.port = n;
  }
  const reports = {
    bugsnag: bugsnag && { ...bugsnag, apiKey: secret(bugsnag.apiKey, 'reports.bugsnag.apiKey') },
    slack: slack && { ...slack, webhookUrl: secret(slack.webhookUrl, 'reports.slack.webhookUrl') },
  };
  const { prometheus } = fc.analysis;
  const analysis: AnalysisConfig = {
    ...fc.analysis,
    prometheus: prometheus && {
      ...prometheus,
      password: prometheus.password && secret(prometheus.password, 'analysis.prometheus.password'),
      bearerToken: prometheus.bearerToken && secret(prometheus.bearerToken, 'analysis.prometheus.bearerToken'),
    },
  };
  if (prometheus === undefined) {
    const gated = Object.entries(fc.services).filter(([, s]) => s.requireAnalysis).map(([name]) => name);
    if (gated.length > 0) problems.push(`services.${gated[0]}.requireAnalysis: needs analysis.prometheus.url, where the analysis asks Prometheus`);
  }
  throwProblems(problems);

  if (Object.keys(tokens).length === 0 && !fc.insecureNoAuth) {
    throw new ConfigError(
      'tokens: no token is configured; add one under "tokens", set DEPLOYER_AUTH_TOKEN, ' +
        'or set "insecureNoAuth: true" to run without authentication (demos only)',
    );
  }

  return {
    ...fc,
    listen,
    tokens,
    services,
    registries,
    reports,
    analysis,
  };
}

/** One problem: its message as it is. Several: one line each, and the unset variables together, to set at once. */
function throwProblems(problems: readonly string[]): void {
  if (problems.length === 0) return;
  if (problems.length === 1) throw new ConfigError(problems[0] ?? '');
  const unset = problems.map((p) => /environment variable (\S+) is not set$/.exec(p)?.[1]).filter((v) => v !== undefined);
  const summary = unset.length < 2 ? '' : `\nunset environment variables: ${[...new Set(unset)].join(' ')}`;
  throw new ConfigError(`${problems.length} problems in the configuration:\n  ${problems.join('\n  ')}${summary}`);
}

/**
 * The file's relative paths made absolute against `baseDir` (the config file's directory): the cache, the kubeconfig,
 * and a repository URL that is a relative path (`./`, `../`: a local repository, as config.local.yaml uses).
 */
function withPathsResolved(fc: FileConfig, baseDir: string | undefined): FileConfig {
  if (baseDir === undefined) return fc;
  const path = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const services = Object.fromEntries(
    Object.entries(fc.services).map(([name, s]) => {
      const url = s.repository.url;
      const local = url === '.' || url === '..' || url.startsWith('./') || url.startsWith('../');
      return [name, local ? { ...s, repository: { ...s.repository, url: resolve(baseDir, url) } } : s];
    }),
  );
  const { kubeconfig } = fc.kubernetes;
  return {
    ...fc,
    services,
    cache: { ...fc.cache, dir: path(fc.cache.dir) },
    kubernetes: { ...fc.kubernetes, kubeconfig: kubeconfig === undefined ? undefined : path(kubeconfig) },
  };
}

function resolveSecret(ref: SecretRef, key: string, env: Env): Secret {
  if ('value' in ref) return new Secret(ref.value);
  if ('env' in ref) {
    const v = env[ref.env];
    if (v === undefined || v === '') throw new ConfigError(`${key}: environment variable ${ref.env} is not set`);
    return new Secret(v);
  }
  let v: string;
  try {
    v = readFileSync(ref.file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${key}: cannot read ${ref.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, {
      cause: err,
    });
  }
  // A mounted Secret file usually ends with a newline that is not part of the secret.
  v = v.replace(/\r?\n$/, '');
  if (v === '') throw new ConfigError(`${key}: ${ref.file} is empty`);
  return new Secret(v);
}

function describeIssues(error: z.ZodError): string {
  const at = (path: readonly PropertyKey[]): string =>
    path.length === 0 ? '(top level)' : path.map(String).join('.');
  return error.issues
    .map((i) => {
      // Name the offending key itself, not its parent: "listen.hots: unknown key" rather than "listen: ...".
      if (i.code === 'unrecognized_keys') return i.keys.map((k) => `${at([...i.path, k])}: unknown key`).join('; ');
      if (i.code === 'invalid_key') return `${at(i.path)}: invalid name: ${i.issues.map((n) => n.message).join(', ')}`;
      return `${at(i.path)}: ${i.message}`;
    })
    .join('; ');
}
