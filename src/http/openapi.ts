import type { RouteOptions } from 'fastify';
import { z } from 'zod';

/**
 * `GET /openapi.json`: an OpenAPI 3.1 description generated from the routes' own zod schemas (the ones that
 * validate requests), so it cannot drift from what the server accepts. zod 4 converts its schemas to JSON Schema
 * itself (OpenAPI 3.1 uses JSON Schema 2020-12), so no generator library is loaded; the document is built on the
 * first request and kept.
 */

/** What the document needs of a route; collected by an `onRoute` hook as routes are added. */
export interface RouteEntry {
  readonly methods: readonly string[];
  readonly url: string;
  readonly params?: z.ZodType | undefined;
  readonly querystring?: z.ZodType | undefined;
  readonly body?: z.ZodType | undefined;
  /** Answers the route documents beyond the generic ones (`config.responses` of the route), by status. */
  readonly responses?: Readonly<Record<string, { readonly description: string; readonly schema?: z.ZodType | undefined }>> | undefined;
}

/** Paths every probe and scraper reaches without a token. */
const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json']);

type JsonSchema = Record<string, unknown>;

function isZod(value: unknown): value is z.ZodType {
  return value instanceof z.ZodType;
}

/** The route entry of a Fastify route, without the HEAD routes Fastify adds to every GET. */
export function routeEntryOf(route: RouteOptions): RouteEntry | undefined {
  const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter((m) => m !== 'HEAD');
  if (methods.length === 0) return undefined;
  const schema = (route.schema ?? {}) as Record<string, unknown>;
  const pick = (part: string): z.ZodType | undefined => (isZod(schema[part]) ? schema[part] : undefined);
  const config = (route.config ?? {}) as { responses?: RouteEntry['responses'] };
  return { methods, url: route.url, params: pick('params'), querystring: pick('querystring'), body: pick('body'), responses: config.responses };
}

/** JSON Schema of what a request may send: the schemas' output side, since preprocessing accepts more than it says. */
function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  const json = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any', target: 'draft-2020-12' }) as JsonSchema;
  delete json['$schema'];
  return json;
}

/** An object schema's properties as OpenAPI parameters (`in: path` or `in: query`). */
function parametersOf(schema: z.ZodType | undefined, where: 'path' | 'query'): JsonSchema[] {
  if (schema === undefined) return [];
  const json = jsonSchemaOf(schema);
  const properties = (json['properties'] ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json['required'] ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => ({
    name,
    in: where,
    required: where === 'path' || required.has(name),
    schema: property,
    ...(typeof property['description'] === 'string' ? { description: property['description'] } : {}),
  }));
}

const ERROR_BODY = { type: 'object', properties: { error: { type: 'string' } }, required: ['error'] };

function operationOf(route: RouteEntry, method: string, path: string): JsonSchema {
  const operation: JsonSchema = {
    operationId: `${method.toLowerCase()} ${path}`,
    parameters: [...parametersOf(route.params, 'path'), ...parametersOf(route.querystring, 'query')],
    responses: {
      '200': { description: 'done; the answer is JSON (the Prometheus text format for /metrics)' },
      default: { description: 'an error: 4xx names the problem, 5xx only a request id', content: { 'application/json': { schema: ERROR_BODY } } },
    },
  };
  for (const [status, { description, schema }] of Object.entries(route.responses ?? {})) {
    (operation['responses'] as Record<string, JsonSchema>)[status] = {
      description,
      ...(schema === undefined ? {} : { content: { 'application/json': { schema: jsonSchemaOf(schema) } } }),
    };
  }
  if (route.body !== undefined && method !== 'GET') {
    const schema = jsonSchemaOf(route.body);
    operation['requestBody'] = {
      required: false,
      content: { 'application/json': { schema }, 'application/x-www-form-urlencoded': { schema } },
    };
  }
  if (PUBLIC_PATHS.has(path)) operation['security'] = [];
  return operation;
}

/** Fastify's `/:service/deploy` as OpenAPI's `/{service}/deploy`. */
export function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** The OpenAPI 3.1 document of the routes. */
export function openApiDocument(routes: readonly RouteEntry[], version: string): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const path = openApiPath(route.url);
    const item = (paths[path] ??= {});
    for (const method of route.methods) item[method.toLowerCase()] = operationOf(route, method, path);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'deployer',
      version,
      description: 'Deploys applications to Kubernetes from git. Every answer carries x-request-id.',
    },
    components: {
      securitySchemes: { token: { type: 'http', scheme: 'basic', description: 'user: the token name (or auth_token), password: its secret' } },
    },
    security: [{ token: [] }],
    paths: Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b))),
  };
}
