import type { StepProfile } from './profile.js';
import { formatBytes, formatMs, formatRatio, summarize } from './stats.js';

/** One figure of the results: timing samples (ms) or one memory reading (bytes). */
export interface Row {
  section: string;
  figure: string;
  samples?: number[];
  bytes?: number;
  showP99?: boolean;
  /** p50 of the baseline this figure is compared with (ms). */
  baselineP50?: number;
  target?: string;
  met?: boolean;
  note?: string;
}

export interface StepTable {
  title: string;
  profiles: StepProfile[];
  /** Names of the servers the deployer talks HTTP to, by `host:port` (the apiserver, the registry). */
  servers?: Record<string, string>;
}

export interface ReportInput {
  machine: Record<string, string>;
  settings: Record<string, unknown>;
  rows: Row[];
  steps: StepTable[];
  totalMs: number;
  idleRss: number;
  concPeak: number;
  /** The deployer's own warnings and errors during the run, counted. */
  deployerProblems: string[];
}

/** What would cut a step's time, by step; the figures say which steps matter. */
const HINTS: Record<string, string> = {
  'source.resolve':
    'one `git fetch` when the cache lacks the commit (git, git-remote-http and index-pack here; on the server two ' +
    'requests, each a `git http-backend` + `upload-pack`); into a cache with history the new small blobs, the ' +
    'manifests among them, come in the same pack. What is left: process start-up on both sides and the round trips',
  'source.filesAt':
    'the commit, its trees and the manifests through the cache\'s long-lived `cat-file` reader; a second fetch only ' +
    'when the blobs did not come with the commit (a cold cache, a file above the small-blob limit)',
  'source.commitFacts': 'author and line counts for the event log, read after the answer (not part of a deploy\'s time)',
  'registry.tags': 'a tags/list round trip to the registry: cache the list for a few seconds, or HEAD the expected tag directly',
  'registry.digestOf': 'a HEAD manifest round trip per image, in parallel, over kept-alive connections',
  'kube.liveAnnotations':
    'the ownership read, a GET per object, at once with the dry-run; the Deployment\'s GET also answers the read of ' +
    'the version it replaces (kube.getDeployment)',
  'kube.getDeployment':
    'the version a stable Deployment replaces (it joins the ownership read of the same object) and one read of the ' +
    'canary a stable deploy would remove',
  'kube.dryRun': 'a dry-run per object, each dependency tier at once',
  'kube.apply': 'one server-side apply per object, each dependency tier at once',
  'kube.scopeOf': 'API discovery to tell namespaced from cluster-scoped kinds, cached for the process lifetime',
  'kube.deleteDeployments': 'the canary clean-up before a stable deploy, only when a canary of the service exists',
};

function stepSummary(profiles: readonly StepProfile[]): Array<{ step: string; calls: number; p50: number; p95: number }> {
  const steps = new Set(profiles.flatMap((p) => Object.keys(p.steps)));
  const rows = [...steps].map((step) => {
    const s = summarize(profiles.map((p) => p.steps[step] ?? 0));
    const calls = profiles.reduce((n, p) => n + (p.calls[step] ?? 0), 0) / Math.max(1, profiles.length);
    return { step, calls, p50: s.p50, p95: s.p95 };
  });
  const other = summarize(profiles.map((p) => p.totalMs - Object.values(p.steps).reduce((a, b) => a + b, 0)));
  rows.sort((a, b) => b.p50 - a.p50);
  rows.push({ step: '(engine outside adapter calls: parse, rewrite, order, locks)', calls: 0, p50: other.p50, p95: other.p95 });
  return rows;
}

function cells(row: Row): { n: string; p50: string; p95: string; p99: string; ratio: string; target: string; met: string } {
  const met = row.met === undefined ? '' : row.met ? 'yes' : 'NO';
  const target = row.target ?? '';
  if (row.bytes !== undefined) {
    return { n: '1', p50: formatBytes(row.bytes), p95: '', p99: '', ratio: '', target, met };
  }
  const s = summarize(row.samples ?? []);
  return {
    n: String(s.n),
    p50: formatMs(s.p50),
    p95: formatMs(s.p95),
    p99: row.showP99 === true ? formatMs(s.p99) : '',
    ratio: row.baselineP50 === undefined ? '' : formatRatio(s.p50, row.baselineP50),
    target,
    met,
  };
}

