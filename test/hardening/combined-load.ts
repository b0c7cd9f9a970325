import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { openConnection, trickleWrites, type Conversation } from './slow-client.js';

/**
 * The bounded load scenario of the second hardening round ("done when" of the issue), loopback only: slow
 * connections, verdict waits whose callers hang up, read-token fetches of unknown commits and a read that makes the
 * registry answer 400 MB, all at once, while a CI deploy runs. Used by test/hardening/combined-load.test.ts (which
 * asserts what came out right) and bench/hardening-load.ts (which reports the deploy's time and the peak memory);
 * neither the shape nor this code asserts a duration.
 */

/** How much of each kind of load; `DONE_WHEN` is the issue's. */
export interface LoadShape {
  /** Connections that trickle their request in, one write per `trickleEveryMs`: half headers, half an unauthenticated body. */
  readonly slowConnections: number;
  /** Deploys with `wait=30m` whose callers hang up after `hangUpAfterMs`. */
  readonly abandonedWaits: number;
  /** `GET /SERVICE/tags?commit=<random hex>` with a read token: each forces a fetch. */
  readonly readFetches: number;
  /** Whether one `GET /SERVICE/tags` makes the registry answer 400 MB. */
  readonly hugeRead: boolean;
  readonly hangUpAfterMs: number;
  readonly trickleEveryMs: number;
}

export const DONE_WHEN: LoadShape = { slowConnections: 200, abandonedWaits: 100, readFetches: 100, hugeRead: true, hangUpAfterMs: 3_000, trickleEveryMs: 1_000 };

/** The kinds of load one at a time (the bench's ratios: what each alone does to the deploy), and none. */
export const ONE_AT_A_TIME: Readonly<Record<'none' | 'slow' | 'waits' | 'reads' | 'huge', LoadShape>> = {
  none: { ...DONE_WHEN, slowConnections: 0, abandonedWaits: 0, readFetches: 0, hugeRead: false },
  slow: { ...DONE_WHEN, abandonedWaits: 0, readFetches: 0, hugeRead: false },
  waits: { ...DONE_WHEN, slowConnections: 0, readFetches: 0, hugeRead: false },
  reads: { ...DONE_WHEN, slowConnections: 0, abandonedWaits: 0, hugeRead: false },
  huge: { ...DONE_WHEN, slowConnections: 0, abandonedWaits: 0, readFetches: 0 },
};

/** Who is asked what; each entry names a token (Basic authorization) and a configured service. */
export interface LoadTargets {
  /** The deployer, `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** The CI deploy measured under load: `PUT /SERVICE/deploy` with `commit=`, form-encoded as curl sends it. */
  readonly deploy: { readonly auth: string; readonly service: string; readonly commit: string; readonly requestId?: string };
  /** The waits: a service whose rollout never finishes (no kubelet on the ground), deployed by `tag`. */
  readonly wait: { readonly auth: string; readonly service: string; readonly tag: string };
  /** The read fetches: a service whose repository is fetched for each unknown commit. */
  readonly read: { readonly auth: string; readonly service: string };
  /** One `GET /SERVICE/tags` of a service whose image lives on a registry that answers 400 MB. */
  readonly hugeRegistry: { readonly auth: string; readonly service: string };
}

export interface Answered {
  readonly status: number;
  readonly body: Record<string, unknown>;
  /** From sending the request to the end of its body (for the bench; never asserted). */
  readonly ms: number;
  /** When it was sent (Date.now()). */
  readonly sentAt: number;
}

export interface LoadOutcome {
  readonly deploy: Answered;
  /** Waits refused at the cap (503 with Retry-After, before anything is deployed), and those whose callers hung up. */
  readonly waits: { readonly refused: number; readonly abandoned: number; readonly unexpected: readonly string[] };
  /** The read fetches' answers, counted by status. */
  readonly reads: Readonly<Record<string, number>>;
  /** The 400 MB read's answer, when the shape has it. */
  readonly huge: Answered | undefined;
  /**
   * The slow connections: how many were opened, how many the server closed before the client gave up, and the
   * status line each got (`none` when it got no answer), counted.
   */
  readonly slow: { readonly opened: number; readonly closedByServer: number; readonly answers: Readonly<Record<string, number>> };
}

async function answered(url: string, init: RequestInit): Promise<Answered> {
  const sentAt = Date.now();
  const start = performance.now();
  const res = await fetch(url, init);
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { raw: text.slice(0, 200) };
  }
  return { status: res.status, body, ms: performance.now() - start, sentAt };
}

