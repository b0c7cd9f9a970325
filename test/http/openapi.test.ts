import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openApiPath } from '../../src/http/openapi.js';
import { AS, startServer, type TestServer } from './helpers.js';

/** The parts of an OpenAPI 3.1 document this API uses, with the rules of the specification for them. */
const Parameter = z.strictObject({
  name: z.string().min(1),
  in: z.enum(['path', 'query']),
  required: z.boolean(),
  schema: z.record(z.string(), z.unknown()),
  description: z.string().optional(),
});
const MediaTypes = z.record(z.string().regex(/^[a-z]+\/[a-z0-9.+-]+$/), z.strictObject({ schema: z.record(z.string(), z.unknown()) }));
const Operation = z.strictObject({
  operationId: z.string().min(1),
  parameters: z.array(Parameter),
  requestBody: z.strictObject({ required: z.boolean(), content: MediaTypes }).optional(),
  responses: z.record(z.string().regex(/^([1-5]\d\d|default)$/), z.strictObject({ description: z.string().min(1), content: MediaTypes.optional() })),
  security: z.array(z.record(z.string(), z.array(z.string()))).optional(),
});
const Document = z.strictObject({
  openapi: z.string().regex(/^3\.1\.\d+$/),
  info: z.strictObject({ title: z.string(), version: z.string(), description: z.string() }),
  components: z.strictObject({ securitySchemes: z.record(z.string(), z.strictObject({ type: z.literal('http'), scheme: z.string(), description: z.string() })) }),
  security: z.array(z.record(z.string(), z.array(z.string()))),
  paths: z.record(z.string().startsWith('/'), z.partialRecord(z.enum(['get', 'put', 'post', 'delete', 'patch']), Operation)),
});
type Document = z.infer<typeof Document>;

/** The endpoints the README's API table lists: `| \`GET /:service/tags[?commit=]\` | ...` → GET /:service/tags. */
function readmeEndpoints(): Array<[string, string]> {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const rows = readme.split('\n').filter((l) => /^\| `(GET|PUT|POST) /.test(l));
  return rows.flatMap((row) =>
    [...(row.split('|')[1] ?? '').matchAll(/`(GET|PUT|POST) ([^`[?\s]+)/g)].map((m): [string, string] => [m[1] ?? '', m[2] ?? '']),
  );
}

describe('GET /openapi.json', () => {
  let server: TestServer;
  let doc: Document;

  beforeAll(async () => {
    server = await startServer();
    const res = await fetch(`${server.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    doc = Document.parse(await res.json());
  });
  afterAll(() => server?.close());

  it('is an OpenAPI 3.1 document of this build, without a token', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.version).toBe('1.2.3-test');
    expect(doc.security).toEqual([{ token: [] }]);
    expect(Object.keys(doc.components.securitySchemes)).toEqual(['token']);
  });

  it('describes every endpoint of the README, and the README every operation', () => {
    const described = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`));
    const listed = readmeEndpoints();
    expect(listed.length).toBeGreaterThan(10);
    for (const [method, path] of listed) expect(described, `${method} ${path}`).toContain(`${method} ${openApiPath(path)}`);
    // The other way round, but the aliases: POST for `curl --data`, and the original's deploy_canary path.
    const documentedInReadme = new Set(listed.map(([m, p]) => `${m} ${openApiPath(p)}`));
    const undocumented = described.filter((d) => !documentedInReadme.has(d) && !d.startsWith('POST /{service}/') && !d.includes('deploy_canary'));
    expect(undocumented).toEqual([]);
  });

  it('gives each path parameter of a path as a required parameter, and the deploy body and query from the route schemas', () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const operation of Object.values(item)) {
        expect(operation.parameters.filter((p) => p.in === 'path').map((p) => p.name), path).toEqual(names);
        expect(operation.parameters.filter((p) => p.in === 'path').every((p) => p.required)).toBe(true);
      }
    }
    const deploy = doc.paths['/{service}/deploy']?.['put'];
    // A body may be absent (Fastify gives null): an object or null.
    const body = deploy?.requestBody?.content['application/json']?.schema as { anyOf?: Array<{ properties?: Record<string, unknown> }> } | undefined;
    const properties = body?.anyOf?.flatMap((s) => Object.keys(s.properties ?? {}));
    expect(properties).toEqual(expect.arrayContaining(['commit', 'tag', 'wait']));
    expect(Object.keys(deploy?.requestBody?.content ?? {})).toEqual(['application/json', 'application/x-www-form-urlencoded']);
    expect(doc.paths['/{service}/promote']?.['put']?.parameters.map((p) => p.name)).toContain('minAge');
  });

  it('says what a deploy of a burst answers: 200 with supersededBy, or 409 naming the newer request', () => {
    for (const path of ['/{service}/deploy', '/{service}/canary']) {
      const responses = (doc.paths[path]?.['put'] as unknown as { responses: Record<string, { description: string; content?: Record<string, { schema: { properties?: Record<string, unknown> } }> }> })
        .responses;
      expect(responses['200']?.description).toContain('supersededBy');
      expect(Object.keys(responses['200']?.content?.['application/json']?.schema.properties ?? {})).toContain('supersededBy');
      expect(responses['409']?.description).toContain('newer deploy');
      expect(Object.keys(responses['409']?.content?.['application/json']?.schema.properties ?? {})).toEqual(['error', 'supersededBy']);
    }
  });

  it('leaves the probes, /metrics and itself public; everything else needs the token', () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const operation of Object.values(item)) {
        const isPublic = ['/healthz', '/readyz', '/metrics', '/openapi.json'].includes(path);
        expect(operation.security, path).toEqual(isPublic ? [] : undefined);
      }
    }
  });

  it('holds only valid JSON Schema 2020-12 schemas', () => {
    const ajv = new Ajv2020({ strict: false });
    const schemas = Object.values(doc.paths).flatMap((item) =>
      Object.values(item).flatMap((op) => [
        ...op.parameters.map((p) => p.schema),
        ...Object.values(op.requestBody?.content ?? {}).map((c) => c.schema),
      ]),
    );
    expect(schemas.length).toBeGreaterThan(10);
    for (const schema of schemas) expect(() => ajv.compile(schema), JSON.stringify(schema)).not.toThrow();
  });

  it('is the same document on every call, and /:service still takes a service named like it', async () => {
    const again = await (await fetch(`${server.url}/openapi.json`)).json();
    expect(Document.parse(again)).toEqual(doc);
    const res = await fetch(`${server.url}/openapi.json`, { headers: AS.ops });
    expect(res.status).toBe(200);
  });
});
