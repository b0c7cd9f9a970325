import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { isUntagged, isValidTag, nameOf, parseImageRef, withVersion } from '../../src/registry/image-ref.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('parseImageRef', () => {
  it.each([
    ['nginx', { registry: 'docker.io', repository: 'library/nginx', tag: undefined, digest: undefined }],
    ['nginx:1.25', { registry: 'docker.io', repository: 'library/nginx', tag: '1.25', digest: undefined }],
    ['bitnami/redis:7', { registry: 'docker.io', repository: 'bitnami/redis', tag: '7', digest: undefined }],
    ['docker.io/nginx', { registry: 'docker.io', repository: 'library/nginx', tag: undefined, digest: undefined }],
    ['index.docker.io/library/nginx', { registry: 'docker.io', repository: 'library/nginx', tag: undefined, digest: undefined }],
    ['registry.example.com/team/app', { registry: 'registry.example.com', repository: 'team/app', tag: undefined, digest: undefined }],
    ['registry.example.com:5000/team/app:v1.2.3', { registry: 'registry.example.com:5000', repository: 'team/app', tag: 'v1.2.3', digest: undefined }],
    ['127.0.0.1:5000/app:v1', { registry: '127.0.0.1:5000', repository: 'app', tag: 'v1', digest: undefined }],
    ['localhost/app', { registry: 'localhost', repository: 'app', tag: undefined, digest: undefined }],
    ['localhost:5000/a/b/c:latest', { registry: 'localhost:5000', repository: 'a/b/c', tag: 'latest', digest: undefined }],
    [`ghcr.io/org/app@${DIGEST}`, { registry: 'ghcr.io', repository: 'org/app', tag: undefined, digest: DIGEST }],
    [`ghcr.io/org/app:v1@${DIGEST}`, { registry: 'ghcr.io', repository: 'org/app', tag: 'v1', digest: DIGEST }],
    [`nginx@${DIGEST}`, { registry: 'docker.io', repository: 'library/nginx', tag: undefined, digest: DIGEST }],
    ['[::1]:5000/app:v1', { registry: '[::1]:5000', repository: 'app', tag: 'v1', digest: undefined }],
    ['my_org/app-name__x.y:tag_1', { registry: 'docker.io', repository: 'my_org/app-name__x.y', tag: 'tag_1', digest: undefined }],
  ])('%s', (reference, expected) => {
    expect(parseImageRef(reference)).toEqual({ ...expected, original: reference });
  });

  it.each([
    ['', 'empty or too long'],
    ['Nginx', 'bad repository name'],
    ['registry.example.com/Team/app', 'bad repository name'],
    ['app:', 'bad tag'],
    ['app:-bad', 'bad tag'],
    ['app:' + 'x'.repeat(129), 'bad tag'],
    ['app@sha256:short', 'bad digest'],
    ['app@', 'bad digest'],
    ['registry.example.com:port/app', 'bad registry host'],
    ['-bad.example.com/app', 'bad registry host'],
    ['app//x', 'bad repository name'],
    ['app/', 'bad repository name'],
    ['a'.repeat(513), 'empty or too long'],
  ])('refuses %j (%s)', (reference, why) => {
    const act = (): unknown => parseImageRef(reference);

    expect(act).toThrow(InputError);
    expect(act).toThrow(why);
  });

  it('names the image field in its error', () => {
    try {
      parseImageRef('Bad');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).field).toBe('image');
      expect((err as InputError).status).toBe(400);
    }
  });
});

describe('versions of a reference', () => {
  it.each([
    ['nginx', 'nginx'],
    ['127.0.0.1:5000/app:v1', '127.0.0.1:5000/app'],
    [`ghcr.io/org/app:v1@${DIGEST}`, 'ghcr.io/org/app'],
    ['localhost:5000/app', 'localhost:5000/app'],
  ])('nameOf(%s) keeps the name as written', (reference, name) => {
    expect(nameOf(parseImageRef(reference))).toBe(name);
  });

  it('withVersion writes name:tag, and name:tag@digest when pinned', () => {
    const ref = parseImageRef('127.0.0.1:5000/team/app');

    expect(withVersion(ref, 'v2')).toBe('127.0.0.1:5000/team/app:v2');
    expect(withVersion(ref, 'v2', DIGEST)).toBe(`127.0.0.1:5000/team/app:v2@${DIGEST}`);
  });

  it.each([
    ['app', true],
    ['app:v1', false],
    [`app@${DIGEST}`, false],
    ['localhost:5000/app', true],
  ])('isUntagged(%s) is %s', (reference, untagged) => {
    expect(isUntagged(parseImageRef(reference))).toBe(untagged);
  });

  it.each([
    ['v1.2.3', true],
    ['_x', true],
    ['latest', true],
    ['.x', false],
    ['-x', false],
    ['a/b', false],
    ['', false],
  ])('isValidTag(%j) is %s', (tag, valid) => {
    expect(isValidTag(tag)).toBe(valid);
  });
});
