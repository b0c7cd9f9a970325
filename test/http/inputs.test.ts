import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { isBranchName, isCommitRef, parseForm, versionOf } from '../../src/http/inputs.js';
import { AS, call, FORM, form, JSON_TYPE, startServer, type TestServer } from './helpers.js';

const COMMIT_ERROR = 'commit must be a commit SHA (4 to 40 hex digits), a revision number or a branch name';
const TAG_ERROR = 'tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';

describe('isBranchName (git check-ref-format --branch, narrowed)', () => {
  it.each(['main', 'feature/login', 'release-1.2', 'fix_42', 'v1.0+build', 'a/b/c', 'UPPER', '1234', 'deadbeef'])(
    'accepts %s',
    (name) => {
      expect(isBranchName(name)).toBe(true);
    },
  );

  it.each([
    ['empty', ''],
    ['leading -', '-x'],
    ['option', '--upload-pack=x'],
    ['component starting with -', 'a/-b'],
    ['..', 'a..b'],
    ['.lock suffix', 'foo.lock'],
    ['.lock component', 'foo.lock/bar'],
    ['component starting with .', 'a/.hidden'],
    ['leading .', '.x'],
    ['trailing .', 'x.'],
    ['leading /', '/x'],
    ['trailing /', 'x/'],
    ['double /', 'a//b'],
    ['HEAD', 'HEAD'],
    ['@', '@'],
    ['@{', 'main@{1}'],
    ['space', 'a b'],
    ['tilde', 'main~1'],
    ['caret', 'main^'],
    ['colon', 'a:b'],
    ['glob', 'a*'],
    ['question mark', 'a?'],
    ['bracket', 'a[b'],
    ['backslash', 'a\\b'],
    ['control character', 'a\u0001b'],
    ['DEL', 'a\u007fb'],
    ['shell', '$(rm -rf /)'],
    ['semicolon', ';ls'],
    ['backtick', '`id`'],
    ['pipe', 'a|b'],
    ['newline', 'a\nb'],
    ['too long', 'a'.repeat(201)],
  ])('refuses %s', (_case, name) => {
    expect(isBranchName(name)).toBe(false);
  });
});

describe('isCommitRef', () => {
  it.each(['abcd', 'ABCDEF0', 'a'.repeat(40), '12', '4711', 'main'])('accepts %s', (ref) => {
    expect(isCommitRef(ref)).toBe(true);
  });
  it.each(['-1', 'a..b', '@{-1}'])('refuses %s', (ref) => {
    expect(isCommitRef(ref)).toBe(false);
  });
});

describe('versionOf', () => {
  it('takes each field from the body or the query', () => {
    expect(versionOf({ commit: 'abc1' }, { tag: 'main-abc1' })).toEqual({ commit: 'abc1', tag: 'main-abc1' });
  });
  it('refuses the same field with different values', () => {
    const attempt = (): unknown => versionOf({ commit: 'abc1' }, { commit: 'def2' });
    expect(attempt).toThrow(InputError);
    expect(attempt).toThrow('commit is given twice, in the body and in the query, with different values');
  });
  it('refuses neither commit nor tag', () => {
    expect(() => versionOf(undefined, {})).toThrow('commit or tag must be given');
  });
});

describe('parseForm', () => {
  it('keeps "__proto__" a plain field and turns repeats into an array', () => {
    const parsed = parseForm('__proto__=x&commit=a&commit=b');
    expect(Object.getPrototypeOf(parsed)).toBeNull();
    expect(parsed['__proto__']).toBe('x');
    expect(parsed['commit']).toEqual(['a', 'b']);
  });
});

