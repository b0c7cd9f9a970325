import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ServiceConfig } from '../config/load.js';
import type { Action } from '../config/schema.js';
import type { DeployService, FlowResult } from '../deploy/types.js';
import type { Verdict } from '../deploy/verdict.js';
import { InputError } from '../errors.js';
import { CommitRef, DeployQuery, ImageTag, ServiceParams } from './inputs.js';
import type { HttpServer } from './server.js';
import { callerLeft, type WaitSlots } from './waits.js';
import type { Caller, ObjectResult } from '../core/types.js';

/** `wait=true`: how long to wait for the rollout when no duration is given. */
export const DEFAULT_WAIT_SECONDS = 300;
/** Longer waits belong to a job polling `GET /:service`, not to one HTTP request. */
export const MAX_WAIT_SECONDS = 1800;

const blankIsAbsent = (v: unknown): unknown => (v === '' ? undefined : v);
const DURATION = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/** Seconds of `90`, `90s`, `5m`, `1h30m`; undefined when it is no duration. */
export function parseDuration(text: string): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  const m = DURATION.exec(text);
  if (m === null || text === '') return undefined;
  const [, h = '0', min = '0', s = '0'] = m;
  return Number(h) * 3600 + Number(min) * 60 + Number(s);
}

const DURATION_MESSAGE = 'a duration like 90s, 5m or 1h30m';

/** `minAge=30m`: seconds. */
export const MinAge = z.preprocess(
  blankIsAbsent,
  z
    .union([z.number().int().min(0), z.string()], { error: `minAge must be given once, as ${DURATION_MESSAGE}` })
    .transform((v, ctx) => {
      const seconds = typeof v === 'number' ? v : parseDuration(v);
      if (seconds === undefined) {
        ctx.addIssue({ code: 'custom', message: `minAge must be ${DURATION_MESSAGE}` });
        return z.NEVER;
      }
      return seconds;
    })
    .optional(),
);

/** `wait=true|false|5m|300`: milliseconds to wait for the rollout verdict, or undefined for no waiting. */
export const Wait = z.preprocess(
  blankIsAbsent,
  z
    .union([z.boolean(), z.number().int().min(0), z.string()], { error: `wait must be given once, as true, false or ${DURATION_MESSAGE}` })
    .transform((v, ctx) => {
      if (v === true || v === 'true' || v === 'yes') return DEFAULT_WAIT_SECONDS * 1000;
      if (v === false || v === 'false' || v === 'no' || v === 0 || v === '0') return undefined;
      const seconds = typeof v === 'number' ? v : parseDuration(v);
      if (seconds === undefined) {
        ctx.addIssue({ code: 'custom', message: `wait must be true, false or ${DURATION_MESSAGE}` });
        return z.NEVER;
      }
      if (seconds > MAX_WAIT_SECONDS) {
        ctx.addIssue({ code: 'custom', message: `wait must be at most ${MAX_WAIT_SECONDS / 60}m` });
        return z.NEVER;
      }
      return seconds * 1000;
    })
    .optional(),
);

/** `analysis=true|false`: whether a promotion must pass the canary analysis first (absent: as the service says). */
export const Analysis = z.preprocess(
  blankIsAbsent,
  z
    .union([z.boolean(), z.enum(['true', 'false', 'yes', 'no', '1', '0'])], { error: 'analysis must be given once, as true or false' })
    .transform((v) => v === true || v === 'true' || v === 'yes' || v === '1')
    .optional(),
);

const BODY_ERROR = { error: 'the request body must be an object or a form' };
const To = z.preprocess(blankIsAbsent, z.literal('previous', { error: 'to must be "previous"' }).optional());

const rollbackFields = { commit: CommitRef, tag: ImageTag, to: To, wait: Wait };
export const RollbackBody = z.object(rollbackFields, BODY_ERROR).nullish();
export const RollbackQuery = z.object(rollbackFields);
const promoteFields = { minAge: MinAge, wait: Wait, analysis: Analysis };
export const PromoteBody = z.object(promoteFields, BODY_ERROR).nullish();
export const PromoteQuery = z.object(promoteFields);
/** The deploy and canary routes' inputs, with `wait`. */
export const DeployWaitBody = z.object({ commit: CommitRef, tag: ImageTag, wait: Wait }, BODY_ERROR).nullish();
export const DeployWaitQuery = DeployQuery.extend({ wait: Wait });

