import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { load } from 'js-yaml';

const run = promisify(execFile);

/** The Debian packages `prometheus` and `prometheus-alertmanager` (test/env/prepare.sh installs them). */
export const PROMTOOL = '/usr/bin/promtool';
export const AMTOOL = '/usr/bin/amtool';

export interface ToolResult {
  readonly code: number;
  readonly output: string;
}

/** Runs a tool with an argument array; its exit code and stdout + stderr, never a throw for a non-zero exit. */
export async function tool(command: string, args: readonly string[], cwd?: string): Promise<ToolResult> {
  try {
    const { stdout, stderr } = await run(command, [...args], { cwd, timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** A temporary folder with `files` written into it; `remove` deletes it. */
export function folderWith(files: Readonly<Record<string, string>>): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'deployer-monitoring-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The `data` of every ConfigMap in a committed kubernetes/monitoring/ file. */
export function configMapData(path: string): Record<string, string> {
  const doc = load(readFileSync(path, 'utf8')) as { kind?: string; data?: Record<string, string> };
  if (doc.kind !== 'ConfigMap' || doc.data === undefined) throw new Error(`${path} is no ConfigMap with data`);
  return doc.data;
}

/**
 * The Prometheus configuration with its Kubernetes discovery replaced by an empty static target list: Debian builds
 * Prometheus without the Kubernetes service discovery (nor Consul, ...), so its promtool refuses
 * `kubernetes_sd_configs` as an unknown field. Everything else (relabelling regular expressions, rule files,
 * Alertmanager addresses) is still checked.
 */
export function withoutKubernetesDiscovery(prometheusYml: string): string {
  return prometheusYml.replace(/kubernetes_sd_configs:\n(\s+)- role: \w+\n/g, 'static_configs:\n$1- targets: []\n');
}