describe('input checks over HTTP', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const bad: Array<[string, Record<string, string>, string, string]> = [
    ['command substitution', { commit: '$(rm -rf /)' }, 'commit', COMMIT_ERROR],
    ['semicolon', { commit: ';ls' }, 'commit', COMMIT_ERROR],
    ['git option', { commit: '--upload-pack=x' }, 'commit', COMMIT_ERROR],
    ['leading dash', { commit: '-x' }, 'commit', COMMIT_ERROR],
    ['range', { commit: 'a..b' }, 'commit', COMMIT_ERROR],
    ['.lock', { commit: 'foo.lock' }, 'commit', COMMIT_ERROR],
    ['reflog', { commit: 'main@{1}' }, 'commit', COMMIT_ERROR],
    ['over-long commit', { commit: 'a'.repeat(201) + 'g' }, 'commit', COMMIT_ERROR],
    ['over-long tag', { tag: 'a'.repeat(129) }, 'tag', TAG_ERROR],
    ['tag with /', { tag: 'feature/x' }, 'tag', TAG_ERROR],
    ['tag with leading .', { tag: '.x' }, 'tag', TAG_ERROR],
    ['tag with leading -', { tag: '-x' }, 'tag', TAG_ERROR],
    ['tag with space', { tag: 'a b' }, 'tag', TAG_ERROR],
    ['good commit, bad tag', { commit: 'abc1234', tag: 'a:b' }, 'tag', TAG_ERROR],
  ];

  it.each(bad)('form: %s → 400 naming the field', async (_case, fields, field, error) => {
    const res = await call(`${server.url}/api/deploy`, { method: 'POST', headers: { ...AS.ops, ...FORM }, body: form(fields) });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error, field });
    expect(server.engine.runs).toEqual([]);
  });

  it.each(bad)('JSON: %s → 400 naming the field', async (_case, fields, field, error) => {
    const res = await call(`${server.url}/api/canary`, { method: 'PUT', headers: { ...AS.ops, ...JSON_TYPE }, body: JSON.stringify(fields) });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error, field });
  });

  it.each(bad)('query: %s → 400 naming the field', async (_case, fields, field, error) => {
    const res = await call(`${server.url}/api/deploy?${new URLSearchParams(fields).toString()}`, { method: 'PUT', headers: AS.ops });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error, field });
  });

  it.each([
    ['nothing at all', '', undefined],
    ['empty form fields', 'commit=&tag=', FORM],
  ])('%s → 400 "commit or tag must be given"', async (_case, body, headers) => {
    const res = await call(`${server.url}/api/deploy`, { method: 'PUT', headers: { ...AS.ops, ...headers }, ...(body === '' ? {} : { body }) });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'commit or tag must be given' });
  });

  it.each([
    ['a repeated form field', 'commit=abc1&commit=def2', FORM, 'commit must be given once, as a string', 'commit'],
    ['a number in JSON', JSON.stringify({ commit: 1234 }), JSON_TYPE, 'commit must be given once, as a string', 'commit'],
    ['a JSON array', '["abc1"]', JSON_TYPE, 'the request body must be an object or a form', 'body'],
    ['a JSON string', '"abc1"', JSON_TYPE, 'the request body must be an object or a form', 'body'],
    ['invalid JSON', '{"commit":', JSON_TYPE, 'the request body is not valid JSON', 'body'],
  ])('%s → 400', async (_case, body, headers, error, field) => {
    const res = await call(`${server.url}/api/deploy`, { method: 'PUT', headers: { ...AS.ops, ...headers }, body });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error, field });
  });

  it('a repeated query field → 400', async () => {
    const res = await call(`${server.url}/api/deploy?tag=a&tag=b`, { method: 'PUT', headers: AS.ops });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'tag must be given once, as a string', field: 'tag' });
  });

  it('body and query disagreeing → 400', async () => {
    const res = await call(`${server.url}/api/deploy?commit=def2`, { method: 'PUT', headers: { ...AS.ops, ...FORM }, body: form({ commit: 'abc1' }) });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'commit is given twice, in the body and in the query, with different values', field: 'commit' });
  });

  it('a body over 64 KiB → 413', async () => {
    const res = await call(`${server.url}/api/deploy`, {
      method: 'PUT',
      headers: { ...AS.ops, ...FORM },
      body: form({ commit: 'abc1234', padding: 'x'.repeat(64 * 1024) }),
    });
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ error: 'the request body is larger than 65536 bytes' });
  });

  it('only unknown fields → 400 naming them, not "commit or tag must be given"', async () => {
    const res = await call(`${server.url}/api/deploy`, { method: 'PUT', headers: { ...AS.ops, ...FORM }, body: 'branch=main' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: 'unknown field branch; the fields are commit, tag, wait', field: 'branch', unknownFields: ['branch'] });
  });

  it('a body just under 64 KiB is fine', async () => {
    // Unknown fields are refused: the bulk is JSON whitespace.
    const head = '{"commit":"abc1234"';
    const body = `${head}${' '.repeat(64 * 1024 - head.length - 1)}}`;
    const res = await call(`${server.url}/api/deploy`, { method: 'PUT', headers: { ...AS.ops, ...JSON_TYPE }, body });
    expect(res.status).toBe(200);
  });

  it.each(['application/xml', 'text/plain', 'multipart/form-data; boundary=x'])('content type %s → 415', async (type) => {
    const res = await call(`${server.url}/api/deploy`, { method: 'PUT', headers: { ...AS.ops, 'content-type': type }, body: 'commit=abc1234' });
    expect(res.status).toBe(415);
    expect(res.body).toEqual({
      error: `content type ${JSON.stringify(type)} is not supported; send application/x-www-form-urlencoded or application/json`,
    });
  });
});
