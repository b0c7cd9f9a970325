import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Config, ServiceConfig } from '../config/load.js';
import type { DeployService, FlowResult } from '../deploy/types.js';
import { AuthError, BusyError, DeployerError, InputError } from '../errors.js';
import { mayAccess, type Principal } from './auth.js';
import { CommitRef, ImageTag } from './inputs.js';
import type { HttpServer } from './server.js';
import type { Caller } from '../core/types.js';

/**
 * Monitor webhooks (thesis 5.6: "the alarm would trigger a webhook, which would roll back the canary instance").
 * Both need a token with the `rollback` scope, for the services it names; a monitor's token should have no other.
 *
 * One rule for what they answer: Alertmanager (and most monitors) send a notification again only after a 5xx, and a
 * 4xx is a lost rollback. So the answer is 200 with a result per alert — an unknown service, a service outside the
 * token's scope and nothing to roll back are results, not failures of the notification — except 503 (with
 * Retry-After) when the rollback of a known, permitted service could not run yet: its lock is busy, or git, the
 * registry or the apiserver is down. Then the notification is sent again. The generic hook carries one item and
 * answers its one result by the same rule.
 */

/** What a monitor told to retry is asked to wait. */
export const HOOK_RETRY_AFTER_SECONDS = 10;

/** Alertmanager groups many alerts in one notification: allow more than a deploy's few fields. */
export const HOOK_BODY_LIMIT = 1024 * 1024;

/**
 * Alertmanager's webhook payload, version 4 (prometheus/alertmanager notify/webhook): only what a rollback needs.
 * Each alert carries its own status: a group notification may mix firing and resolved alerts.
 */
export const AlertmanagerPayload = z.object(
  {
    version: z.literal('4', { error: 'version must be "4" (the Alertmanager webhook payload this deployer reads)' }),
    alerts: z
      .array(
        z.object({
          status: z.string({ error: 'each alert needs a status' }),
          labels: z.record(z.string(), z.string()).default({}),
          fingerprint: z.string().optional(),
        }),
        { error: 'alerts must be a list' },
      )
      .max(1000, 'at most 1000 alerts'),
  },
  { error: 'the body must be an Alertmanager webhook payload (JSON)' },
);
export type AlertmanagerPayload = z.infer<typeof AlertmanagerPayload>;

/**
 * A generic monitor's hook (Datadog and the like): `{"service": "...", "action": "rollback"}`, optionally with the
 * version to roll back to (`commit`/`tag`, the thesis' rollback message) or `to: "previous"`.
 */
export const GenericHook = z.object(
  {
    service: z.string({ error: 'service must be given, as a string' }).min(1, 'service must be given'),
    action: z.literal('rollback', { error: 'action must be "rollback"' }),
    commit: CommitRef,
    tag: ImageTag,
    to: z.literal('previous', { error: 'to must be "previous"' }).optional(),
  },
  { error: 'the body must be a JSON object with service and action' },
);

export type AlertResult = 'rolled-back' | 'nothing-to-roll-back' | 'ignored' | 'unknown-service' | 'forbidden' | 'failed';

/** What was done for one alert of the payload. */
export interface AlertView {
  readonly alert?: string | undefined;
  readonly fingerprint?: string | undefined;
  readonly status: string;
  readonly service?: string | undefined;
  readonly result: AlertResult;
  readonly message: string;
}

export interface AlertmanagerView {
  readonly results: readonly AlertView[];
}

interface ServiceOutcome {
  readonly result: AlertResult;
  readonly message: string;
  /** Whether the rollback could not run yet (busy, an upstream down): the notification is answered 503, to be sent again. */
  readonly retry: boolean;
  /** What the rollback did, when it ran. */
  readonly done?: FlowResult | undefined;
}

/**
 * The generic hook's answer: its one item's result; when the rollback ran, with everything `PUT /SERVICE/rollback`
 * answers (outcome, versions, objects).
 */
export type GenericHookView = { readonly service: string; readonly result: AlertResult; readonly message: string } & Partial<FlowResult>;

/** The version a generic hook names, if any (an Alertmanager alert names none: its rollback removes the canary). */
interface Target {
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
  readonly to?: 'previous' | undefined;
}

export interface HookRouteDeps {
  readonly config: Config;
  readonly deployer: DeployService;
  readonly principalOf: (request: FastifyRequest) => Principal;
  readonly callerOf: (request: FastifyRequest) => Caller;
  readonly serviceNamed: (name: string) => ServiceConfig;
  readonly mayDeploy: (request: FastifyRequest, service: string) => boolean;
}

