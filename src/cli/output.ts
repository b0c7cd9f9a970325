import type { Analysis, DeployResult, ErrorBody, FlowResult, ServiceList, ServiceView, TagsView, VersionView } from './schemas.js';

/** Human output of each command: pure functions from the server's answer to lines of text (no trailing newline). */

export function formatServices(list: ServiceList): string {
  return list.services.join('\n');
}

export function formatService(s: ServiceView): string {
  const repo = s.repository;
  const rows: Array<[string, string]> = [
    ['service', s.name],
    ['repository', `${repo.url} (${repo.type}, default branch ${repo.defaultBranch})`],
    ['credentials', repo.credentials.length === 0 ? 'none' : repo.credentials.join(', ')],
  ];
  if (repo.username !== undefined) rows.push(['username', repo.username]);
  rows.push(
    ['manifests', `${s.manifestsDir}/`],
    ['namespace', s.namespace],
    ['other namespaces', s.allowNamespaces.length === 0 ? 'none' : s.allowNamespaces.join(', ')],
    ['cluster-scoped', s.allowClusterScoped ? 'allowed' : 'not allowed'],
  );
  const lines = [table(rows)];
  if (s.deployments !== undefined) {
    lines.push('running:');
    if (s.deployments.length === 0) lines.push('  nothing deployed yet');
    for (const d of s.deployments) {
      lines.push(`  Deployment ${d.namespace}/${d.name}`);
      if (d.stable !== undefined) lines.push(`    stable    ${describeTrack(d.stable)}`);
      if (d.canary !== undefined) {
        const age = d.canary.ageSeconds === undefined ? '' : `, ${formatAge(d.canary.ageSeconds)} old`;
        lines.push(`    canary    ${describeTrack(d.canary)}${age}`);
      }
      if (d.previous !== undefined) lines.push(`    previous  ${describeVersion(d.previous)}`);
    }
  }
  return lines.join('\n');
}

type Track = NonNullable<NonNullable<ServiceView['deployments']>[number]['stable']>;
type Version = NonNullable<Track['version']>;

function describeVersion(v: Version): string {
  const by = v.deployedBy === undefined ? '' : ` by ${v.deployedBy}`;
  const at = v.deployedAt === undefined ? '' : ` at ${v.deployedAt}`;
  return `${v.tag} (commit ${v.commit.slice(0, 7)})${by}${at}`;
}

function describeTrack(t: Track): string {
  const version = t.version === undefined ? 'unversioned' : describeVersion(t.version);
  return `${version}, ${t.replicas.ready}/${t.replicas.desired} ready`;
}

/** `45s`, `12m`, `3h5m`, `2d4h`. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  const [big, bigUnit, small, smallUnit] =
    s < 86400 ? [Math.floor(s / 3600), 'h', Math.floor((s % 3600) / 60), 'm'] : [Math.floor(s / 86400), 'd', Math.floor((s % 86400) / 3600), 'h'];
  return small === 0 ? `${big}${bigUnit}` : `${big}${bigUnit}${small}${smallUnit}`;
}

export function formatTags(view: TagsView): string {
  if (view.images.length === 0) return `${view.service} has no untagged images at ${view.ref}: nothing to choose a tag for`;
  const lines = [`${view.service} at ${view.ref}`];
  for (const { image, tags } of view.images) {
    lines.push('', image);
    if (tags.length === 0) lines.push('  (no tags)');
    for (const tag of tags) lines.push(`  ${tag}`);
  }
  return lines.join('\n');
}

/** The tags every image has: only these can be deployed by tag, since the tag must exist for all images. */
export function commonTags(view: TagsView): string[] {
  const [first, ...rest] = view.images;
  if (first === undefined) return [];
  return [...new Set(first.tags)].filter((tag) => rest.every((i) => i.tags.includes(tag))).sort();
}

/** A deploy, canary, promote or rollback: the server's message, the version, the images and objects it touched. */
export function formatDeploy(result: DeployResult | FlowResult): string {
  const rows: Array<[string, string]> = [];
  if (result.commit !== undefined) rows.push(['commit', result.commit]);
  if (result.tag !== undefined) rows.push(['tag', result.tag]);
  if ('canary' in result && result.canary !== undefined) {
    rows.push(['canary removed', `${result.canary.tag} (commit ${result.canary.commit})`]);
  }
  if ('supersededBy' in result && result.supersededBy !== undefined) {
    rows.push(['superseded by', `request ${result.supersededBy.requestId} (${result.supersededBy.tag}, commit ${result.supersededBy.commit})`]);
  }
  rows.push(['took', `${(result.durationMs / 1000).toFixed(1)} s`]);
  if (result.verdict !== undefined) rows.push(['rollout', `${result.verdict.result}: ${result.verdict.message}`]);
  const lines = [result.message, table(rows)];
  if (result.images.length > 0) {
    lines.push('images:');
    for (const image of result.images) lines.push(`  ${image.applied}`);
  }
  if ('analysis' in result && result.analysis !== undefined) lines.push(formatAnalysis(result.analysis));
  if (result.objects.length > 0) {
    lines.push('objects:');
    const names = result.objects.map((o) => `${o.kind} ${o.namespace === undefined ? '' : `${o.namespace}/`}${o.name}`);
    const width = Math.max(...names.map((n) => n.length));
    result.objects.forEach((o, i) => lines.push(`  ${(names[i] ?? '').padEnd(width + 2)}${o.action}`));
  }
  return lines.join('\n');
}

