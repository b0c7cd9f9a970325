/**
 * `npm run demo`: the deployer on a laptop, against throwaway local servers. Starts the test ground's parts outside
 * vitest (a Kubernetes control plane with one real node, a container registry, a git server), creates a sample
 * service repository with a few commits and an image per commit (the ground's sample HTTP service, as CI would push
 * it), starts the deployer in-process, and prints ready-to-paste curl, depctl and kubectl commands: the pods really
 * run, and the service answers curl on its ClusterIP. Ctrl-C stops everything and removes what
 * the demo created; its logs are kept only when it failed, and it says where.
 *
 * It also shows the regression-testing loop (README "Regression testing"): Prometheus and Alertmanager run with the
 * shipped monitoring configuration (short windows), a bounded load goes to the Service's ClusterIP, and the demo
 * prints commands that deploy a bad canary (slower than stable by 1.5× the latency threshold) and a good one, then
 * says what became of each: rolled back by the monitor after N s, with the figures, or promoted.
 *
 * depctl is built (`npm run build`, into dist/) while the servers start, and a `depctl` shim in the demo's own bin
 * folder runs it: the demo prints one `export PATH=...` line, after which depctl commands are short and complete.
 *
 * Options: `--port N` (default 8080, or DEMO_PORT; 0 or a busy 8080 picks a free port).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { parseConfig } from '../src/config/load.js';
import { PrometheusClient } from '../src/prometheus/client.js';
import { wire } from '../src/wire.js';
import { routeAlertsTo } from '../test/env/alertmanager.js';
import { createRepo } from '../test/env/git-fixtures.js';
import type { Started } from '../test/env/global-setup.js';
import { kubeBinDir } from '../test/env/kube-plane.js';
import { configMapYaml, deploymentYaml, serviceYaml } from '../test/env/manifests.js';
import { startLoad, type Load } from '../test/env/load.js';
import { programPath, pushProgramImage } from '../test/env/node-images.js';
import { SCHEDULER_NAME } from '../test/env/node.js';
import { GROUND_MONITORING } from '../test/env/prometheus.js';
import { startGround } from '../test/env/start-ground.js';
import { watchLoop, type LoopWatch } from './demo-loop.js';

const SERVICE = 'hello';
const NAMESPACE = 'demo';
const TOKEN = 'demo';
const HOOK_TOKEN = 'alertmanager';
const DEFAULT_PORT = 8080;
/** The bounded load on the Service: requests per second, and for how long at most. */
const LOAD_RATE = 30;
const LOAD_MINUTES = 15;
/** Every version's own latency; the bad canary's is 1.5× the latency threshold above it. */
const STABLE_LATENCY_MS = 10;
const SLOW_LATENCY_MS = STABLE_LATENCY_MS + Math.round(1.5 * GROUND_MONITORING.latencyThresholdSeconds * 1000);

/**
 * Prints to stdout, and once stdout is gone (piped into `tee`, which Ctrl-C ends first: EPIPE) to stderr, so that
 * the demo still says what it does while it stops, and never dies of a closed pipe. A line whose own write found
 * stdout gone is written again to stderr (the pipe's error comes after the write returned).
 */
let stdoutGone = false;
process.stdout.on('error', () => {
  stdoutGone = true;
});
const write = (line: string, done: () => void): void => {
  const text = `${line}\n`;
  if (stdoutGone) {
    process.stderr.write(text, () => done());
    return;
  }
  process.stdout.write(text, (err) => {
    if (err === null || err === undefined) return done();
    stdoutGone = true;
    process.stderr.write(text, () => done());
  });
};
const say = (line = ''): void => write(line, () => undefined);
/** The last words before exit: resolves once the line is written, wherever it went. */
const sayLast = (line: string): Promise<void> => new Promise((resolve) => write(line, resolve));
process.stderr.on('error', () => undefined);

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * `npm run build` without npm: tsc into dist/, which `depctl` (package.json "bin") runs. Resolves with whether it
 * worked; its output goes to `logFile`.
 */
function buildDepctl(logFile: string): Promise<boolean> {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  return new Promise((resolve) => {
    const out = openSync(logFile, 'a');
    // Incremental: the next demo rebuilds only what changed.
    const args = [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--incremental', '--tsBuildInfoFile', join(ROOT, 'dist', '.tsbuildinfo')];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', out, out] });
    closeSync(out);
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0));
  });
}

