import { describe, expect, it } from 'vitest';
import { ErrorsBody, TagsList, TokenResponse } from '../../src/registry/schemas.js';
import { nextLink, parseLinkHeader, parseWwwAuthenticate } from '../../src/registry/headers.js';

describe('parseWwwAuthenticate', () => {
  it.each([
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
      [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/nginx:pull' } }],
    ],
    [
      'Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:a/b:pull,push"',
      [{ scheme: 'bearer', params: { realm: 'http://127.0.0.1:1/token', service: 'svc', scope: 'repository:a/b:pull,push' } }],
    ],
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    ['basic realm=simple', [{ scheme: 'basic', params: { realm: 'simple' } }]],
    [
      'Bearer realm = "x" , service="y", error="insufficient_scope"',
      [{ scheme: 'bearer', params: { realm: 'x', service: 'y', error: 'insufficient_scope' } }],
    ],
    [
      'Basic realm="a, b", Bearer realm="https://t/token",scope="repository:x:pull,push"',
      [
        { scheme: 'basic', params: { realm: 'a, b' } },
        { scheme: 'bearer', params: { realm: 'https://t/token', scope: 'repository:x:pull,push' } },
      ],
    ],
    ['Bearer realm="say \\"hi\\", \\\\ok"', [{ scheme: 'bearer', params: { realm: 'say "hi", \\ok' } }]],
    ['Negotiate abc+/d==, Basic realm="r"', [
      { scheme: 'negotiate', params: {}, token68: 'abc+/d==' },
      { scheme: 'basic', params: { realm: 'r' } },
    ]],
    ['Bearer', [{ scheme: 'bearer', params: {} }]],
    ['Basic, Bearer realm="x"', [{ scheme: 'basic', params: {} }, { scheme: 'bearer', params: { realm: 'x' } }]],
    ['BEARER REALM="x",Service=y', [{ scheme: 'bearer', params: { realm: 'x', service: 'y' } }]],
    ['', []],
  ])('%s', (header, expected) => {
    expect(parseWwwAuthenticate(header)).toEqual(expected);
  });

  it('skips malformed parameters and keeps the rest', () => {
    expect(parseWwwAuthenticate('Bearer realm="x", =broken, service="s"')).toEqual([
      { scheme: 'bearer', params: { realm: 'x', service: 's' } },
    ]);
  });

  it('survives an unterminated quote', () => {
    expect(parseWwwAuthenticate('Bearer realm="x", service="unterminated')).toEqual([
      { scheme: 'bearer', params: { realm: 'x' } },
    ]);
  });
});

describe('Link header', () => {
  it('parses several links with quoted and unquoted rels', () => {
    expect(parseLinkHeader('</v2/a/tags/list?n=2&last=b>; rel="next", <https://x/prev>;rel=prev;title="a, b"')).toEqual([
      { target: '/v2/a/tags/list?n=2&last=b', rel: ['next'], params: { rel: 'next' } },
      { target: 'https://x/prev', rel: ['prev'], params: { rel: 'prev', title: 'a, b' } },
    ]);
  });

  it.each([
    ['</v2/a/tags/list?n=2&last=b>; rel="next"', 'https://r.example/v2/a/tags/list?n=2&last=b'],
    ['<https://r.example/v2/a/tags/list?last=c>; rel="next"', 'https://r.example/v2/a/tags/list?last=c'],
    ['<list?last=c>; rel=next', 'https://r.example/v2/a/tags/list?last=c'],
    ['<https://r.example/p>; rel="prev next"', 'https://r.example/p'],
    ['<https://r.example/p>; rel="prev", <https://r.example/n>; REL="NEXT"', 'https://r.example/n'],
  ])('next of %s', (header, expected) => {
    expect(nextLink(header, 'https://r.example/v2/a/tags/list?n=2')?.href).toBe(expected);
  });

  it.each([[null], [''], ['<https://r.example/p>; rel="prev"'], ['garbage'], ['<http://[bad>; rel="next"']])(
    'no next in %j',
    (header) => {
      expect(nextLink(header, 'https://r.example/v2/a/tags/list')).toBeUndefined();
    },
  );
});

describe('registry payload schemas', () => {
  it.each([
    [{ token: 't1', expires_in: 300 }, true],
    [{ access_token: 't2' }, true],
    [{ token: 't', access_token: 't', issued_at: '2024-01-01T00:00:00Z', extra: 1 }, true],
    [{}, false],
    [{ token: '' }, false],
    [{ token: 't', expires_in: -1 }, false],
    [{ token: 't', expires_in: '300' }, false],
  ])('token response %j is usable: %s', (body, ok) => {
    expect(TokenResponse.safeParse(body).success).toBe(ok);
  });

  it.each([
    [{ name: 'a', tags: ['v1'] }, true],
    [{ name: 'a', tags: null }, true],
    [{ name: 'a', tags: [1] }, false],
    [{ name: 'a', tags: 'v1' }, false],
  ])('tags list %j is usable: %s', (body, ok) => {
    expect(TagsList.safeParse(body).success).toBe(ok);
  });

  it('reads the registry error body', () => {
    expect(ErrorsBody.parse({ errors: [{ code: 'NAME_UNKNOWN', message: 'x', detail: {} }] }).errors[0]?.code).toBe('NAME_UNKNOWN');
    expect(ErrorsBody.safeParse({ errors: [] }).success).toBe(false);
  });
});
