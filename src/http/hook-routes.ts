import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Config, ServiceConfig } from '../config/load.js';
import type { DeployService, FlowResult } from '../deploy/types.js';
import { AuthError, DeployerError, InputError } from '../errors.js';
import { authorize, mayAccess, type Principal } from './auth.js';
import { CommitRef, ImageTag } from './inputs.js';
import type { HttpServer } from './server.js';
import type { Caller } from '../core/types.js';

/**
 * Monitor webhooks (thesis 5.6: "the alarm would trigger a webhook, which would roll back the canary instance").
 * Both need a token with the `rollback` scope, for the services it names; a monitor's token should have no other.
 */

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
  /** The HTTP status this outcome asks for: Alertmanager retries a notification answered 5xx. */
  readonly status: number;
}

export interface HookRouteDeps {
  readonly config: Config;
  readonly deployer: DeployService;
  readonly principalOf: (request: FastifyRequest) => Principal;
  readonly callerOf: (request: FastifyRequest) => Caller;
  readonly serviceNamed: (name: string) => ServiceConfig;
}

export function registerHookRoutes(api: HttpServer, deps: HookRouteDeps): void {
  const { config, deployer } = deps;

  /** A token without the rollback scope at all learns nothing about the payload. */
  const mayRollBack = (principal: Principal): void => {
    if (!principal.actions.includes('rollback')) {
      throw new AuthError(403, `token "${principal.token}" may not rollback`, { detail: { token: principal.token, action: 'rollback' } });
    }
  };

  const rollBack = async (request: FastifyRequest, principal: Principal, name: string): Promise<ServiceOutcome> => {
    if (!Object.hasOwn(config.services, name)) return { result: 'unknown-service', message: `service "${name}" is not configured`, status: 404 };
    if (!mayAccess(principal, 'rollback', name)) {
      return { result: 'forbidden', message: `token "${principal.token}" may not rollback service "${name}"`, status: 403 };
    }
    try {
      const done = await deployer.rollback({ service: deps.serviceNamed(name), caller: deps.callerOf(request), requestId: request.id });
      return { result: done.outcome === 'nothing-to-roll-back' ? 'nothing-to-roll-back' : 'rolled-back', message: done.message, status: 200 };
    } catch (err) {
      // Answered here, not by the error handler, which would have logged it.
      const status = err instanceof DeployerError ? err.status : 500;
      request.log[status >= 500 ? 'error' : 'info']({ err, service: name, status }, 'rollback from a monitor hook failed');
      return { result: 'failed', message: err instanceof DeployerError && status < 500 ? err.message : `rollback failed (${status}); see the deployer's log`, status };
    }
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
      const status = Math.max(200, ...[...outcomes.values()].map((o) => o.status));
      void reply.code(status);
      return { results };
    },
  );

  api.post('/hooks/generic', { schema: { body: GenericHook } }, async (request): Promise<FlowResult> => {
    const principal = deps.principalOf(request);
    mayRollBack(principal);
    const { service: name, commit, tag, to } = request.body;
    authorize(principal, 'rollback', name);
    if (to !== undefined && (commit !== undefined || tag !== undefined)) {
      throw new InputError('to=previous and a commit or tag exclude each other', { field: 'to' });
    }
    return deployer.rollback({ service: deps.serviceNamed(name), commit, tag, to, caller: deps.callerOf(request), requestId: request.id });
  });
}
