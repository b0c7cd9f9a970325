import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions, type RawServerDefault } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { toErrorReply } from './errors.js';
import { fieldsOf, parseForm, unknownFieldsError } from './inputs.js';
import { openApiDocument, routeEntryOf, type RouteEntry } from './openapi.js';
import { zodValidatorCompiler, type ZodTypeProvider } from './zod.js';

export type HttpServer = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, ZodTypeProvider>;

/** Deploy requests carry two short fields; anything near this size is a mistake or an attack. */
export const BODY_LIMIT = 64 * 1024;

const REQUEST_ID_HEADER = 'x-request-id';
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/** Takes a caller's request id (a proxy's or CI's, to follow one deploy through several logs) if it is sane. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : randomUUID();
}

/** The server's bounds against slow and too many clients (config `http`). */
export type ServerLimits = Pick<
  Config['http'],
  | 'requestTimeoutSeconds'
  | 'headersTimeoutSeconds'
  | 'keepAliveTimeoutSeconds'
  | 'connectionTimeoutSeconds'
  | 'maxRequestsPerSocket'
  | 'maxConnections'
>;

/**
 * Node's http.Server options from the limits. Node checks the request and header timeouts only every
 * `connectionsCheckingInterval` (30 s by default), so a trickling client would get up to 30 s more: check more often.
 */
function nodeOptions(limits: ServerLimits) {
  const requestTimeout = limits.requestTimeoutSeconds * 1000;
  // Node refuses a header timeout above the request timeout.
  const headersTimeout = Math.min(limits.headersTimeoutSeconds * 1000, requestTimeout);
  return {
    fastify: {
      requestTimeout,
      keepAliveTimeout: limits.keepAliveTimeoutSeconds * 1000,
      connectionTimeout: limits.connectionTimeoutSeconds * 1000,
      maxRequestsPerSocket: limits.maxRequestsPerSocket,
    },
    http: { headersTimeout, requestTimeout, connectionsCheckingInterval: Math.round(Math.max(100, Math.min(5000, headersTimeout / 2))) },
  };
}

/**
 * Routes whose bodies come from other vendors' software (Alertmanager, Datadog, ...): their payloads carry many
 * fields the deployer does not read, and must stay accepted. Every other route refuses fields it does not take.
 */
export const THIRD_PARTY_PAYLOAD_PREFIX = '/hooks/';

/**
 * The route schemas' validator, refusing unknown fields of a body or query string (400 naming them, with the
 * known field each is probably a typo of) before the schema itself is applied.
 */
const closedInputCompiler: typeof zodValidatorCompiler = (route) => {
  const validate = zodValidatorCompiler(route);
  const known = route.httpPart === 'body' || route.httpPart === 'querystring' ? fieldsOf(route.schema) : undefined;
  if (known === undefined || route.url.startsWith(THIRD_PARTY_PAYLOAD_PREFIX)) return validate;
  return (data: unknown) => {
    const error = unknownFieldsError(data, known);
    return error === undefined ? validate(data) : { error };
  };
};

type CompilersFactory = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
type SerializerBuilder = NonNullable<CompilersFactory['buildSerializer']>;

/**
 * Fastify's schema compilers without their default libraries: validation is zod's (closedInputCompiler), so Ajv —
 * which Fastify otherwise loads at start, ~1.5 MiB of heap and 90 modules held for nothing — never is. No route has
 * a response schema, so fast-json-stringify is not needed either; should one get one, its compiler is loaded then.
 */
const compilersFactory: CompilersFactory = {
  // Fastify types this builder for Ajv's schemas; ours are zod's, as for setValidatorCompiler below.
  buildValidator: (() => closedInputCompiler) as unknown as CompilersFactory['buildValidator'],
  buildSerializer: (...args: Parameters<SerializerBuilder>) => {
    // Resolved from Fastify's own folder: the compiler is its dependency, not ours.
    const require = createRequire(import.meta.resolve('fastify'));
    const selector = require('@fastify/fast-json-stringify-compiler') as () => SerializerBuilder;
    return selector()(...args);
  },
};

