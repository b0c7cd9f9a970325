import type { PrometheusClient } from '../../src/prometheus/client.js';
import { recordNames } from '../../src/prometheus/comparisons.js';
import { GROUND_MONITORING } from './prometheus.js';

/**
 * What the regression-testing loop on the ground reads back (test/monitoring/loop.test.ts and `npm run demo`): the
 * figures the shipped recording rules give each track of a service, and a poll.
 */

/** The figures of one track, as the shipped recording rules give them. */
export interface TrackFigure {
  requests: number;
  latencySeconds: number;
  errorRatio: number;
}
export interface TrackFigures {
  canary: TrackFigure;
  stable: TrackFigure;
}

/**
 * The recorded figures (requests, latency quantile, error ratio) of both tracks of a service, or undefined while one
 * track has none yet.
 */
export async function trackFigures(prometheus: PrometheusClient, namespace: string, service: string): Promise<TrackFigures | undefined> {
  const records = recordNames(GROUND_MONITORING);
  const read = async (record: string): Promise<Map<string, number>> => {
    const samples = await prometheus.query(`${record}{namespace="${namespace}", ${GROUND_MONITORING.labels.service}="${service}"}`);
    return new Map(samples.map((s) => [s.labels[GROUND_MONITORING.labels.track] ?? '', s.value]));
  };
  const [requests, latency, errors] = await Promise.all([read(records.requests), read(records.latency), read(records.errorRatio)]);
  const track = (t: string): TrackFigure | undefined => {
    const r = requests.get(t);
    const l = latency.get(t);
    const e = errors.get(t);
    return r === undefined || l === undefined || e === undefined ? undefined : { requests: Math.round(r), latencySeconds: l, errorRatio: e };
  };
  const canary = track('canary');
  const stable = track('stable');
  return canary === undefined || stable === undefined ? undefined : { canary, stable };
}

/** Calls `check` every 250 ms until it returns a value (not undefined); throws naming `what` after `timeoutMs`. */
export async function pollUntil<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`waited ${timeoutMs / 1000} s for ${what}${lastError instanceof Error ? ` (last error: ${lastError.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