/** A `depctl` in `binDir` that runs the built CLI, or the source through tsx when the build failed. */
function depctlShim(binDir: string, built: boolean): string {
  mkdirSync(binDir, { recursive: true });
  const target = built
    ? `"${process.execPath}" "${join(ROOT, 'dist', 'cli', 'depctl.js')}"`
    : `"${process.execPath}" --import "${import.meta.resolve('tsx')}" "${join(ROOT, 'src', 'cli', 'depctl.ts')}"`;
  const file = join(binDir, 'depctl');
  writeFileSync(file, `#!/bin/sh\nexec ${target} "$@"\n`);
  chmodSync(file, 0o755);
  return binDir;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** What prepare.sh builds that the demo runs: the control plane, the node, the pause and sample programs. */
const PREPARED = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy'].map((b) => join(kubeBinDir(), b));

/** Runs test/env/prepare.sh (apt packages, the Kubernetes binaries and the ground's images built once) in the foreground. */
function prepare(missing: string): Promise<void> {
  say(`demo: ${missing} is missing: running \`bash test/env/prepare.sh\``);
  say('demo: (installs etcd, docker-registry, containerd, git, ... with apt and builds Kubernetes and the images: 15 to 30 minutes on 2 cores)');
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['test/env/prepare.sh'], { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`test/env/prepare.sh exited ${String(code)}`))));
  });
}

/**
 * The sample service's files: a greeting in its ConfigMap, as the environment of the container (the version it
 * answers is the VERSION the deployer sets); its Service has a fixed ClusterIP, so that the demo can print the curl
 * before the first deploy.
 */
const manifests = (image: string, greeting: string, replicas: number, clusterIP: string, latencyMs = STABLE_LATENCY_MS): Record<string, string> => ({
  'kubernetes/deployment.yaml': deploymentYaml({
    name: SERVICE,
    image,
    replicas,
    container: SERVICE,
    imageComment: 'No tag: the deployer writes the version it deploys (main-<sha7>) and its digest.',
    env: { LATENCY_MS: String(latencyMs) },
    envFrom: `${SERVICE}-config`,
    // The shipped Prometheus configuration scrapes the port a pod names here.
    podAnnotations: { 'prometheus.io/port': '8080' },
    realNode: { schedulerName: SCHEDULER_NAME },
  }),
  'kubernetes/service.yaml': serviceYaml(SERVICE, { clusterIP }),
  'kubernetes/configmap.yaml': configMapYaml(`${SERVICE}-config`, { GREETING: greeting }),
});

