import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config/load.js';
import { BusyError } from '../errors.js';
import { sleep } from '../core/util.js';
import type { LeaseRecord, LeaseSpec } from '../core/types.js';
import type { LeaseStore } from '../core/ports.js';

/**
 * The per-service deploy lock across deployer replicas: a Kubernetes Lease, held by the pod that deploys and renewed
 * while it does, so two replicas never deploy one service at once. A holder that dies stops renewing, and its lease
 * expires by itself after `durationSeconds`. Within a process the engine's in-process queue (ServiceLocks) stands
 * in front of it, so a pod competes for a service's lease with one request at a time.
 *
 * The algorithm follows client-go's leader election: read, then create or update with the version read (the
 * apiserver refuses a write based on a stale read; a lease this instance released last is written over without
 * reading it again, since a stale version is refused just the same), and judge expiry both by the holder's renewTime and by how long
 * the lease has not changed since this replica first saw it (a holder whose clock runs ahead would otherwise hold
 * an abandoned lease for as long as its clock is ahead).
 */

export const DEFAULT_LEASE_SECONDS = 15;
export const DEFAULT_RENEW_SECONDS = 5;
const DEFAULT_POLL_MS = 500;

/** The prefix of the deployer's own Leases: no service's manifests may name a Lease with it. */
export const LEASE_PREFIX = 'deployer-';

/** The lease of a service's deploy lock; service names are DNS labels, so it is a valid object name. */
export function leaseName(service: string): string {
  return `${LEASE_PREFIX}${service}`;
}

/** Where a pod's service account token lives, with its namespace beside it. */
export const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/**
 * The deployer's own namespace, where its Leases live unless `kubernetes.leaseNamespace` says otherwise: POD_NAMESPACE
 * (the downward API), else the namespace of the pod's service account, else `default` (outside a cluster).
 */
