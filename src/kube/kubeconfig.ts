import { existsSync, readFileSync, statSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { z } from 'zod';
import { ConfigError } from '../config/load.js';

/**
 * The deployer's access to the apiserver: where it is, and how each request authenticates. Read here for the common
 * cases — the pod's service account, and kubeconfig files with tokens, token files, client certificates or basic
 * auth — without @kubernetes/client-node, whose import alone costs ~70 MiB of memory. Only a kubeconfig whose user
 * runs an exec plugin or an auth provider loads client-node, lazily, at the first request.
 */
export interface KubeAccess {
  readonly server: string;
  /** Adds TLS options and credentials to a request; called per request, since tokens rotate. */
  apply(options: RequestOptions & { headers: Record<string, string> }): Promise<void>;
}

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';
/** A rotated service account token is re-read at most this often (the kubelet refreshes it well before expiry). */
const TOKEN_REREAD_MS = 60_000;

let loads = 0;

/** How many times this process read its Kubernetes access: once, by src/wire.ts (a test counts it). */
export function kubeConfigLoads(): number {
  return loads;
}

const NamedCluster = z.object({
  name: z.string(),
  cluster: z.looseObject({
    server: z.string({ error: 'a cluster needs a server' }),
    'certificate-authority': z.string().optional(),
    'certificate-authority-data': z.string().optional(),
    'insecure-skip-tls-verify': z.boolean().optional(),
    'tls-server-name': z.string().optional(),
  }),
});
const NamedUser = z.object({
  name: z.string(),
  user: z
    .looseObject({
      token: z.string().optional(),
      tokenFile: z.string().optional(),
      'client-certificate': z.string().optional(),
      'client-certificate-data': z.string().optional(),
      'client-key': z.string().optional(),
      'client-key-data': z.string().optional(),
      username: z.string().optional(),
      password: z.string().optional(),
      exec: z.unknown().optional(),
      'auth-provider': z.unknown().optional(),
    })
    .nullish(),
});
const KubeconfigFile = z.looseObject({
  clusters: z.array(NamedCluster).nullish(),
  users: z.array(NamedUser).nullish(),
  contexts: z.array(z.object({ name: z.string(), context: z.looseObject({ cluster: z.string(), user: z.string().optional() }) })).nullish(),
  'current-context': z.string().optional(),
});

/**
 * Where the access comes from: a kubeconfig file, else in-cluster, else the default kubeconfig ($KUBECONFIG, then
 * ~/.kube/config). With none of them, client-node would silently talk to http://localhost:8080; this says where it
 * looked. Errors are ConfigErrors naming the file and the problem.
 */
export function loadKubeAccess(
  kubeconfig: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  /** Where a pod's service account is mounted; another folder only in tests. */
  serviceAccount = SERVICE_ACCOUNT,
  /** The clock of token re-reads; another only in tests. */
  now: () => number = Date.now,
): KubeAccess {
  loads++;
  const where = kubeconfig === undefined ? '' : ` ${kubeconfig}`;
  try {
    if (kubeconfig !== undefined) return fromFile(kubeconfig);
    if (env['KUBERNETES_SERVICE_HOST'] !== undefined) return inCluster(env, serviceAccount, now);
    const candidates = defaultKubeconfigs(env);
    const found = candidates.find((c) => c.exists);
    if (found?.file === undefined) {
      throw new Error(
        `no kubeconfig found: kubernetes.kubeconfig is not set, ${candidates.map((c) => c.where).join(', ')}, and ` +
          'this is not a pod (KUBERNETES_SERVICE_HOST is unset); set kubernetes.kubeconfig in the configuration',
      );
    }
    return fromFile(found.file);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`cannot read the kubeconfig${where}: ${(err as Error).message}`, { cause: err });
  }
}

/** The files kubectl reads by default, and whether they exist, in words for the error above. */
function defaultKubeconfigs(env: NodeJS.ProcessEnv): Array<{ where: string; exists: boolean; file?: string }> {
  const fromEnv = env['KUBECONFIG'];
  const home = join(env['HOME'] ?? homedir(), '.kube', 'config');
  const listed =
    fromEnv === undefined || fromEnv === ''
      ? [{ where: 'KUBECONFIG is unset', exists: false }]
      : fromEnv
          .split(delimiter)
          .filter((f) => f !== '')
          .map((file) => ({ where: `KUBECONFIG names ${file}${existsSync(file) ? '' : ' (missing)'}`, exists: existsSync(file), file }));
  return [...listed, { where: `${home} ${existsSync(home) ? 'exists' : 'does not exist'}`, exists: existsSync(home), file: home }];
}

