import type { FastifyReply } from 'fastify';
import { UnavailableError } from '../errors.js';

/** What a caller refused for want of a wait slot is told to wait before it tries again. */
export const WAIT_RETRY_AFTER_SECONDS = 30;

/**
 * The requests waiting for a rollout verdict (`wait=`), at most `max` at once: each polls the apiserver every second
 * while it waits, up to 30 minutes. A slot is taken before the request deploys, so a request refused (503) has
 * changed nothing.
 */
export class WaitSlots {
  readonly #max: number;
  #taken = 0;

  constructor(max: number) {
    this.#max = max;
  }

  get taken(): number {
    return this.#taken;
  }

  /** A slot, released by the function returned (once, however often it is called); 503 with Retry-After when none is free. */
  take(): () => void {
    if (this.#taken >= this.#max) {
      throw new UnavailableError(
        `too many requests wait for rollouts (http.maxWaits is ${this.#max}); nothing was deployed. ` +
          'Try again later, or deploy without wait and poll GET /SERVICE for the rollout',
        { retryAfterSeconds: WAIT_RETRY_AFTER_SECONDS, detail: { maxWaits: this.#max } },
      );
    }
    this.#taken++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#taken--;
    };
  }
}

/**
 * A signal that aborts when the caller hangs up before its answer is sent, so that work done only for that answer
 * (waiting for a verdict) stops.
 */
export function callerLeft(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  const res = reply.raw;
  const onClose = (): void => {
    if (!res.writableEnded) controller.abort();
  };
  if (res.destroyed) onClose();
  else res.once('close', onClose);
  return controller.signal;
}
