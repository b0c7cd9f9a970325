import type { RepositoryCredentials, ServiceConfig } from '../../src/config/load.js';
import { Secret } from '../../src/config/secret.js';
import type { GitGround } from './ground.js';

/**
 * A service's configuration as the sources read it (the repository, its branch and manifests directory), for tests
 * and benchmarks that drive GitSource directly; the deploy-only keys get their defaults.
 */
export function gitService(
  url: string,
  options: { name?: string; credentials?: RepositoryCredentials | undefined; manifestsDir?: string } = {},
): ServiceConfig {
  return {
    name: options.name ?? 'app',
    repository: { url, type: 'git', credentials: options.credentials, defaultBranch: 'main' },
    manifestsDir: options.manifestsDir ?? 'kubernetes',
    namespace: 'default',
    allowNamespaces: [],
    allowClusterScoped: false,
  };
}

/** The git ground's login (basic auth), or another password for it. */
export function groundLogin(g: GitGround, password = g.password): RepositoryCredentials {
  return { username: g.username, password: new Secret(password) };
}

/** A service of the repository `repoPath` (`NAME.git`) on the git ground, with its login. */
export function groundService(g: GitGround, repoPath: string, name = 'app'): ServiceConfig {
  return gitService(`${g.baseUrl}${repoPath}`, { name, credentials: groundLogin(g) });
}
