/** Exit codes of depctl: 1 when the deployer or the network failed, 2 when the command line or setup is wrong. */
export type ExitCode = 1 | 2;

/** A failure depctl reports in one message and an exit code; never with a stack trace. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  /** What `--json` prints on stdout for it; the server's error body when there was one. */
  readonly json: unknown;

  constructor(message: string, options: { exitCode?: ExitCode; json?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = options.exitCode ?? 1;
    this.json = options.json ?? { error: message };
  }
}

/** The command line is wrong, or depctl is not set up (exit 2). */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, { exitCode: 2 });
  }
}
