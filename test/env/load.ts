import { request } from 'node:http';

/**
 * A bounded load generator for the sample service on the ground's node: GET / on a new connection each time (so that
 * kube-proxy spreads requests over every pod behind a ClusterIP), at a fixed rate, for at most a fixed time. It only
 * ever sends to an address inside the ground's own pod or service range, never elsewhere.
 */
export const MAX_RATE = 100;
export const MAX_DURATION_MS = 15 * 60_000;

export interface LoadOptions {
  /** ip:port of a ClusterIP or pod of the ground. */
  readonly address: string;
  /** Requests per second, at most MAX_RATE. */
  readonly rate: number;
  /** It stops by itself after this long, at most MAX_DURATION_MS. */
  readonly durationMs: number;
  /** The ground's ranges (CIDR /8../24 as A.B.C.D/N) the address must lie in. */
  readonly allowedCidrs: readonly string[];
}

export interface LoadFigures {
  readonly sent: number;
  /** Answers by version (the sample service names it) and status code. */
  readonly byVersion: Readonly<Record<string, { ok: number; failed: number }>>;
  /** Requests that got no answer (connection refused, timeout). */
  readonly lost: number;
}

export interface Load {
  figures(): LoadFigures;
  /** Pauses or resumes sending (the process keeps its bound). */
  pause(paused: boolean): void;
  stop(): Promise<LoadFigures>;
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const toInt = (a: string): number => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const mask = Number(bits);
  if (base === undefined || !Number.isInteger(mask) || mask < 8 || mask > 32) return false;
  const shift = 2 ** (32 - mask);
  return Math.floor(toInt(ip) / shift) === Math.floor(toInt(base) / shift);
}

export function startLoad(options: LoadOptions): Load {
  const host = options.address.split(':')[0] ?? '';
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(host) || !options.allowedCidrs.some((c) => inCidr(host, c))) {
    throw new Error(`load: ${options.address} is outside the ground's ranges (${options.allowedCidrs.join(', ')})`);
  }
  if (!(options.rate > 0 && options.rate <= MAX_RATE)) throw new Error(`load: rate ${options.rate} is not in (0, ${MAX_RATE}]`);
  const durationMs = Math.min(options.durationMs, MAX_DURATION_MS);
  let sent = 0;
  let lost = 0;
  let paused = false;
  const byVersion: Record<string, { ok: number; failed: number }> = {};
  const inFlight = new Set<Promise<void>>();
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const req = request(`http://${options.address}/`, { agent: false, timeout: 5_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', () => resolve());
        res.on('end', () => {
          let version = '?';
          try {
            version = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { version?: string }).version ?? '?';
          } catch {
            // not the sample service's JSON
          }
          const entry = (byVersion[version] ??= { ok: 0, failed: 0 });
          if ((res.statusCode ?? 0) < 500) entry.ok++;
          else entry.failed++;
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        lost++;
        resolve();
      });
      req.end();
    });
  const timer = setInterval(() => {
    if (paused) return;
    sent++;
    const p = one();
    inFlight.add(p);
    void p.then(() => inFlight.delete(p));
  }, 1000 / options.rate);
  const end = setTimeout(() => clearInterval(timer), durationMs);
  timer.unref();
  end.unref();
  const figures = (): LoadFigures => ({ sent, lost, byVersion: structuredClone(byVersion) });
  return {
    figures,
    pause(p) {
      paused = p;
    },
    async stop() {
      clearInterval(timer);
      clearTimeout(end);
      await Promise.all([...inFlight]);
      return figures();
    },
  };
}
