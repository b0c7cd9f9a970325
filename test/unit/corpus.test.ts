import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { withApiDefaults } from '../../src/deploy/defaults.js';
import { parseManifests } from '../../src/deploy/manifests.js';
import { podTemplateOf } from '../../src/deploy/pod-template.js';
import type { KubeObject, ManifestFile } from '../../src/core/types.js';

// The corpus of test/corpus/ through the pure steps, without a cluster: every set parses as kubectl reads it, and
// after the defaults every port that server-side apply keys by protocol has one. test/e2e/corpus.test.ts deploys it.

const CORPUS = join(import.meta.dirname, '..', 'corpus');
const SETS = readdirSync(CORPUS).filter((entry) => statSync(join(CORPUS, entry)).isDirectory());

function filesBelow(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? filesBelow(path) : [path];
  });
}

function objectsOf(set: string): KubeObject[] {
  const setDir = join(CORPUS, set);
  const files: ManifestFile[] = filesBelow(join(setDir, 'kubernetes')).map((path) => ({
    path: relative(setDir, path),
    content: readFileSync(path),
  }));
  return parseManifests(files, 'kubernetes').map((m) => m.object);
}

type Port = Record<string, unknown>;

/** The ports of Services and of every container of every pod template, as they would be sent. */
function portsOf(object: KubeObject): Port[] {
  const spec = object['spec'] as Record<string, unknown> | undefined;
  if (object.kind === 'Service') return (spec?.['ports'] as Port[] | undefined) ?? [];
  const template =
    podTemplateOf(object) ?? (object.kind === 'ReplicationController' ? (spec?.['template'] as Record<string, unknown>) : undefined);
  const podSpec = template?.['spec'] as Record<string, unknown[] | undefined> | undefined;
  return ['containers', 'initContainers'].flatMap((field) =>
    (podSpec?.[field] ?? []).flatMap((c) => ((c as { ports?: Port[] }).ports ?? [])),
  );
}

describe('the corpus through the pure steps', () => {
  it('holds at least 10 sets, each with a README naming what it follows', () => {
    expect(SETS.length).toBeGreaterThanOrEqual(10);
    for (const set of SETS) expect(readFileSync(join(CORPUS, set, 'README.md'), 'utf8')).toMatch(/Follows [\w.-]+\/[\w.-]+, `[^`]+`/);
  });

  it.each(SETS)('%s parses, and every port is sent with a protocol', (set) => {
    const objects = objectsOf(set);
    expect(objects.length).toBeGreaterThan(0);

    const sent = withApiDefaults(objects);

    for (const object of sent) {
      for (const port of portsOf(object)) expect(port, `${object.kind} ${object.metadata.name}`).toHaveProperty('protocol');
    }
  });

  it('keeps the corpus honest: most sets omit protocol somewhere, as public manifests do', () => {
    const omitting = SETS.filter((set) => objectsOf(set).some((o) => portsOf(o).some((p) => p['protocol'] === undefined)));
    expect(omitting.length).toBeGreaterThanOrEqual(8);
  });
});