function textTable(header: readonly string[], body: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

const md = (s: string): string => s.replaceAll('|', '\\|');

export function renderReport(input: ReportInput): { markdown: string; table: string } {
  const header = ['Figure', 'n', 'p50', 'p95', 'p99', 'vs baseline (p50)', 'Target', 'Met'];
  const body = input.rows.map((r) => {
    const c = cells(r);
    return [`${r.section}: ${r.figure}`, c.n, c.p50, c.p95, c.p99, c.ratio, c.target, c.met];
  });
  const table = textTable(header, body);

  const out: string[] = [];
  out.push('# Deployer benchmark: latest results', '');
  out.push('Produced by `npm run bench` (bench/run.ts); rewritten on each run. Durations are wall-clock milliseconds.', '');
  out.push('| Machine | |', '|---|---|');
  for (const [k, v] of Object.entries(input.machine)) out.push(`| ${k} | ${md(v)} |`);
  out.push(`| bench run time | ${formatMs(input.totalMs)} |`, '');
  out.push(
    'The baseline is the original deployer\'s way of working, scripted: a working copy brought to the commit by ' +
      '`git fetch` + `git checkout` (a full `git clone` when cold), then one `kubectl apply -f` process per manifest ' +
      'file with the admin kubeconfig. Ratios compare p50 with the baseline\'s p50 (warm figures with the warm ' +
      'baseline deploy, cold figures with the baseline\'s full clone alone; the concurrent figure with one warm ' +
      'baseline deploy). All parts share the machine: the load average in the table above tells how busy it was ' +
      '(other work on the machine inflates every figure, the baseline\'s too).',
    '',
  );
  out.push(`| ${header.join(' | ')} | Note |`, `|${header.map(() => '---').join('|')}|---|`);
  input.rows.forEach((r, i) => {
    out.push(`| ${(body[i] ?? []).map(md).join(' | ')} | ${md(r.note ?? '')} |`);
  });
  out.push('');

  out.push('## Where the time goes (per step)', '');
  out.push(
    'The deploy engine run in the bench process with the same configuration and real adapters, each adapter call ' +
      'timed; calls of one step within a deploy are summed (concurrent calls can make the sum exceed the total).',
    '',
  );
  const stepSummaries = new Map<string, ReturnType<typeof stepSummary>>();
  for (const t of input.steps) {
    const summary = stepSummary(t.profiles);
    stepSummaries.set(t.title, summary);
    const totals = summarize(t.profiles.map((p) => p.totalMs));
    out.push(`### ${t.title}: engine total p50 ${formatMs(totals.p50)}, p95 ${formatMs(totals.p95)}`, '');
    const perDeploy = (f: (p: StepProfile) => number): string =>
      (t.profiles.reduce((n, p) => n + f(p), 0) / Math.max(1, t.profiles.length)).toFixed(1);
    const commands = [...new Set(t.profiles.flatMap((p) => Object.keys(p.processes)))].sort();
    out.push(
      `Per deploy: ${commands.map((c) => `${perDeploy((p) => p.processes[c] ?? 0)} \`${c}\` processes`).join(', ') || 'no child processes'} ` +
        `started by the deployer; ${perDeploy((p) => p.gitRequests ?? 0)} requests to the git server (each one a ` +
        '`git http-backend` process there).',
      '',
    );
    const hosts = [...new Set(t.profiles.flatMap((p) => Object.keys(p.httpRequests)))].sort();
    out.push(
      `HTTP from the deployer per deploy: ${hosts.map((h) => `${perDeploy((p) => p.httpRequests[h] ?? 0)} requests to ${t.servers?.[h] ?? h}`).join(', ') || 'none'}; ` +
        `${perDeploy((p) => p.connections)} new connections (the rest went over kept-alive ones).`,
      '',
    );
    out.push('| Step | calls per deploy | p50 | p95 | share of p50 total |', '|---|---|---|---|---|');
    for (const s of summary) {
      const share = totals.p50 > 0 ? `${((s.p50 / totals.p50) * 100).toFixed(0)} %` : '';
      out.push(`| ${md(s.step)} | ${s.calls === 0 ? '' : s.calls.toFixed(1)} | ${formatMs(s.p50)} | ${formatMs(s.p95)} | ${share} |`);
    }
    out.push('');
  }

  const missed = input.rows.filter((r) => r.met === false);
  out.push('## Targets missed: what dominates, what would cut it', '');
  if (missed.length === 0) out.push('All targets met in this run.', '');
  for (const r of missed) {
    out.push(`- **${md(`${r.section}: ${r.figure}`)}** (target ${md(r.target ?? '')}).`);
    let profileTitle: string | undefined;
    if (r.section.startsWith('Cold deploy')) profileTitle = input.steps.find((t) => t.title.startsWith(r.section))?.title;
    else if (r.section === 'Warm deploy' || r.section === 'Concurrency') profileTitle = input.steps[0]?.title;
    const summary = profileTitle === undefined ? undefined : stepSummaries.get(profileTitle);
    if (r.section === 'Memory') {
      const compiled = input.rows.find((x) => x.section === 'Memory' && x.figure.includes('compiled'))?.bytes;
      out.push(
        `  Idle ${formatBytes(input.idleRss)} through tsx` +
          (compiled === undefined ? '' : `, ${formatBytes(compiled)} for the compiled build with the same config`) +
          `; peak ${formatBytes(input.concPeak)} in the concurrency run. @kubernetes/client-node is not loaded (only for a ` +
          'kubeconfig with an exec plugin or auth provider). A bare node process is the floor (see its row: most of it is ' +
          "node's own binary mapped in); above it, zod, fastify (with ajv, which its default schema controller loads) " +
          'and prom-client cost the most (the import rows), then the young generation V8 keeps after start-up. Cut: ' +
          "fastify without ajv if no route needs it (the routes' inputs are zod schemas), a smaller young generation in " +
          "the image's NODE_OPTIONS.",
      );
    }
    if (summary !== undefined) {
      const top = summary.filter((s) => !s.step.startsWith('(')).slice(0, 3);
      out.push(`  Measured steps (${profileTitle ?? ''}): ${top.map((s) => `${s.step} ${formatMs(s.p50)}`).join(', ')}.`);
      for (const s of top) {
        const hint = HINTS[s.step];
        if (hint !== undefined) out.push(`  - ${s.step}: ${hint}.`);
      }
    }
    if (r.section === 'Concurrency') {
      const warm = input.steps[0]?.profiles ?? [];
      const gitPerDeploy = warm.reduce((n, p) => n + (p.processes['git'] ?? 0), 0) / Math.max(1, warm.length);
      const requestsPerDeploy = warm.reduce((n, p) => n + (p.gitRequests ?? 0), 0) / Math.max(1, warm.length);
      out.push(
        '  Deploys of one service run one after the other (per-service lock); of those waiting only the newest runs ' +
          '(the others answer as superseded), so a burst costs about two deploys. Every deploy starts ' +
          `${gitPerDeploy.toFixed(0)} git processes and makes ${requestsPerDeploy.toFixed(0)} requests to the git ` +
          'server (each a `git http-backend` there; see the profile), all on the same cores as the apiserver, etcd ' +
          'and the registry. Cut: the git work per deploy (above).',
      );
    }
  }
  out.push('', '## Warnings and errors in the deployer\'s log', '');
  if (input.deployerProblems.length === 0) out.push('None.');
  for (const p of input.deployerProblems.slice(0, 20)) out.push(`- ${md(p)}`);
  out.push('', '## Settings', '', '```json', JSON.stringify(input.settings, null, 2), '```', '');
  return { markdown: out.join('\n'), table };
}
