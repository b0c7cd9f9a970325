import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Config, ServiceConfig } from '../config/load.js';
import type { Action } from '../config/schema.js';
import type { DeploymentState } from '../deploy/state.js';
import type { DeployResult, DeployService } from '../deploy/types.js';
import { NotFoundError } from '../errors.js';
import { executorOf, EXECUTOR_HEADER } from './executor.js';
import { authenticate, authorizeService, mayAccess, type Principal } from './auth.js';
import { DeployWaitBody, DeployWaitQuery, fieldOf, registerFlowRoutes, runAndWait, type WithVerdict } from './flow-routes.js';
import { WaitSlots } from './waits.js';
import { registerHookRoutes } from './hook-routes.js';
import { ServiceParams, TagsQuery, versionOf } from './inputs.js';
import type { HttpServer } from './server.js';
import type { ZodTypeProvider } from './zod.js';
import { serviceList, serviceView, tagsView, type ServiceList, type ServiceView, type TagsView, type VersionView } from './views.js';
import type { Caller, DeployKind } from '../core/types.js';


const SupersededBy = z.object({ requestId: z.string(), commit: z.string(), tag: z.string() });
/** What the OpenAPI document says of a deploy's answers beyond the generic ones (a burst: deployer.ts). */
const DEPLOY_RESPONSES = {
  '200': {
    description:
      'deployed; with `supersededBy` when a newer deploy of the service ran in the place of this waiting one and its commit contains this one (the change is live)',
    schema: z.looseObject({ message: z.string(), commit: z.string(), tag: z.string(), supersededBy: SupersededBy.optional() }),
  },
  '409': {
    description:
      "the service's lock stayed taken, or a newer deploy ran in this one's place and its commit does not contain this one, or it failed (`supersededBy` names it)",
    schema: z.looseObject({ error: z.string(), supersededBy: SupersededBy.partial({ commit: true, tag: true }).optional() }),
  },
};

export interface RouteDeps {
  readonly config: Config;
  /** The domain: deploys and canaries, the flows (rollback, promote, hooks), the live state, verdicts and tags. */
  readonly deployer: DeployService;
  readonly version: string;
}

/** `GET /:service`: the configuration, and the service's Deployments as they run. */
export type ServiceStateView = ServiceView & { readonly deployments: readonly DeploymentState[] };

export type { TagsView } from './views.js';

const PRINCIPAL = 'principal';

/** A synchronous onRequest hook: Fastify wants `done` called, with the error if the check threw. */
function syncHook(check: (request: FastifyRequest) => void) {
  return (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void => {
    try {
      check(request);
    } catch (err) {
      done(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    done();
  };
}

/** The thesis' endpoints (5.2): ls, show, tags, deploy, canary, version; and a health check for Kubernetes. */
export function registerRoutes(app: HttpServer, deps: RouteDeps): void {
  const { config, deployer } = deps;
  const waits = new WaitSlots(config.http.maxWaits);

  /** The configured service by name; own properties only, so `/constructor` is not a service. */
  const serviceNamed = (name: string): ServiceConfig => {
    const service = Object.hasOwn(config.services, name) ? config.services[name] : undefined;
    if (service === undefined) throw new NotFoundError(`service "${name}" is not configured`, { detail: { service: name } });
    return service;
  };
  const principalOf = (request: FastifyRequest): Principal => request.getDecorator<Principal>(PRINCIPAL);
  /** Who asks: the token (the authority), the client, and the person its `Executor` header claims runs it. */
  const callerOf = (request: FastifyRequest): Caller => ({
    token: principalOf(request).token,
    userAgent: request.headers['user-agent'],
    executor: executorOf(request.headers[EXECUTOR_HEADER]),
  });
  /**
   * Runs before the body is read: a caller outside its scope learns nothing (403 before 404), and an unknown
   * service is refused before its body is parsed.
   */
  const guard = (action: Action) =>
    syncHook((request) => {
      const { service } = ServiceParams.parse(request.params);
      authorizeService(principalOf(request), action, service, config.services);
    });

  // Kubernetes probes it without credentials; it tells nothing about the configuration.
  app.get('/healthz', () => ({ status: 'ok' }));

  // Everything else needs a token (or insecureNoAuth); the hook sits in this plugin's scope so /healthz is left out.
  void app.register((scope, _options, done) => {
    const api = scope.withTypeProvider<ZodTypeProvider>();
    api.decorateRequest(PRINCIPAL, null);
    api.addHook(
      'onRequest',
      syncHook((request) => request.setDecorator(PRINCIPAL, authenticate(request.headers.authorization, config))),
    );

    api.get('/', (request): ServiceList => {
      const principal = principalOf(request);
      return serviceList(Object.keys(config.services).filter((name) => mayAccess(principal, 'read', name)));
    });

    api.get('/version', (): VersionView => ({ name: 'deployer', version: deps.version }));

    api.get(
      '/:service',
      { schema: { params: ServiceParams }, onRequest: guard('read') },
      async (request): Promise<ServiceStateView> => {
        const service = serviceNamed(request.params.service);
        const view = serviceView(service);
        return { ...view, deployments: await deployer.state(service) };
      },
    );

    api.get(
      '/:service/tags',
      { schema: { params: ServiceParams, querystring: TagsQuery }, onRequest: guard('read') },
      async (request): Promise<TagsView> => {
        const service = serviceNamed(request.params.service);
        const { commit } = request.query;
        const images = await deployer.tags(service, commit);
        return tagsView(service.name, commit ?? service.repository.defaultBranch, images);
      },
    );

    const deployRoute = (url: string, kind: DeployKind & Action): void => {
      api.route({
        // PUT as in the thesis; POST because `curl --data` sends POST.
        method: ['PUT', 'POST'],
        url,
        schema: { params: ServiceParams, body: DeployWaitBody, querystring: DeployWaitQuery },
        config: { responses: DEPLOY_RESPONSES },
        onRequest: guard(kind),
        handler: async (request, reply): Promise<WithVerdict<DeployResult>> => {
          const service = serviceNamed(request.params.service);
          const { commit, tag } = versionOf(request.body, request.query);
          const wait = fieldOf(request.body, request.query, 'wait');
          const deploy = {
            service,
            kind,
            commit,
            tag,
            caller: callerOf(request),
            requestId: request.id,
          };
          // Identical requests in flight are joined (a CI job retried while its first request still runs).
          return runAndWait(reply, { deployer, waits }, wait, () => deployer.deploy(deploy));
        },
      });
    };
    deployRoute('/:service/deploy', 'deploy');
    deployRoute('/:service/canary', 'canary');
    // The original deployer's name for the canary path; depctl and old CI scripts may still use it.
    deployRoute('/:service/deploy_canary', 'canary');

    const mayDeploy = (request: FastifyRequest, service: string): boolean => mayAccess(principalOf(request), 'deploy', service);
    registerFlowRoutes(api, { deployer, waits, mayDeploy, guard, serviceNamed, callerOf });
    registerHookRoutes(api, { config, deployer, principalOf, callerOf, serviceNamed, mayDeploy });
    done();
  });
}
