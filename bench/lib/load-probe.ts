import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * What a deploy waited for while the deployer was under load, seen from outside its process: the event-loop delay
 * of both sides (the load generator's own, so that a slow client is not blamed on the server), the deployer's
 * upstream calls (its metrics), and the deploy's own steps (its log lines, by request id).
 */

/** The deployer's /metrics at one moment: upstream call totals per `system operation`, and its event-loop lag since the last scrape. */
export interface MetricsSnapshot {
  readonly calls: ReadonlyMap<string, { sum: number; count: number }>;
  /** prom-client resets its event-loop histogram at every scrape: these cover the time since the previous one. */
  readonly lagMaxMs: number;
  readonly lagP99Ms: number;
}

const CALL = /^deployer_upstream_call_duration_seconds_(sum|count)\{([^}]*)\} ([0-9.e+-]+)$/;

export async function scrapeMetrics(url: string): Promise<MetricsSnapshot> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const calls = new Map<string, { sum: number; count: number }>();
  let lagMaxMs = 0;
  let lagP99Ms = 0;
  for (const line of text.split('\n')) {
    const call = CALL.exec(line);
    if (call !== null) {
      const labels = new Map<string, string>();
      for (const m of (call[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels.set(m[1] ?? '', m[2] ?? '');
      const key = `${labels.get('system') ?? '?'} ${labels.get('operation') ?? '?'}`;
      const entry = calls.get(key) ?? { sum: 0, count: 0 };
      if (call[1] === 'sum') entry.sum += Number(call[3]);
      else entry.count += Number(call[3]);
      calls.set(key, entry);
    }
    if (line.startsWith('nodejs_eventloop_lag_max_seconds ')) lagMaxMs = Number(line.split(' ')[1]) * 1000;
    if (line.startsWith('nodejs_eventloop_lag_p99_seconds ')) lagP99Ms = Number(line.split(' ')[1]) * 1000;
  }
  return { calls, lagMaxMs, lagP99Ms };
}

/** The calls made between two snapshots, slowest total first: `system operation: N calls, total ms, mean ms`. */
export function callsBetween(before: MetricsSnapshot, after: MetricsSnapshot): string[] {
  const rows: Array<{ key: string; count: number; ms: number }> = [];
  for (const [key, a] of after.calls) {
    const b = before.calls.get(key) ?? { sum: 0, count: 0 };
    const count = a.count - b.count;
    if (count > 0) rows.push({ key, count, ms: (a.sum - b.sum) * 1000 });
  }
  return rows.sort((x, y) => y.ms - x.ms).map((r) => `${r.key}: ${r.count} calls, ${r.ms.toFixed(0)} ms in all, ${(r.ms / r.count).toFixed(0)} ms each`);
}

/** This process's event-loop delay while it runs; the load generator lives here. */
export function clientLag(): { stop(): { maxMs: number; p99Ms: number } } {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  return {
    stop() {
      h.disable();
      return { maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6 };
    },
  };
}

interface LogLine {
  readonly time: number;
  readonly msg: string;
  readonly reqId?: string;
  readonly requestId?: string;
  readonly what?: string;
  readonly ms?: number;
  readonly repository?: string;
}

/**
 * The deploy's steps from the deployer's log (`x-request-id` = `requestId`), in milliseconds from `sentAt` (the
 * client's clock; one machine): when the server saw the request, took and let go of the Lease, answered; and the git
 * fetches of the deploy's repository that ended meanwhile (debug level), each with its duration.
 */
export function deployTimeline(logFile: string, requestId: string, sentAt: number, repository: string): string {
  const lines: LogLine[] = [];
  for (const text of readFileSync(logFile, 'utf8').split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {
      // a line cut by the process's end
    }
  }
  const mine = lines.filter((l) => l.reqId === requestId || l.requestId === requestId);
  const at = (msg: string): string => {
    const l = mine.find((m) => m.msg === msg);
    return l === undefined ? '–' : `${l.time - sentAt} ms`;
  };
  const end = mine.find((m) => m.msg === 'request completed')?.time ?? Infinity;
  const fetches = lines.filter((l) => l.msg === 'git fetch' && l.time >= sentAt && l.time <= end && l.repository?.endsWith(repository) === true);
  return (
    `server saw it ${at('incoming request')}, Lease taken ${at('lease acquired')}, released ${at('lease released')}, answered ${at('request completed')}; ` +
    `git fetches of its repository meanwhile: ${fetches.map((f) => `${f.ms ?? '?'} ms (ended at ${f.time - sentAt})`).join(', ') || 'none logged'}`
  );
}
