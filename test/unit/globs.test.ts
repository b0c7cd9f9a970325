import { describe, expect, it } from 'vitest';
import { fileMatcher, globToRegExp, imageMatcher } from '../../src/deploy/globs.js';
import { parseManifests } from '../../src/deploy/manifests.js';
import { ManifestError } from '../../src/errors.js';
import type { ManifestFile } from '../../src/core/types.js';

describe('globToRegExp', () => {
  it.each([
    ['kustomization.yaml', 'kustomization.yaml', true],
    ['kustomization.yaml', 'kustomizationXyaml', false],
    ['*.yaml', 'a.yaml', true],
    ['*.yaml', 'dir/a.yaml', false],
    ['values-?.yaml', 'values-1.yaml', true],
    ['values-?.yaml', 'values-10.yaml', false],
    ['overlays/**', 'overlays/prod/patch.yaml', true],
    ['overlays/**', 'overlay/prod.yaml', false],
    ['**/patch.yaml', 'patch.yaml', true],
    ['**/patch.yaml', 'a/b/patch.yaml', true],
    ['a/**/b.yaml', 'a/b.yaml', true],
    ['a/**/b.yaml', 'a/x/y/b.yaml', true],
    ['(x)+.yaml', '(x)+.yaml', true],
    ['(x)+.yaml', 'xx.yaml', false],
  ])('%s against %s: %s', (glob, path, expected) => {
    expect(globToRegExp(glob).test(path)).toBe(expected);
  });
});

describe('fileMatcher', () => {
  it('matches a glob without a slash at any depth, one with a slash from the manifests directory', () => {
    const excluded = fileMatcher(['kustomization.yaml', 'helm/*.yaml']);
    expect(excluded('kustomization.yaml')).toBe(true);
    expect(excluded('overlays/prod/kustomization.yaml')).toBe(true);
    expect(excluded('helm/values.yaml')).toBe(true);
    expect(excluded('app/helm/values.yaml')).toBe(false);
    expect(excluded('deployment.yaml')).toBe(false);
  });

  it('excludes nothing without globs', () => {
    expect(fileMatcher([])('kustomization.yaml')).toBe(false);
  });
});

describe('imageMatcher', () => {
  it('matches whole references; * stays within a segment', () => {
    const own = imageMatcher(['registry.example.com/team/*', 'localhost:5000/**']);
    expect(own('registry.example.com/team/web')).toBe(true);
    expect(own('registry.example.com/team/sub/web')).toBe(false);
    expect(own('registry.example.com/other/web')).toBe(false);
    expect(own('localhost:5000/a/b/c')).toBe(true);
    expect(own('redis')).toBe(false);
  });
});

const file = (path: string, text: string): ManifestFile => ({ path, content: Buffer.from(text, 'utf8') });
const CONFIG_MAP = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n';
const KUSTOMIZATION = 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [settings.yaml]\n';

describe('parseManifests with exclude globs', () => {
  const files = [
    file('kubernetes/settings.yaml', CONFIG_MAP),
    file('kubernetes/kustomization.yaml', KUSTOMIZATION),
    file('kubernetes/helm/values.yaml', 'replicaCount: 2\n'),
  ];

  it('refuses the files that are no objects, naming each file and the exclude option', () => {
    let error: unknown;
    try {
      parseManifests(files, 'kubernetes');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ManifestError);
    const message = (error as ManifestError).message;
    expect(message).toContain('kubernetes/kustomization.yaml:1 (document 1): a Kustomization is kustomize');
    expect(message).toContain('kubernetes/helm/values.yaml:1 (document 1): not a Kubernetes object');
    expect(message).toContain("list it in the service's exclude globs");
  });

  it('reads only the files no glob excludes', () => {
    const objects = parseManifests(files, 'kubernetes', {}, ['kustomization.yaml', 'helm/**']);
    expect(objects.map((o) => `${o.file} ${o.object.kind}`)).toEqual(['kubernetes/settings.yaml ConfigMap']);
  });

  it('matches globs relative to the manifests directory, not the repository', () => {
    expect(() => parseManifests(files, 'kubernetes', {}, ['kubernetes/kustomization.yaml', 'helm/**'])).toThrow(/kustomization\.yaml/);
  });

  it('says there are no objects when every file is excluded', () => {
    expect(() => parseManifests(files, 'kubernetes', {}, ['**'])).toThrow(/no Kubernetes objects in "kubernetes"/);
  });
});
