import type { Logger } from 'pino';
import { shortCommit } from '../core/util.js';
import type { DeployEvent } from '../core/types.js';

/** Stands for a fact the deployer does not know (no commit on a rollback, no diff stats from svn, ...). */
export const UNKNOWN = '?';

/**
 * The original deployer's grep-able line, `service;commit;kind result;duration;author;+ins;-del`, e.g.
 * `gapfish;025838f;deploy success;4.200s;Jane Doe;+12;-3`, with the original's words for the result (`success`,
 * `fail`: old readers grep `;deploy fail;`; the structured `result` field keeps `failure`), and an eighth field, the executor the caller claimed
 * (depctl's `Executor` header), when it claimed one: `...;+12;-3;jane@example.com`. The seven keep their places. A git commit is shortened to 7 characters, the duration
 * is in seconds with 3 decimals, an unknown fact is `?` (`+?`, `-?`). Each part is cleaned of `;` and line breaks
 * so a field can never shift the others or start a new log line.
 */
export function formatEventLine(event: DeployEvent): string {
  const commit = event.commit === undefined || event.commit === '' ? UNKNOWN : shortCommit(event.commit);
  const author = event.author === undefined || event.author.trim() === '' ? UNKNOWN : event.author;
  const fields = [
    clean(event.service),
    clean(commit),
    `${event.kind} ${event.result === 'failure' ? 'fail' : 'success'}`,
    formatDuration(event.durationMs),
    clean(author),
    `+${count(event.insertions)}`,
    `-${count(event.deletions)}`,
  ];
  const { executor } = event.caller;
  if (executor !== undefined && executor !== '') fields.push(clean(executor));
  return fields.join(';');
}

/** Writes the event log: one structured line per deploy, canary, rollback or promote, with the grep-able message. */
export function logDeployEvent(logger: Logger, event: DeployEvent): void {
  const fields = {
    event: 'deploy',
    service: event.service,
    commit: event.commit,
    tag: event.tag,
    kind: event.kind,
    result: event.result,
    durationMs: event.durationMs,
    author: event.author,
    insertions: event.insertions,
    deletions: event.deletions,
    caller: event.caller.token,
    executor: event.caller.executor,
    userAgent: event.caller.userAgent,
    requestId: event.requestId,
    error: event.error,
    analysis: event.analysis,
  };
  const message = formatEventLine(event);
  // A failed deploy is worth a look but is not the deployer's own fault (a bad commit, a missing tag): warn.
  if (event.result === 'success') logger.info(fields, message);
  else logger.warn(fields, message);
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return `${UNKNOWN}s`;
  return `${(ms / 1000).toFixed(3)}s`;
}

function count(n: number | undefined): string {
  return n === undefined || !Number.isInteger(n) || n < 0 ? UNKNOWN : String(n);
}

function clean(part: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what must not reach the line
  return part.replace(/;/g, ',').replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ');
}
