import type { Logger } from 'pino';
import type { ServiceConfig } from '../config/load.js';
import { GitSource } from './git.js';
import { SvnSource } from './svn.js';
import type { ReadOptions } from '../core/ports.js';
import type { CommitFacts, ManifestFile } from '../core/types.js';
import type { Source } from '../core/ports.js';

export { GitSource } from './git.js';
export { SvnSource } from './svn.js';

export interface SourceOptions {
  /** The pod's cache directory (config `cache.dir`). */
  cacheDir: string;
  /** Timeout of each call to git or svn (config `versions.remoteTimeoutSeconds`). */
  timeoutMs: number;
  logger: Logger;
}

/** The one `Source` the app uses: each call goes to git or svn by the service's `repository.type`. */
export function createSource(options: SourceOptions): Source {
  const git = new GitSource(options);
  const svn = new SvnSource(options);
  const pick = (service: ServiceConfig): Source => (service.repository.type === 'svn' ? svn : git);
  return {
    resolve: (service: ServiceConfig, ref: string, options?: ReadOptions): Promise<string> =>
      pick(service).resolve(service, ref, options),
    filesAt: (service: ServiceConfig, commit: string, options?: ReadOptions): Promise<ManifestFile[]> =>
      pick(service).filesAt(service, commit, options),
    commitFacts: (service: ServiceConfig, commit: string): Promise<CommitFacts> =>
      pick(service).commitFacts(service, commit),
    contains: (service: ServiceConfig, ref: string, commit: string): Promise<boolean> => pick(service).contains(service, ref, commit),
  };
}