/** The pod's service account: the token (re-read as it rotates) and the cluster's CA. */
function inCluster(env: NodeJS.ProcessEnv, serviceAccount: string, now: () => number): KubeAccess {
  const host = env['KUBERNETES_SERVICE_HOST'] ?? '';
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  const ca = readFileSync(join(serviceAccount, 'ca.crt'));
  const token = rereading(join(serviceAccount, 'token'), now);
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    apply(options) {
      options.ca = ca;
      options.headers['authorization'] = `Bearer ${token()}`;
      return Promise.resolve();
    },
  };
}

/** A file's trimmed text, read again when it changed and at most every TOKEN_REREAD_MS. */
function rereading(file: string, now: () => number = Date.now): () => string {
  let value = readFileSync(file, 'utf8').trim();
  let checked = now();
  let mtime = statSync(file).mtimeMs;
  return () => {
    if (now() - checked < TOKEN_REREAD_MS) return value;
    checked = now();
    try {
      const now = statSync(file).mtimeMs;
      if (now !== mtime) {
        value = readFileSync(file, 'utf8').trim();
        mtime = now;
      }
    } catch {
      // A token file being swapped (atomic symlink flip): keep the last one for this request.
    }
    return value;
  };
}

function fromFile(file: string): KubeAccess {
  const parsed = KubeconfigFile.safeParse(loadYaml(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`not a kubeconfig: ${parsed.error.issues[0]?.message ?? 'unreadable'}`);
  const config = parsed.data;
  const contextName = config['current-context'];
  const context = (config.contexts ?? []).find((c) => c.name === contextName)?.context;
  if (context === undefined) throw new ConfigError(`the kubeconfig ${file} has no current cluster`);
  const cluster = (config.clusters ?? []).find((c) => c.name === context.cluster)?.cluster;
  if (cluster === undefined) throw new ConfigError(`the kubeconfig ${file} has no current cluster`);
  const user = (config.users ?? []).find((u) => u.name === context.user)?.user ?? {};
  const base = dirname(file);
  const path = (p: string): string => (isAbsolute(p) ? p : join(base, p));
  const data = (inline: string | undefined, onDisk: string | undefined): Buffer | undefined =>
    inline !== undefined ? Buffer.from(inline, 'base64') : onDisk !== undefined ? readFileSync(path(onDisk)) : undefined;

  const server = cluster.server;
  if (user.exec !== undefined || user['auth-provider'] !== undefined) return viaClientNode(file, server);

  const tls: RequestOptions = {
    ca: data(cluster['certificate-authority-data'], cluster['certificate-authority']),
    cert: data(user['client-certificate-data'], user['client-certificate']),
    key: data(user['client-key-data'], user['client-key']),
    rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true,
    servername: cluster['tls-server-name'],
  };
  const tokenFile = user.tokenFile === undefined ? undefined : rereading(path(user.tokenFile));
  const { token, username, password } = user;
  return {
    server,
    apply(options) {
      Object.assign(options, Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)));
      if (token !== undefined) options.headers['authorization'] = `Bearer ${token}`;
      else if (tokenFile !== undefined) options.headers['authorization'] = `Bearer ${tokenFile()}`;
      else if (username !== undefined && password !== undefined) {
        options.headers['authorization'] = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
      }
      return Promise.resolve();
    },
  };
}

/** Exec plugins and auth providers (cloud logins): client-node runs them, loaded only for such a kubeconfig. */
function viaClientNode(file: string, server: string): KubeAccess {
  let loaded: Promise<{ applyToHTTPSOptions(o: RequestOptions): Promise<void> }> | undefined;
  return {
    server,
    async apply(options) {
      loaded ??= import('@kubernetes/client-node').then(({ KubeConfig }) => {
        const config = new KubeConfig();
        config.loadFromFile(file);
        return config;
      });
      await (await loaded).applyToHTTPSOptions(options);
    },
  };
}