const count = (values: readonly string[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
};

/**
 * A slow client: the request line and a few headers, then either more headers or (after an unauthenticated
 * request's headers) its body, one write per `everyMs`, until the server closes the connection or `giveUpAfterMs`
 * passed. Whether the server closed it first, and the status line it answered (if any).
 */
async function slowClient(url: string, service: string, body: boolean, everyMs: number, giveUpAfterMs: number): Promise<{ closedByServer: boolean; answer: string }> {
  const c: Conversation = await openConnection(url);
  if (body) {
    c.socket.write(`PUT /${service}/deploy HTTP/1.1\r\nHost: deployer\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n`);
  } else {
    c.socket.write(`GET /${service} HTTP/1.1\r\nHost: deployer\r\n`);
  }
  const times = Math.ceil(giveUpAfterMs / everyMs);
  const written = await trickleWrites(c, body ? 'x' : 'X-Slow: 1\r\n', everyMs, times);
  const closedByServer = written < times;
  if (!closedByServer) c.socket.destroy();
  await c.closed;
  return { closedByServer, answer: /^HTTP\/1\.1 (\d{3})/.exec(c.received())?.[1] ?? 'none' };
}

/** One wait: `refused` (503 with Retry-After, the cap), `abandoned` (the caller hung up after `hangUpAfterMs`), else what came. */
async function abandonedWait(targets: LoadTargets, hangUpAfterMs: number): Promise<string> {
  const caller = AbortSignal.timeout(hangUpAfterMs);
  try {
    const res = await fetch(`${targets.url}/${targets.wait.service}/deploy`, {
      method: 'PUT',
      headers: { authorization: targets.wait.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ tag: targets.wait.tag, wait: '30m' }),
      signal: caller,
    });
    const text = await res.text();
    if (res.status === 503 && res.headers.get('retry-after') !== null) return 'refused';
    return `${res.status} ${text.slice(0, 200)}`;
  } catch (err) {
    if (caller.aborted) return 'abandoned';
    return `wait failed: ${String(err)}`;
  }
}

/**
 * Runs the scenario: the load is started first (slow connections open, waits, reads and the huge read sent), then
 * the CI deploy (`deployAnswered` is called as soon as it has answered); resolves once every part has ended — the slow connections when the server has cut them, or when
 * `giveUpAfterMs` (default 2 minutes, far beyond the default request timeout of 30 s) has passed.
 */
export async function combinedLoad(
  targets: LoadTargets,
  shape: LoadShape = DONE_WHEN,
  options: { readonly giveUpAfterMs?: number; readonly deployAnswered?: () => Promise<void> } = {},
): Promise<LoadOutcome> {
  const giveUpAfterMs = options.giveUpAfterMs ?? 120_000;
  const slowOpened = Array.from({ length: shape.slowConnections }, (_, i) =>
    slowClient(targets.url, targets.read.service, i % 2 === 0, shape.trickleEveryMs, giveUpAfterMs),
  );
  const waits = Array.from({ length: shape.abandonedWaits }, () => abandonedWait(targets, shape.hangUpAfterMs));
  const reads = Array.from({ length: shape.readFetches }, () =>
    answered(`${targets.url}/${targets.read.service}/tags?commit=${randomBytes(20).toString('hex')}`, {
      headers: { authorization: targets.read.auth },
    }).then(
      (a) => String(a.status),
      (err: unknown) => `failed: ${String(err)}`,
    ),
  );
  const huge = shape.hugeRead
    ? answered(`${targets.url}/${targets.hugeRegistry.service}/tags`, { headers: { authorization: targets.hugeRegistry.auth } })
    : undefined;

  const deploy = await answered(`${targets.url}/${targets.deploy.service}/deploy`, {
    method: 'PUT',
    headers: {
      authorization: targets.deploy.auth,
      'content-type': 'application/x-www-form-urlencoded',
      'user-agent': 'curl/8.5.0',
      ...(targets.deploy.requestId === undefined ? {} : { 'x-request-id': targets.deploy.requestId }),
    },
    body: new URLSearchParams({ commit: targets.deploy.commit }).toString(),
  });
  await options.deployAnswered?.();

  const waitResults = await Promise.all(waits);
  const slow = await Promise.all(slowOpened);
  return {
    deploy,
    waits: {
      refused: waitResults.filter((w) => w === 'refused').length,
      abandoned: waitResults.filter((w) => w === 'abandoned').length,
      unexpected: waitResults.filter((w) => w !== 'refused' && w !== 'abandoned'),
    },
    reads: count(await Promise.all(reads)),
    huge: await huge,
    slow: {
      opened: slow.length,
      closedByServer: slow.filter((s) => s.closedByServer).length,
      answers: count(slow.map((s) => s.answer)),
    },
  };
}

/**
 * The TCP connections of the deployer's listening `port` that are still open on its side (from /proc/net/tcp and
 * tcp6): every state but LISTEN and TIME_WAIT (a connection already closed on both sides, kept by the kernel only).
 */
export function openConnectionsOn(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let open = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      const state = fields[3];
      if (local === undefined || state === undefined) continue;
      if (local.endsWith(`:${hexPort}`) && state !== '0A' && state !== '06') open++;
    }
  }
  return open;
}

/** The command lines of every process below `pid` (children, their children, ...). */
export function descendantsOf(pid: number): string[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces; the parent's id is the second field after it.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const below = new Set<number>([pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [child, parent] of parents) {
      if (below.has(parent) && !below.has(child)) {
        below.add(child);
        grew = true;
      }
    }
  }
  below.delete(pid);
  const lines: string[] = [];
  for (const p of below) {
    try {
      lines.push(readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter((a) => a !== '').join(' '));
    } catch {
      // gone meanwhile
    }
  }
  return lines.sort();
}

/**
 * git processes below `pid` other than the long-lived object readers (`git cat-file --batch-command`, one per
 * repository cache, stopped after a minute idle): what a deploy or a fetch left behind.
 */
export function strayGitProcesses(pid: number): string[] {
  return descendantsOf(pid).filter((cmd) => /(^|\/)git(-[a-z-]+)?( |$)/.test(cmd) && !cmd.includes('cat-file --batch-command'));
}
