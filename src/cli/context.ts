import type { DeployerClient } from './client.js';
import type { Env } from './config.js';
import type { ExitCode } from './errors.js';
import type { OptionName, Values } from './options.js';
import type { Stream } from './output.js';

/** What a run of depctl sees of the world; the entry point passes the process's, tests may pass their own. */
export interface Io {
  readonly env: Env;
  readonly cwd: string;
  readonly home: string;
  readonly stdout: Stream;
  readonly stderr: Stream;
  /** depctl's own version (package.json). */
  readonly version: string;
}

export const READ_TIMEOUT_S = 30;
/** A deploy waits for the service's lock, CI's image in the registry and the apiserver; the server bounds each. */
export const WRITE_TIMEOUT_S = 600;
/** A tab press should not hang the shell. */
export const COMPLETION_TIMEOUT_S = 5;
/** Tags need a git fetch and a registry call per image. */
export const TAGS_TIMEOUT_S = 120;

/** What a command gets to do its job. */
export interface Context {
  readonly io: Io;
  readonly values: Values;
  readonly args: readonly string[];
  readonly json: boolean;
  /**
   * Creates the client on first use, so help and completion work without any configuration. Its timeout is
   * `--timeout` or the command's default, plus `extraS` (a rollout the deployer waits for).
   */
  client(defaultTimeoutS: number, extraS?: number): DeployerClient;
  /** Prints the answer: the server's JSON with `--json`, else the human text. */
  print(json: unknown, human: string): void;
  note(message: string): void;
  spin<T>(label: string, work: () => Promise<T>): Promise<T>;
}

export interface CommandSpec {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
  /** Explanations and examples for `depctl help COMMAND`. */
  readonly details: string;
  /** Options beyond the common ones. */
  readonly options: readonly OptionName[];
  /** Whether the first argument is a SERVICE (completion offers service names there). */
  readonly takesService: boolean;
  readonly maxArgs: number;
  /** Help and completion: they never ask the deployer, so `--json` and `--timeout` mean nothing to them. */
  readonly local?: true;
  /** Resolves to the exit code when it is not 0 for success (a rollout that did not finish in time). */
  run(ctx: Context): Promise<ExitCode | void>;
}