/** A field from the body or the query; given in both, they must agree. */
export function fieldOf<B extends object, Q extends object, K extends keyof B & keyof Q & string>(
  body: B | null | undefined,
  query: Q,
  field: K,
): B[K] | Q[K] | undefined {
  const fromBody = body?.[field];
  const fromQuery = query[field];
  if (fromBody !== undefined && fromQuery !== undefined && (fromBody as unknown) !== (fromQuery as unknown)) {
    throw new InputError(`${field} is given twice, in the body and in the query, with different values`, { field });
  }
  return fromBody ?? fromQuery;
}

/** A result with its rollout verdict, when the caller waited for one. */
export type WithVerdict<T> = T & { readonly verdict?: Verdict; readonly error?: string };

/**
 * Waits for the rollout when asked to, and answers its verdict: 200 success, 422 failure (the version does not run),
 * 202 timeout (applied, still rolling out: not a failure). Without `wait`, the answer comes once the objects are
 * applied.
 */
export async function withVerdict<T extends { readonly service: string; readonly objects: readonly ObjectResult[] }>(
  reply: FastifyReply,
  deployer: Pick<DeployService, 'verdict'>,
  result: T,
  waitMs: number | undefined,
): Promise<WithVerdict<T>> {
  if (waitMs === undefined) return result;
  // Polling for a caller that hung up would go on for up to 30 minutes for no one.
  const verdict = await deployer.verdict(result.service, result.objects, waitMs, callerLeft(reply));
  if (verdict.result === 'success') return { ...result, verdict };
  if (verdict.result === 'timeout') {
    void reply.code(202);
    return { ...result, verdict };
  }
  void reply.code(422);
  return { error: verdict.message, ...result, verdict };
}

/**
 * Runs a deploy, rollback or promotion and, with `wait`, waits for its verdict: a wait slot is taken first (503
 * before anything is deployed when none is free) and held until the verdict is in or the caller left.
 */
export async function runAndWait<T extends { readonly service: string; readonly objects: readonly ObjectResult[] }>(
  reply: FastifyReply,
  deps: { readonly deployer: Pick<DeployService, 'verdict'>; readonly waits: WaitSlots },
  waitMs: number | undefined,
  run: () => Promise<T>,
): Promise<WithVerdict<T>> {
  if (waitMs === undefined) return run();
  const release = deps.waits.take();
  try {
    return await withVerdict(reply, deps.deployer, await run(), waitMs);
  } finally {
    release();
  }
}

export interface FlowRouteDeps {
  readonly deployer: DeployService;
  readonly waits: WaitSlots;
  /** Whether the caller may deploy the service: a rollback to a version it never ran needs it. */
  readonly mayDeploy: (request: FastifyRequest, service: string) => boolean;
  readonly guard: (action: Action) => (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void;
  readonly serviceNamed: (name: string) => ServiceConfig;
  readonly callerOf: (request: FastifyRequest) => Caller;
}

/** `PUT /:service/rollback` and `PUT /:service/promote` (POST too, as `curl --data` sends it). */
export function registerFlowRoutes(api: HttpServer, deps: FlowRouteDeps): void {
  const { deployer } = deps;

  api.route({
    method: ['PUT', 'POST'],
    url: '/:service/rollback',
    schema: { params: ServiceParams, body: RollbackBody, querystring: RollbackQuery },
    onRequest: deps.guard('rollback'),
    handler: async (request, reply): Promise<WithVerdict<FlowResult>> => {
      const service = deps.serviceNamed(request.params.service);
      const { body, query } = request;
      const commit = fieldOf(body, query, 'commit');
      const tag = fieldOf(body, query, 'tag');
      const to = fieldOf(body, query, 'to');
      if (to !== undefined && (commit !== undefined || tag !== undefined)) {
        throw new InputError('to=previous and a commit or tag exclude each other', { field: 'to' });
      }
      const mayDeploy = deps.mayDeploy(request, service.name);
      return runAndWait(reply, deps, fieldOf(body, query, 'wait'), () =>
        deployer.rollback({ service, commit, tag, to, mayDeploy, caller: deps.callerOf(request), requestId: request.id }),
      );
    },
  });

  api.route({
    method: ['PUT', 'POST'],
    url: '/:service/promote',
    schema: { params: ServiceParams, body: PromoteBody, querystring: PromoteQuery },
    onRequest: deps.guard('promote'),
    handler: async (request, reply): Promise<WithVerdict<FlowResult>> => {
      const service = deps.serviceNamed(request.params.service);
      const { body, query } = request;
      return runAndWait(reply, deps, fieldOf(body, query, 'wait'), () =>
        deployer.promote({
          service,
          minAgeSeconds: fieldOf(body, query, 'minAge'),
          analysis: fieldOf(body, query, 'analysis'),
          caller: deps.callerOf(request),
          requestId: request.id,
        }),
      );
    },
  });
}