/** The address 10 of a /24 service range "A.B.C.0/24". */
const tenthAddress = (cidr: string): string => `${cidr.split('/')[0]?.split('.').slice(0, 3).join('.') ?? ''}.10`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string' } }, strict: true });
  const asked = values.port ?? process.env['DEMO_PORT'];
  let port = asked === undefined ? DEFAULT_PORT : Number(asked);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: "${asked}" is not a port number`);
  if (port === DEFAULT_PORT && asked === undefined && !(await portIsFree(port))) {
    say(`demo: port ${DEFAULT_PORT} is taken; using a free one`);
    port = 0;
  }

  const missing = [...PREPARED, programPath('pause'), programPath('sample')].find((f) => !existsSync(f));
  if (missing !== undefined) await prepare(missing);

  const base = mkdtempSync(join(tmpdir(), 'deployer-demo-'));
  const logsDir = join(base, 'logs');
  mkdirSync(logsDir, { recursive: true });
  const parts: Array<Started<unknown>> = [];
  let closeApp: (() => Promise<void>) | undefined;
  let load: Load | undefined;
  let watch: LoopWatch | undefined;
  let stopping = false;

  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    say('demo: stopping the deployer, Kubernetes, the registry and the git server');
    watch?.stop();
    await load?.stop();
    // A deploy in flight gets a few seconds to finish; the servers go in any case.
    await Promise.race([closeApp?.(), new Promise((r) => setTimeout(r, 10_000).unref())]).catch(() => undefined);
    await Promise.all(parts.map((p) => p.stop().catch(() => undefined)));
    if (code === 0) {
      rmSync(base, { recursive: true, force: true });
    } else {
      // The servers' data goes (it is large); the logs stay, since they explain the failure.
      for (const entry of readdirSync(base)) if (entry !== 'logs') rmSync(join(base, entry), { recursive: true, force: true });
      say(`demo: failed; the logs are kept in ${logsDir} (remove ${base} when done)`);
    }
    await sayLast('demo: stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    say(`demo: starting a Kubernetes control plane with a node, a registry, a git server, Prometheus and Alertmanager (logs in ${logsDir})`);
    // depctl builds while the servers start; both take a while on 2 cores.
    const depctlBuilt = buildDepctl(join(logsDir, 'depctl-build.log'));
    const started = await startGround({ base, logsDir, parts: ['kube', 'registry', 'git', 'node', 'prometheus'] });
    parts.push(started);
    const { kube, registry: registries, git, node, prometheus } = started.info;
    if (kube === undefined || registries === undefined || git === undefined || node === undefined || prometheus === undefined) {
      throw new Error('the ground did not start');
    }
    if (stopping) return;
    const logger = pino({ level: 'info', base: { app: 'deployer' } }, pino.destination({ dest: join(logsDir, 'deployer.log'), sync: true }));

    say(`demo: creating the repository ${SERVICE}.git with four commits and pushing an image for each`);
    const registry = registries.anonymous;
    const imageRepository = `demo/${SERVICE}`;
    const image = `${registry}/${imageRepository}`;
    const serviceIp = tenthAddress(node.serviceCidr);
    const repo = await createRepo(git.root, SERVICE, [
      { files: { ...manifests(image, 'Hello', 2, serviceIp), 'README.md': `# ${SERVICE}\n` }, message: 'hello: first version' },
      { files: manifests(image, 'Hello, friend', 2, serviceIp), message: 'hello: a friendlier greeting' },
      { files: manifests(image, 'Hello, friend', 3, serviceIp), message: 'hello: three replicas' },
      { files: manifests(image, 'Hello, friend', 3, serviceIp, SLOW_LATENCY_MS), message: 'hello: a slower greeting' },
    ]);
    const commits = repo.shas.map((sha) => ({ sha, short: sha.slice(0, 7) }));
    for (const c of commits) await pushProgramImage({ host: registry, repository: imageRepository, tag: `main-${c.short}`, program: 'sample' });

    const secret = randomBytes(12).toString('hex');
    const hookSecret = randomBytes(12).toString('hex');
    const raw = {
      listen: { host: '127.0.0.1', port },
      tokens: { [TOKEN]: { secret: { value: secret } }, [HOOK_TOKEN]: { secret: { value: hookSecret }, actions: ['rollback'] } },
      services: {
        [SERVICE]: {
          repository: {
            url: `${git.baseUrl}${repo.urlPath}`,
            credentials: { username: git.username, password: { value: git.password } },
          },
          namespace: NAMESPACE,
        },
      },
      registries: { [registry]: { insecure: true } },
      cache: { dir: join(base, 'cache') },
      kubernetes: { kubeconfig: kube.adminKubeconfig },
      versions: { registryWaitSeconds: 10 },
      // The gated promote judges as the ground's rules do: the same window and least number of requests.
      analysis: { prometheus: { url: prometheus.url }, window: GROUND_MONITORING.window, minRequests: GROUND_MONITORING.minRequests },
    };
    const configFile = join(base, 'config.yaml');
    // JSON is YAML; the secrets are inline, which is for demos only.
    writeFileSync(configFile, `${JSON.stringify(raw, null, 2)}\n`, { mode: 0o600 });
    const config = parseConfig(raw, {});
    const { app, kube: cluster } = wire({ config, logger, version: 'demo', identity: 'demo' });
    await cluster.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } }]);
    closeApp = () => app.close();
    const address = await app.listen({ host: config.listen.host, port: config.listen.port });
    if (stopping) return;

    const url = address.replace(/\/$/, '');
    const [c1, c2, c3, c4] = commits as [(typeof commits)[0], (typeof commits)[0], (typeof commits)[0], (typeof commits)[0]];
    await routeAlertsTo(prometheus.alertmanager, { url, username: HOOK_TOKEN, secret: hookSecret });
    load = startLoad({ address: `${serviceIp}:80`, rate: LOAD_RATE, durationMs: LOAD_MINUTES * 60_000, allowedCidrs: [node.serviceCidr] });
    watch = watchLoop({
      deployerUrl: url,
      authorization: `Basic ${Buffer.from(`${TOKEN}:${secret}`).toString('base64')}`,
      service: SERVICE,
      namespace: NAMESPACE,
      prometheus: new PrometheusClient({ connection: { url: prometheus.url, timeoutSeconds: 5 }, logger }),
      serviceLabel: GROUND_MONITORING.labels.service,
      window: GROUND_MONITORING.window,
      say,
    });
    const kubeconfig = kube.adminKubeconfig;
    const curl = (path: string, data?: string): string =>
      `curl -sS -u ${TOKEN}:${secret}${data === undefined ? ' -X PUT' : ` --data ${data}`} ${url}/${SERVICE}/${path}`;
    const built = await depctlBuilt;
    if (!built) say(`demo: building depctl failed (see ${join(logsDir, 'depctl-build.log')}); its shim runs the source instead`);
    const binDir = depctlShim(join(base, 'bin'), built);
    if (stopping) return;

    say();
    say(`The deployer listens on ${url} (config ${configFile}, log ${join(logsDir, 'deployer.log')}).`);
    say(`Service "${SERVICE}" (namespace ${NAMESPACE}) has the commits ${c1.short}, ${c2.short}, ${c3.short}, ${c4.short}; each has its image tag main-<sha7>.`);
    say();
    say('# deploy the first commit');
    say(curl('deploy', `commit=${c1.short}`));
    say('# a canary of the third, next to it');
    say(curl('canary', `commit=${c3.short}`));
    say('# promote the canary to stable, or roll back to the version before');
    say(curl('promote'));
    say(curl('rollback', 'to=previous'));
    say('# the same with depctl: once, in your shell, then each command as printed (Tab completes them)');
    say(`export PATH=${binDir}:$PATH DEPLOYER_URL=${url} DEPLOYER_TOKEN_NAME=${TOKEN} DEPLOYER_AUTH_TOKEN=${secret}`);
    say('source <(depctl completion bash)');
    say(`depctl deploy ${SERVICE} --commit ${c1.short}`);
    say(`depctl canary ${SERVICE} --commit ${c3.short}`);
    say(`depctl promote ${SERVICE}`);
    say(`depctl rollback ${SERVICE} --to previous`);
    say(`depctl show ${SERVICE}`);
    say('# the running pods, and the service through its ClusterIP (each answer names its version and pod)');
    say(`kubectl --kubeconfig ${kubeconfig} get pods -n ${NAMESPACE} -o wide`);
    say(`curl -sS http://${serviceIp}/`);
    say(`# after the canary: six requests on new connections, about one in three answered by the canary (main-${c3.short})`);
    say(`curl --no-progress-meter --parallel --parallel-immediate ${Array.from({ length: 6 }, () => `http://${serviceIp}/`).join(' ')}`);
    say('# look at the cluster, the metrics and readiness');
    say(`kubectl --kubeconfig ${kubeconfig} get deploy,rs,svc,cm -n ${NAMESPACE} -o wide`);
    say(`curl -sS ${url}/metrics | grep ^deployer_deploy`);
    say(`curl -sS ${url}/readyz`);
    say('# the regression-testing loop (README: Regression testing): after the first deploy, a canary that is slow...');
    say(`# (${c4.short} answers ${SLOW_LATENCY_MS - STABLE_LATENCY_MS} ms slower) is rolled back by the monitor within seconds;`);
    say(curl('canary', `commit=${c4.short}`));
    say(`# a good canary (${c3.short}) is promoted by the gated promote once it served ${GROUND_MONITORING.minRequests} requests in ${GROUND_MONITORING.window}`);
    say(curl('canary', `commit=${c3.short}`));
    say(curl('promote', 'analysis=true'));
    say(`depctl promote ${SERVICE} --analysis`);
    say(`# Prometheus at ${prometheus.url} (try the query ALERTS), Alertmanager at ${prometheus.alertmanager.url}`);
    say(`curl -sS ${prometheus.url}/api/v1/alerts`);
    say('# a deployer of your own against this cluster (README: Run it on your machine)');
    say(`export KUBECONFIG=${kubeconfig}`);
    say();
    say('(the pods run on a local node: containerd and a kubelet in network namespaces of the demo\'s own)');
    say(`(load: ${LOAD_RATE} requests/s to http://${serviceIp}/ for ${LOAD_MINUTES} minutes; what becomes of each canary is printed below)`);
    say('ready — Ctrl-C stops everything');
  } catch (err) {
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
    await stop(1);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