export function deployerNamespace(
  env: Readonly<Record<string, string | undefined>> = process.env,
  readNamespaceFile: () => string | undefined = () => readIfExists(SERVICE_ACCOUNT_NAMESPACE_FILE),
): string {
  const fromEnv = env['POD_NAMESPACE']?.trim();
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const fromFile = readNamespaceFile()?.trim();
  if (fromFile !== undefined && fromFile !== '') return fromFile;
  return 'default';
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Who holds a lease: the pod's name (set from the downward API as POD_NAME), else host name and process id. */
export function holderIdentity(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const pod = env['POD_NAME'];
  if (pod !== undefined && pod.trim() !== '') return pod.trim();
  return `${hostname()}-${process.pid}`;
}

export interface LeaseLockOptions {
  readonly store: LeaseStore;
  /** This replica's identity as written into the lease. */
  readonly identity: string;
  readonly logger: Logger;
  /** Where the leases live (config `kubernetes.leaseNamespace`, else `deployerNamespace()`); unset: each service's namespace (tests). */
  readonly namespace?: string | undefined;
  readonly durationSeconds?: number | undefined;
  readonly renewSeconds?: number | undefined;
  /** How often a waiter looks at a lease someone else holds. */
  readonly pollMs?: number | undefined;
  readonly now?: (() => number) | undefined;
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
}

/** Fields of the lock's log lines: the request that holds it. */
export interface HoldContext {
  readonly requestId?: string | undefined;
}

export class LeaseLock {
  readonly #store: LeaseStore;
  readonly #identity: string;
  readonly #log: Logger;
  readonly #namespace: string | undefined;
  readonly #durationSeconds: number;
  readonly #renewMs: number;
  readonly #pollMs: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  /** The leases this instance holds now: one "held by me" that is not among them was left by an earlier process. */
  readonly #holding = new Set<string>();
  /**
   * Each lease as this instance's release left it: the next deploy's acquisition writes over it at once, without
   * reading it first; if anyone changed it since, the apiserver refuses the stale version and the lease is read.
   */
  readonly #released = new Map<string, LeaseRecord>();

  constructor(options: LeaseLockOptions) {
    this.#store = options.store;
    this.#identity = options.identity;
    this.#log = options.logger.child({ module: 'lease' });
    this.#namespace = options.namespace;
    this.#durationSeconds = options.durationSeconds ?? DEFAULT_LEASE_SECONDS;
    this.#renewMs = (options.renewSeconds ?? DEFAULT_RENEW_SECONDS) * 1000;
    this.#pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? sleep;
  }

  get identity(): string {
    return this.#identity;
  }

  /**
   * Runs `fn` while holding the service's lease: waits up to `waitMs` for another holder to release it or for its
   * lease to expire (then 409), renews it every few seconds while `fn` runs, and releases it afterwards.
   */
  async hold<T>(service: ServiceConfig, waitMs: number, fn: () => Promise<T>, context: HoldContext = {}): Promise<T> {
    const namespace = this.#namespace ?? service.namespace;
    const name = leaseName(service.name);
    const fields = { service: service.name, lease: `${namespace}/${name}`, holder: this.#identity, requestId: context.requestId };
    const acquired = await this.#acquire(namespace, name, service.name, this.#now() + waitMs, fields);
    const key = `${namespace}/${name}`;
    this.#holding.add(key);
    this.#log.info(fields, 'lease acquired');
    const renewal = new Renewal(acquired, (record) => this.#renew(record, fields), this.#renewMs);
    try {
      return await fn();
    } finally {
      // Logged before the release, so that in the log every "released" comes before the next holder's "acquired".
      this.#log.info(fields, 'lease released');
      const last = await renewal.stop();
      if (last !== undefined) await this.#release(last, fields);
      this.#holding.delete(key);
    }
  }

  #spec(record: LeaseRecord | undefined, now: number): LeaseSpec {
    const mine = record?.holder === this.#identity;
    return {
      holder: this.#identity,
      durationSeconds: this.#durationSeconds,
      acquireTime: mine && record?.acquireTime !== undefined ? record.acquireTime : new Date(now),
      renewTime: new Date(now),
      // client-go counts every change of holder, a free lease's included.
      transitions: record === undefined ? 0 : mine ? record.transitions : record.transitions + 1,
    };
  }

  async #acquire(
    namespace: string,
    name: string,
    service: string,
    deadline: number,
    fields: Record<string, unknown>,
  ): Promise<LeaseRecord> {
    let seen: { version: string; at: number } | undefined;
    const key = `${namespace}/${name}`;
    for (;;) {
      const now = this.#now();
      const remembered = this.#released.get(key);
      this.#released.delete(key);
      const current = remembered ?? (await this.#store.get(namespace, name));
      if (current === undefined) {
        const created = await this.#store.create(namespace, name, this.#spec(undefined, now));
        if (created !== 'conflict') return created;
        continue;
      }
      if (seen?.version !== current.resourceVersion) seen = { version: current.resourceVersion, at: now };
      const holder = current.holder;
      // Held under this identity but not by this instance: a crashed earlier process of this pod left it.
      const free = holder === undefined || holder === '' || (holder === this.#identity && !this.#holding.has(key));
      const expired = !free && this.#expired(current, now, seen.at);
      if (free || expired) {
        const taken = await this.#store.update(current, this.#spec(current, now));
        if (taken === 'conflict') continue;
        if (expired) this.#log.warn({ ...fields, previousHolder: holder }, 'lease taken over from a holder that stopped renewing it');
        return taken;
      }
      if (now >= deadline) {
        throw new BusyError(`another deploy of ${service} is running (lock held by ${holder}); try again later`, {
          detail: { service, holder },
        });
      }
      // A little jitter, so that replicas waiting for one lease do not all ask at the same moment.
      await this.#sleep(Math.min(this.#pollMs * (0.75 + Math.random() / 2), Math.max(deadline - now, 1)));
    }
  }

  /** Expired by the holder's own renewTime, or unchanged for a whole duration since this replica first saw it. */
  #expired(lease: LeaseRecord, now: number, unchangedSince: number): boolean {
    const durationMs = (lease.durationSeconds ?? this.#durationSeconds) * 1000;
    if (lease.renewTime !== undefined && lease.renewTime.getTime() + durationMs < now) return true;
    return now - unchangedSince > durationMs;
  }

  /** One renewal; the record to renew next time, or undefined once the lease is lost. */
  async #renew(record: LeaseRecord, fields: Record<string, unknown>): Promise<LeaseRecord | undefined> {
    try {
      const renewed = await this.#store.update(record, this.#spec(record, this.#now()));
      if (renewed !== 'conflict') return renewed;
      const current = await this.#store.get(record.namespace, record.name);
      if (current?.holder === this.#identity) return this.#renew(current, fields);
      // Nothing stops a deploy half way; this says that two may have overlapped, for whoever investigates.
      this.#log.error({ ...fields, newHolder: current?.holder }, 'lease lost while deploying: another replica took it over');
      return undefined;
    } catch (err) {
      // The apiserver may come back before the lease expires; the next renewal tries again.
      this.#log.warn({ ...fields, err }, 'lease renewal failed');
      return record;
    }
  }

  async #release(record: LeaseRecord, fields: Record<string, unknown>): Promise<void> {
    try {
      let current: LeaseRecord | undefined = record;
      for (let attempt = 0; attempt < 3 && current?.holder === this.#identity; attempt++) {
        const released = await this.#store.update(current, {
          holder: undefined,
          durationSeconds: this.#durationSeconds,
          acquireTime: undefined,
          renewTime: new Date(this.#now()),
          transitions: current.transitions,
        });
        if (released !== 'conflict') {
          this.#released.set(`${record.namespace}/${record.name}`, released);
          return;
        }
        current = await this.#store.get(record.namespace, record.name);
      }
    } catch (err) {
      // Not released: it expires by itself; the deploy itself went through.
      this.#log.warn({ ...fields, err }, 'lease release failed; it expires by itself');
    }
  }
}

/** Renews a lease every `intervalMs` until stopped; one renewal at a time. */
class Renewal {
  readonly #renew: (record: LeaseRecord) => Promise<LeaseRecord | undefined>;
  readonly #intervalMs: number;
  #record: LeaseRecord | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(record: LeaseRecord, renew: (record: LeaseRecord) => Promise<LeaseRecord | undefined>, intervalMs: number) {
    this.#record = record;
    this.#renew = renew;
    this.#intervalMs = intervalMs;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped || this.#record === undefined) return;
    this.#timer = setTimeout(() => {
      const record = this.#record;
      if (record === undefined) return;
      this.#running = this.#renew(record).then((next) => {
        this.#record = next;
        this.#schedule();
      });
    }, this.#intervalMs);
  }

  /** Stops renewing; the lease as last renewed, or undefined when it was lost. */
  async stop(): Promise<LeaseRecord | undefined> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    return this.#record;
  }
}
