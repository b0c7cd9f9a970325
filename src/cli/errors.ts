/**
 * Exit codes of depctl: 1 when the deployer, the network or the rollout failed, 2 when the command line or setup
 * is wrong, 70 when `--wait` ran out before the rollout finished (krane's code for a timeout).
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, timeout: 70 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure depctl reports in one message and an exit code; never with a stack trace. */
export class CliError extends Error {
  readonly exitCode: Exclude<ExitCode, 0>;
  /** What `--json` prints on stdout for it; the server's error body when there was one. */
  readonly json: unknown;

  constructor(message: string, options: { exitCode?: Exclude<ExitCode, 0>; json?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = options.exitCode ?? EXIT.failure;
    this.json = options.json ?? { error: message };
  }
}

/** The command line is wrong, or depctl is not set up (exit 2). */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, { exitCode: EXIT.usage });
  }
}
