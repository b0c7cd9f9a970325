import type { LiveReader } from '../core/ports.js';

/**
 * A LiveReader whose identical reads in flight at the same time are sent once, every caller getting that one answer.
 * For the verdict waits: the callers of one deploy (identical requests are joined, each with its own `wait=`) start
 * polling at the same moment and poll in step, once a second each; without sharing, N waiting callers made N times
 * the apiserver reads of one, and the apiserver, slowed by them, slowed every deploy's calls too. A read that starts
 * after another has answered is sent again: nothing is cached beyond the call in flight.
 */
export function sharedReads(live: LiveReader): LiveReader {
  const inFlight = new Map<string, Promise<unknown>>();
  const shared = <T>(key: string, read: () => Promise<T>): Promise<T> => {
    const running = inFlight.get(key);
    if (running !== undefined) return running as Promise<T>;
    const started = read().finally(() => inFlight.delete(key));
    inFlight.set(key, started);
    return started;
  };
  return {
    getDeployment: (namespace, name) => shared(JSON.stringify(['deployment', namespace, name]), () => live.getDeployment(namespace, name)),
    listDeployments: (namespace, selector) => shared(JSON.stringify(['deployments', namespace, selector]), () => live.listDeployments(namespace, selector)),
    listReplicaSets: (namespace, selector) => shared(JSON.stringify(['replicasets', namespace, selector]), () => live.listReplicaSets(namespace, selector)),
    listPods: (namespace, selector) => shared(JSON.stringify(['pods', namespace, selector]), () => live.listPods(namespace, selector)),
    getStatefulSet: (namespace, name) => shared(JSON.stringify(['statefulset', namespace, name]), () => live.getStatefulSet(namespace, name)),
    getDaemonSet: (namespace, name) => shared(JSON.stringify(['daemonset', namespace, name]), () => live.getDaemonSet(namespace, name)),
    getJob: (namespace, name) => shared(JSON.stringify(['job', namespace, name]), () => live.getJob(namespace, name)),
    jobLogs: (job, limits) => live.jobLogs(job, limits),
  };
}
