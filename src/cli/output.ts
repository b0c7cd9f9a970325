import type { DeployResult, ErrorBody, ServiceList, ServiceView, TagsView, VersionView } from './schemas.js';

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
  return table(rows);
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

export function formatDeploy(result: DeployResult): string {
  const lines = [result.message, table([
    ['commit', result.commit],
    ['tag', result.tag],
    ['took', `${(result.durationMs / 1000).toFixed(1)} s`],
  ])];
  if (result.images.length > 0) {
    lines.push('images:');
    for (const image of result.images) lines.push(`  ${image.applied}`);
  }
  if (result.objects.length > 0) {
    lines.push('objects:');
    const rows = result.objects.map((o): [string, string] => [
      `  ${o.kind} ${o.namespace === undefined ? '' : `${o.namespace}/`}${o.name}`,
      o.action,
    ]);
    lines.push(table(rows));
  }
  return lines.join('\n');
}

export function formatVersion(depctl: string, deployer: VersionView | undefined): string {
  const lines = [`depctl ${depctl} (node ${process.versions.node})`];
  if (deployer !== undefined) lines.push(`${deployer.name} ${deployer.version}`);
  return lines.join('\n');
}

/** The server's error text, then what it says about the field or objects at fault, and its request id. */
export function formatErrorBody(status: number, body: ErrorBody): string {
  const lines = [`${body.error} (${status})`];
  if (body.field !== undefined) lines.push(`  field: ${body.field}`);
  for (const f of body.failures ?? []) {
    lines.push(`  ${f.kind} ${f.namespace === undefined ? '' : `${f.namespace}/`}${f.name}: ${f.reason}`);
  }
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
  readonly #label: string;
  #timer: NodeJS.Timeout | undefined;
  #frame = 0;

  constructor(stream: Stream, label: string) {
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
    this.#stream.write(`\r${this.#label} ${frame} `);
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
