/**
 * The originator of a request as its client claims it: depctl sends `Executor: USER` (the OS user, or git's
 * user.email), as the original deployer's depctl did. It is recorded (event log, annotations, reports, state) and
 * never trusted: the token stays the authority for what a request may do.
 */

/** The header's name (Node lower-cases incoming header names). */
export const EXECUTOR_HEADER = 'executor';
/** Long enough for any e-mail address a person uses (RFC 5321 allows 254; nobody has one that long). */
export const EXECUTOR_MAX_LENGTH = 128;

/**
 * The claimed executor, cleaned so it can neither shift the event log's fields nor forge a log line: control
 * characters (and the Unicode line separators) become spaces, `;` is dropped, runs of white space are one space;
 * then trimmed and cut to EXECUTOR_MAX_LENGTH characters. Undefined when nothing is left or the header is absent.
 */
export function executorOf(header: string | readonly string[] | undefined): string | undefined {
  const raw = typeof header === 'string' ? header : header?.[0];
  if (raw === undefined) return undefined;
  const cleaned = raw
    // eslint-disable-next-line no-control-regex -- control characters are exactly what must not reach a log line
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ')
    .replace(/;/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  const bounded = [...cleaned].slice(0, EXECUTOR_MAX_LENGTH).join('').trim();
  return bounded === '' ? undefined : bounded;
}