/** A route's URL pattern (`/:service/deploy`) as a regular expression over request paths. */
function patternOf(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment === '*' ? '.*' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}/?$`);
}

/**
 * Creates the Fastify instance with what every route shares: logging without credentials, request ids, the body
 * parsers (form and JSON only), zod route schemas and the one error handler, and the bounds of `limits`: a request
 * (headers and body) must arrive within its timeouts, whoever sends it, and connections beyond the cap are closed.
 */
export function createHttpServer(options: { logger: Logger; limits: ServerLimits; version?: string | undefined }): HttpServer {
  const node = nodeOptions(options.limits);
  const logger: FastifyBaseLogger = options.logger.child(
    { module: 'http' },
    {
      // Fastify's request serializer does not log headers; this keeps it so should anyone log a request whole.
      redact: { paths: ['req.headers.authorization', 'headers.authorization', 'request.headers.authorization'], censor: '[redacted]' },
    },
  );
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: BODY_LIMIT,
    requestIdHeader: false,
    genReqId: requestIdOf,
    // close() ends idle keep-alive sockets at once and lets requests in flight (a deploy) finish.
    forceCloseConnections: 'idle',
    schemaController: { compilersFactory },
    ...node.fastify,
    http: node.http,
  }).withTypeProvider<ZodTypeProvider>();
  app.server.maxConnections = options.limits.maxConnections;
  app.server.on('drop', (data?: { remoteAddress?: string }) => {
    logger.debug({ remoteAddress: data?.remoteAddress, maxConnections: options.limits.maxConnections }, 'connection refused: too many open connections');
  });

  app.setValidatorCompiler(closedInputCompiler);

  // Every route's methods by URL pattern, so that a wrong method is answered 405 with `Allow`, not 404.
  const routes: Array<{ pattern: RegExp; methods: readonly string[] }> = [];
  app.addHook('onRoute', (route) => {
    routes.push({ pattern: patternOf(route.url), methods: [route.method].flat() });
  });

  // Every route added from here on (plugins included) is described by GET /openapi.json, built on its first call.
  const described: RouteEntry[] = [];
  app.addHook('onRoute', (route) => {
    const entry = routeEntryOf(route);
    if (entry !== undefined) described.push(entry);
  });
  let document: Record<string, unknown> | undefined;
  app.get('/openapi.json', () => (document ??= openApiDocument(described, options.version ?? 'unknown')));

  // `curl --data commit=abc` sends a form; parse it with URLSearchParams (no dependency needed for two fields).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, parseForm(body as string));
  });
  // Only forms and JSON: anything else (text/plain included) is answered 415 rather than guessed at.
  app.removeContentTypeParser('text/plain');

  app.addHook('onRequest', async (request, reply) => {
    void reply.header(REQUEST_ID_HEADER, request.id);
  });

  app.setErrorHandler(async (err, request, reply) => {
    const answer = toErrorReply(err, {
      requestId: request.id,
      contentType: request.headers['content-type'],
      bodyLimit: BODY_LIMIT,
    });
    if (answer.level === 'info') request.log.info({ status: answer.status, error: answer.body.error }, 'request refused');
    else request.log[answer.level]({ err, status: answer.status }, 'request failed');
    return reply.code(answer.status).headers({ ...answer.headers, [REQUEST_ID_HEADER]: request.id }).send(answer.body);
  });

  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?')[0] ?? request.url;
    const allowed = new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods));
    if (allowed.size === 0) return reply.code(404).send({ error: 'no such endpoint' });
    const allow = [...allowed].sort().join(', ');
    request.log.info({ status: 405, method: request.method, allow }, 'request refused');
    return reply
      .code(405)
      .header('allow', allow)
      .send({ error: `method ${request.method} is not allowed here; ${path.slice(0, 200)} takes ${allow}` });
  });

  return app;
}
