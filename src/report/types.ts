import type { Caller, DeployKind } from '../deploy/types.js';

export type DeployOutcome = 'success' | 'failure';

/** What the deployer knows about one finished deploy, canary, rollback or promote; the facts of every report. */
export interface DeployEvent {
  readonly service: string;
  readonly kind: DeployKind;
  readonly commit?: string | undefined;
  readonly tag?: string | undefined;
  readonly result: DeployOutcome;
  readonly durationMs: number;
  /** The commit's author, as git (or svn) names them. */
  readonly author?: string | undefined;
  /** Lines added and removed since the version that ran before, when the source could tell. */
  readonly insertions?: number | undefined;
  readonly deletions?: number | undefined;
  readonly caller: Caller;
  readonly requestId: string;
  /** On failure: what the caller was answered (the error's class, its safe message and the HTTP status). */
  readonly error?: { readonly name: string; readonly message: string; readonly status: number } | undefined;
}

/**
 * Tells people about deploys (thesis 5.3.5): errors of non-depctl callers go to the error report system and chat.
 * Neither method ever rejects: a notifier that fails is logged, never the reason a deploy fails.
 */
export interface Notifier {
  deployFailed(event: DeployEvent, error: Error): Promise<void>;
  deploySucceeded(event: DeployEvent): Promise<void>;
}
