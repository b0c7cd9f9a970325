import type { PrometheusClient } from '../src/prometheus/client.js';
import { ServiceView } from '../src/cli/schemas.js';
import { trackFigures, type TrackFigure, type TrackFigures } from '../test/env/figures.js';

/**
 * What `npm run demo` tells about the regression-testing loop: it watches the service's canary (through the
 * deployer's own state answer) and Prometheus' figures and alerts while a canary runs, and says what became of it —
 * rolled back after N s (the alert that fired and the last figures), or promoted.
 */
export interface LoopWatch {
  stop(): void;
}

export interface LoopWatchOptions {
  readonly deployerUrl: string;
  readonly authorization: string;
  readonly service: string;
  readonly namespace: string;
  readonly prometheus: PrometheusClient;
  readonly serviceLabel: string;
  readonly window: string;
  readonly say: (line: string) => void;
}

const ms = (seconds: number): string => `${(seconds * 1000).toFixed(1)} ms`;
const pct = (ratio: number): string => `${(ratio * 100).toFixed(1)} %`;

/** One line of figures: `p95 latency 97.5 ms (stable 24.3 ms), error ratio 0.0 % (stable 0.0 %), 120 requests in 10s (stable 240)`. */
export function describeFigures(f: TrackFigures, window: string): string {
  const pair = (pick: (t: TrackFigure) => string): string => `${pick(f.canary)} (stable ${pick(f.stable)})`;
  return (
    `p95 latency ${pair((t) => ms(t.latencySeconds))}, error ratio ${pair((t) => pct(t.errorRatio))}, ` +
    `${f.canary.requests} requests in ${window} (stable ${f.stable.requests})`
  );
}

async function tracks(o: LoopWatchOptions): Promise<{ stable?: string | undefined; canary?: string | undefined } | undefined> {
  const res = await fetch(`${o.deployerUrl}/${o.service}`, { headers: { authorization: o.authorization, 'user-agent': 'deployer-demo' } });
  if (res.status !== 200) return undefined;
  const view = ServiceView.safeParse(await res.json());
  const deployment = view.success ? view.data.deployments?.[0] : undefined;
  return deployment === undefined ? undefined : { stable: deployment.stable?.version?.tag, canary: deployment.canary?.version?.tag };
}

async function firingAlert(o: LoopWatchOptions): Promise<string | undefined> {
  const samples = await o.prometheus.query(`ALERTS{alertstate="firing", deployer_action="rollback", namespace="${o.namespace}", ${o.serviceLabel}="${o.service}"}`);
  return samples[0]?.labels['alertname'];
}

export function watchLoop(o: LoopWatchOptions): LoopWatch {
  let canary: { tag: string; since: number; figures?: TrackFigures; alert?: string } | undefined;
  let busy = false;
  const tick = async (): Promise<void> => {
    const now = await tracks(o);
    if (now === undefined) return;
    if (canary !== undefined && now.canary !== canary.tag) {
      const seconds = ((Date.now() - canary.since) / 1000).toFixed(1);
      const figures = canary.figures === undefined ? 'no figures yet' : describeFigures(canary.figures, o.window);
      if (now.stable === canary.tag) {
        o.say(`demo: canary ${canary.tag} was promoted ${seconds} s after it started (${figures})`);
      } else if (canary.alert !== undefined) {
        o.say(`demo: canary ${canary.tag} was rolled back by Prometheus → Alertmanager → the deployer's hook ${seconds} s after it started: ${canary.alert}, ${figures}`);
      } else {
        o.say(`demo: canary ${canary.tag} was removed ${seconds} s after it started, with no alert firing (rolled back by hand?); ${figures}`);
      }
      canary = undefined;
    }
    if (now.canary === undefined) return;
    if (canary === undefined) {
      canary = { tag: now.canary, since: Date.now() };
      o.say(`demo: canary ${now.canary} is running next to stable ${now.stable ?? '?'}; Prometheus compares them over ${o.window}`);
    }
    const figures = await trackFigures(o.prometheus, o.namespace, o.service).catch(() => undefined);
    if (figures !== undefined) canary.figures = figures;
    canary.alert = (await firingAlert(o).catch(() => undefined)) ?? canary.alert;
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void tick()
      .catch(() => undefined)
      .finally(() => {
        busy = false;
      });
  }, 500);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
