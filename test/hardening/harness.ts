import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ground } from '../env/ground.js';
import { freePort, waitForUrl } from '../env/processes.js';
import { adminClient } from '../env/kube-helpers.js';
import type { Answer } from '../e2e/setup.js';

/**
 * Shared pieces of the hardening suite: what "nothing was applied" means (the namespace's Deployments, ConfigMaps
 * and Services, each at the same version, are the same after as before) and a scanner that collects everything
 * the deployer said during a file (logs, answers, reports) to look for secrets in it at the end.
 */

/**
 * Every Deployment, ConfigMap and Service of `namespace` as `Kind/name@version`, sorted. A Deployment's version is
 * its `generation`, which only a change of its spec moves: the controller manager keeps writing its status (and so
 * its resourceVersion) for a while after a deploy, and that is not the deployer applying anything.
 */
export async function snapshot(namespace: string): Promise<string[]> {
  const { apps, core } = adminClient();
  const [deployments, configMaps, services] = await Promise.all([
    apps.listNamespacedDeployment({ namespace }),
    core.listNamespacedConfigMap({ namespace }),
    core.listNamespacedService({ namespace }),
  ]);
  const line = (kind: string) => (o: { metadata?: { name?: string; resourceVersion?: string } }) =>
    `${kind}/${o.metadata?.name ?? ''}@${o.metadata?.resourceVersion ?? ''}`;
  return [
    ...deployments.items.map((d) => `Deployment/${d.metadata?.name ?? ''}@generation-${d.metadata?.generation ?? ''}`),
    ...configMaps.items.map(line('ConfigMap')),
    ...services.items.map(line('Service')),
  ].sort();
}

/** Everything captured during a test file, with where it came from, to scan for secrets at the end. */
export class Captured {
  readonly #texts: Array<{ where: string; text: string }> = [];
  readonly #sources: Array<{ where: string; read: () => string; allowed: readonly string[] }> = [];

  add(where: string, text: string): void {
    this.#texts.push({ where, text });
  }

  /** An answer's body and headers as the caller saw them. */
  answer(where: string, answer: Answer): Answer {
    this.add(where, JSON.stringify(answer.body));
    return answer;
  }

  /**
   * A source read at scan time (a log that keeps growing, a capture server's requests); `allowed` names the secrets
   * that belong there (the credential a report service is called with).
   */
  source(where: string, read: () => string, allowed: readonly string[] = []): void {
    this.#sources.push({ where, read, allowed });
  }

  /** Where any of `secrets` occurs, as `where: secret-name`; also in base64 and URL-encoded spellings. */
  leaks(secrets: Record<string, string>): string[] {
    const all = [
      ...this.#texts.map((t) => ({ ...t, allowed: [] as readonly string[] })),
      ...this.#sources.map((s) => ({ where: s.where, text: s.read(), allowed: s.allowed })),
    ];
    const found: string[] = [];
    for (const [name, secret] of Object.entries(secrets)) {
      const spellings = [secret, Buffer.from(secret).toString('base64'), encodeURIComponent(secret)];
      for (const { where, text, allowed } of all) {
        if (allowed.includes(name)) continue;
        if (spellings.some((s) => text.includes(s))) found.push(`${where}: ${name}`);
      }
    }
    return found;
  }

  /** The answers captured so far, for a report. */
  texts(): ReadonlyArray<{ where: string; text: string }> {
    return this.#texts;
  }

  get size(): number {
    return this.#texts.length + this.#sources.length;
  }
}

/** Files a successful shell injection in these tests would create. */
export const PWNED = ['/tmp/deployer-pwned', '/tmp/deployer-pwned-2'] as const;

export function nothingPwned(): boolean {
  return PWNED.every((p) => !existsSync(p));
}

/** The deployer as its own process (`node --import tsx src/main.ts`), with a config file, and what it printed. */
export interface DeployerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, and wait for the exit. */
  stop(): Promise<void>;
}

/** Starts the deployer on `port` (which `config` must listen on) with `config` written into `dir`; resolves once it answers. */
export async function startDeployerProcess(config: Record<string, unknown>, dir: string, port: number): Promise<DeployerProcess> {
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  const child = spawn(process.execPath, ['--max-semi-space-size=1', '--v8-pool-size=2', '--import', 'tsx', 'src/main.ts'], {
    // The image's V8 setting (Dockerfile NODE_OPTIONS), so that memory is measured as it runs there.
    cwd: process.cwd(),
    env: { ...process.env, DEPLOYER_CONFIG: file },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const url = `http://127.0.0.1:${port}`;
  await waitForUrl(`${url}/healthz`, { what: 'the deployer child process', timeoutMs: 60_000 });
  return {
    child,
    url,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A deployer process of its own scratch directory and port; `close()` stops it and removes the directory. */
export interface ScratchDeployer extends DeployerProcess {
  readonly dir: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The deployer as its own process in a new scratch directory (`prefix` names it in /tmp) on a free port, with what
 * the hardening tests' configurations share — info logging, the listen address, the ground's kubeconfig, the git
 * cache in the scratch directory — and `config`'s keys over them.
 */
export async function startScratchDeployer(prefix: string, config: Record<string, unknown>): Promise<ScratchDeployer> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    const port = await freePort();
    const deployer = await startDeployerProcess(
      {
        logLevel: 'info',
        listen: { host: '127.0.0.1', port },
        kubernetes: { kubeconfig: ground('kube').adminKubeconfig },
        cache: { dir: join(dir, 'cache') },
        ...config,
      },
      dir,
      port,
    );
    return {
      ...deployer,
      dir,
      port,
      close: async () => {
        await deployer.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A process's resident memory now (VmRSS) or at its peak so far (VmHWM), in bytes, from /proc/PID/status. */
export function memoryOf(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kb === undefined) throw new Error(`no ${field} for ${pid}`);
  return Number(kb) * 1024;
}

/** The deployer's apiserver calls so far, from its /metrics: a count that stops growing once nothing polls. */
export async function kubernetesCalls(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('deployer_upstream_call_duration_seconds_count{') && line.includes('system="kubernetes"')) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}
