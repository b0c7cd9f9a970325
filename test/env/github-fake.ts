import { z } from 'zod';
import type { CaptureAnswer, CapturedRequest } from './capture-server.js';

/**
 * The answers of GitHub's REST API that the deployer's reports need, for a capture server: ids for created
 * deployments, the newest deployment of an environment, and the full SHA of an abbreviated commit among `commits`.
 * Everything else (statuses) answers 201 with an id of its own. Paths may have a prefix, as GitHub Enterprise's `/api/v3`.
 */
export function githubAnswers(commits: () => readonly string[] = () => []): CaptureAnswer {
  let nextDeployment = 1;
  let nextStatus = 1000;
  const deployments: Array<{ id: number; environment: string }> = [];
  return (request) => {
    const url = new URL(request.path, 'http://github.test');
    if (request.method === 'POST' && /\/repos\/[^/]+\/[^/]+\/deployments$/.test(url.pathname)) {
      const body = request.body as { environment?: string };
      const created = { id: nextDeployment++, environment: body.environment ?? 'production' };
      deployments.unshift(created);
      return { status: 201, body: created };
    }
    if (request.method === 'GET' && /\/repos\/[^/]+\/[^/]+\/deployments$/.test(url.pathname)) {
      const environment = url.searchParams.get('environment');
      return { status: 200, body: deployments.filter((d) => environment === null || d.environment === environment).slice(0, 1) };
    }
    const commit = /\/repos\/[^/]+\/[^/]+\/commits\/([^/]+)$/.exec(url.pathname)?.[1];
    if (request.method === 'GET' && commit !== undefined) {
      const sha = commits().find((c) => c.startsWith(commit));
      return sha === undefined ? { status: 422, body: { message: `No commit found for SHA: ${commit}` } } : { status: 200, body: { sha } };
    }
    return { status: 201, body: { id: nextStatus++ } };
  };
}

const DeploymentBody = z.object({ ref: z.string(), environment: z.string(), transient_environment: z.boolean().optional(), description: z.string() });
const StatusBody = z.object({ state: z.string(), description: z.string().optional(), context: z.string().optional() });

/**
 * What the deployer told GitHub, one line per call, in order: `deployment production <ref>`,
 * `deployment-status 1 success`, `status <sha> deployer/production success`, `inactive 3`, `list production`,
 * `commit abc1234`.
 */
export function githubCalls(requests: readonly CapturedRequest[]): string[] {
  return requests.map((r) => {
    const path = new URL(r.path, 'http://github.test').pathname;
    const tail = path.replace(/^.*?\/repos\/[^/]+\/[^/]+\//, '');
    if (r.method === 'POST' && tail === 'deployments') {
      const b = DeploymentBody.parse(r.body);
      return `deployment ${b.environment} ${b.ref}`;
    }
    const status = /^deployments\/(\d+)\/statuses$/.exec(tail);
    if (r.method === 'POST' && status !== null) {
      const b = StatusBody.parse(r.body);
      return b.state === 'inactive' ? `inactive ${status[1] ?? ''}` : `deployment-status ${status[1] ?? ''} ${b.state}`;
    }
    const commitStatus = /^statuses\/([0-9a-f]+)$/.exec(tail);
    if (r.method === 'POST' && commitStatus !== null) {
      const b = StatusBody.parse(r.body);
      return `status ${commitStatus[1] ?? ''} ${b.context ?? ''} ${b.state}`;
    }
    if (r.method === 'GET' && tail === 'deployments') return `list ${new URL(r.path, 'http://github.test').searchParams.get('environment') ?? ''}`;
    const commit = /^commits\/(.+)$/.exec(tail);
    if (r.method === 'GET' && commit !== null) return `commit ${commit[1] ?? ''}`;
    return `${r.method} ${path}`;
  });
}
