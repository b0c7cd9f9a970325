import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Metrics } from '../../src/report/metrics.js';

const Dashboard = z.object({
  uid: z.string(),
  title: z.string(),
  panels: z.array(
    z.object({
      id: z.number(),
      title: z.string(),
      gridPos: z.object({ x: z.number(), y: z.number(), w: z.number(), h: z.number() }),
      targets: z.array(z.object({ refId: z.string(), expr: z.string().min(1) })).min(1),
    }),
  ),
});

describe('kubernetes/monitoring/grafana-dashboard.json', () => {
  const dashboard = Dashboard.parse(JSON.parse(readFileSync(new URL('../../kubernetes/monitoring/grafana-dashboard.json', import.meta.url), 'utf8')));

  it('queries only metrics the deployer exports, by their label names', async () => {
    const text = await new Metrics({ version: 't' }).render();
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b((?:deployer|process|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1] ?? '')));
    for (const label of ['deployer_service', 'nodejs_version']) used.delete(label); // labels, not metrics
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) {
      const base = name.replace(/_(bucket|count|sum)$/, '');
      expect(exported.has(name) || exported.has(base), name).toBe(true);
    }
    // The service label is the one prometheus-operator leaves alone.
    for (const e of exprs) expect(e).not.toMatch(/[{,(\s]service[=!~,)]/);
    expect(exprs.some((e) => e.includes('deployer_lead_time_seconds_bucket'))).toBe(true);
    expect(exprs.some((e) => e.includes('deployer_time_to_restore_seconds_bucket'))).toBe(true);
  });

  it('has unique panel ids', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