/** Whether a rollback failed because it could not run yet, rather than for good. */
function retryable(err: unknown): boolean {
  if (err instanceof BusyError) return true;
  return !(err instanceof DeployerError) || err.status >= 500;
}

export function registerHookRoutes(api: HttpServer, deps: HookRouteDeps): void {
  const { config, deployer } = deps;

  /** A token without the rollback scope at all learns nothing about the payload. */
  const mayRollBack = (principal: Principal): void => {
    if (!principal.actions.includes('rollback')) {
      throw new AuthError(403, `token "${principal.token}" may not rollback`, { detail: { token: principal.token, action: 'rollback' } });
    }
  };

  const rollBack = async (request: FastifyRequest, principal: Principal, name: string, target: Target = {}): Promise<ServiceOutcome> => {
    if (!Object.hasOwn(config.services, name)) return { result: 'unknown-service', message: `service "${name}" is not configured`, retry: false };
    if (!mayAccess(principal, 'rollback', name)) {
      return { result: 'forbidden', message: `token "${principal.token}" may not rollback service "${name}"`, retry: false };
    }
    try {
      const done = await deployer.rollback({
        service: deps.serviceNamed(name),
        ...target,
        mayDeploy: deps.mayDeploy(request, name),
        caller: deps.callerOf(request),
        requestId: request.id,
      });
      return { result: done.outcome === 'nothing-to-roll-back' ? 'nothing-to-roll-back' : 'rolled-back', message: done.message, retry: false, done };
    } catch (err) {
      // Answered here, not by the error handler, which would have logged it.
      const status = err instanceof DeployerError ? err.status : 500;
      const retry = retryable(err);
      request.log[status >= 500 ? 'error' : 'warn']({ err, service: name, status, retry }, 'rollback from a monitor hook failed');
      // A version only the deploy scope may deploy (a rollback token may only go back): outside the scope, a result.
      if (err instanceof AuthError) return { result: 'forbidden', message: err.message, retry: false };
      const message = err instanceof DeployerError && status < 500 ? err.message : `rollback failed (${status}); see the deployer's log`;
      return { result: 'failed', message: retry ? `${message}; send the alert again` : message, retry };
    }
  };

  const retryLater = (reply: FastifyReply): void => {
    void reply.code(503).header('retry-after', String(HOOK_RETRY_AFTER_SECONDS));
  };

  api.post(
    '/hooks/alertmanager',
    { schema: { body: AlertmanagerPayload }, bodyLimit: HOOK_BODY_LIMIT },
    async (request, reply): Promise<AlertmanagerView> => {
      const principal = deps.principalOf(request);
      mayRollBack(principal);
      const label = config.hooks.serviceLabel;
      // One rollback per service, however many of its alerts arrive together.
      const services = new Set<string>();
      for (const alert of request.body.alerts) {
        const service = alert.labels[label];
        if (alert.status === 'firing' && service !== undefined && service !== '') services.add(service);
      }
      const outcomes = new Map<string, ServiceOutcome>();
      await Promise.all(
        [...services].map(async (name) => {
          outcomes.set(name, await rollBack(request, principal, name));
        }),
      );
      const results = request.body.alerts.map((alert): AlertView => {
        const service = alert.labels[label];
        const base = { alert: alert.labels['alertname'], fingerprint: alert.fingerprint, status: alert.status };
        if (alert.status !== 'firing') return { ...base, service, result: 'ignored', message: `the alert is ${alert.status}` };
        const outcome = service === undefined || service === '' ? undefined : outcomes.get(service);
        if (outcome === undefined) return { ...base, result: 'ignored', message: `the alert has no "${label}" label` };
        return { ...base, service, result: outcome.result, message: outcome.message };
      });
      if ([...outcomes.values()].some((o) => o.retry)) retryLater(reply);
      return { results };
    },
  );

  api.post('/hooks/generic', { schema: { body: GenericHook } }, async (request, reply): Promise<GenericHookView> => {
    const principal = deps.principalOf(request);
    mayRollBack(principal);
    const { service: name, commit, tag, to } = request.body;
    // A malformed notification stays a 400, as a malformed Alertmanager payload does: sending it again cannot help.
    if (to !== undefined && (commit !== undefined || tag !== undefined)) {
      throw new InputError('to=previous and a commit or tag exclude each other', { field: 'to' });
    }
    const outcome = await rollBack(request, principal, name, { commit, tag, to });
    if (outcome.retry) retryLater(reply);
    return { ...outcome.done, service: name, result: outcome.result, message: outcome.message };
  });
}