/** A gated promotion's figures: canary beside stable, one row a figure. */
export function formatAnalysis(a: Analysis): string {
  const ms = (s: number | null): string => (s === null ? '-' : `${(s * 1000).toFixed(1)} ms`);
  const pct = (r: number | null): string => (r === null ? '-' : `${(r * 100).toFixed(2)}%`);
  const num = (n: number | null): string => (n === null ? '-' : String(Math.round(n)));
  const cores = (n: number | null): string => (n === null ? '-' : `${Math.round(n * 1000)}m`);
  const mib = (n: number | null): string => (n === null ? '-' : `${(n / 1024 / 1024).toFixed(1)} MiB`);
  const q = `p${Math.round(a.quantile * 1000) / 10}`;
  const rows: Array<[string, string, string]> = [
    ['', 'canary', 'stable'],
    ['requests', num(a.canary.requests), num(a.stable.requests)],
    [`${q} latency`, ms(a.canary.latencySeconds), ms(a.stable.latencySeconds)],
    ['error ratio', pct(a.canary.errorRatio), pct(a.stable.errorRatio)],
    ['cpu per pod', cores(a.canary.cpuCores), cores(a.stable.cpuCores)],
    ['memory per pod', mib(a.canary.memoryBytes), mib(a.stable.memoryBytes)],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const lines = [`analysis: ${a.verdict} over ${a.window} (at least ${a.minRequests} requests each)`];
  for (const [k, c, s] of rows) lines.push(`  ${k.padEnd(w0 + 2)}${c.padEnd(w1 + 2)}${s}`.trimEnd());
  for (const r of a.regressions) lines.push(`  regression: ${r.message}`);
  return lines.join('\n');
}

export function formatVersion(depctl: string, deployer: VersionView | undefined): string {
  const lines = [`depctl ${depctl} (node ${process.versions.node})`];
  if (deployer !== undefined) lines.push(`${deployer.name} ${deployer.version}`);
  return lines.join('\n');
}

/**
 * The server's error text (`message`: its `error`, perhaps with a hint of depctl's), then what the body says about
 * the field or objects at fault, and the request id to find it in the deployer's log.
 */
export function formatApiError(message: string, status: number, body: ErrorBody): string {
  const lines = [`${message} (${status})`];
  if (body.field !== undefined) lines.push(`  field: ${body.field}`);
  for (const f of body.failures ?? []) {
    lines.push(`  ${f.kind} ${f.namespace === undefined ? '' : `${f.namespace}/`}${f.name}: ${f.reason}`);
  }
  // A rollout that failed (`--wait`): what each workload did; the version was applied nevertheless.
  for (const d of body.verdict?.deployments ?? []) lines.push(`  ${d.kind ?? 'Deployment'} ${d.namespace}/${d.name}: ${d.state}: ${d.reason}`);
  if (body.verdict !== undefined && body.tag !== undefined) lines.push(`  applied: ${body.tag}${body.commit === undefined ? '' : ` (commit ${body.commit})`}`);
  const by = body.supersededBy;
  if (by !== undefined) lines.push(`  superseded by: request ${by.requestId}${by.commit === undefined ? '' : ` (${by.tag ?? ''}, commit ${by.commit})`}`);
  if (body.analysis !== undefined) lines.push(...formatAnalysis(body.analysis).split('\n').map((l) => `  ${l}`));
  if (body.requestId !== undefined) lines.push(`  request id: ${body.requestId}`);
  return lines.join('\n');
}

function table(rows: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(0, ...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join('\n');
}

export interface Stream {
  write(chunk: string): unknown;
  readonly isTTY?: boolean | undefined;
}

/**
 * The original depctl's "Loading ▇ ..." while a request runs, on stderr so stdout stays the answer. Only for a
 * person at a terminal: never when stdout is redirected or piped.
 */
export class Spinner {
  static readonly FRAMES = ['▁', '▃', '▅', '▆', '▇', '█', '▇', '▆', '▅', '▃'];
  readonly #stream: Stream;
  /** The text before the bar; a function for a text that changes (elapsed time). */
  readonly #label: string | (() => string);
  #timer: NodeJS.Timeout | undefined;
  #frame = 0;

  constructor(stream: Stream, label: string | (() => string)) {
    this.#stream = stream;
    this.#label = label;
  }

  start(): void {
    this.#draw();
    this.#timer = setInterval(() => this.#draw(), 100);
  }

  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    // Carriage return and "erase line": the next output starts on a clean line.
    this.#stream.write('\r\x1b[2K');
  }

  #draw(): void {
    const frame = Spinner.FRAMES[this.#frame % Spinner.FRAMES.length] ?? '';
    this.#frame += 1;
    const label = typeof this.#label === 'string' ? this.#label : this.#label();
    // Erase the rest of the line: a text that changes may get shorter.
    this.#stream.write(`\r${label} ${frame} \x1b[K`);
  }
}

/** Runs `work` with a spinner when `enabled`; the spinner is gone before anything else is printed. */
export async function withSpinner<T>(enabled: boolean, stream: Stream, label: string, work: () => Promise<T>): Promise<T> {
  if (!enabled) return work();
  const spinner = new Spinner(stream, label);
  spinner.start();
  try {
    return await work();
  } finally {
    spinner.stop();
  }
}
