import { ConfigError } from '../config/load.js';

/** Where a service's GitHub deployments and statuses go. */
export interface GitHubTarget {
  /** The REST API's root, without a trailing slash. */
  readonly apiUrl: string;
  readonly owner: string;
  readonly repo: string;
}

/**
 * The GitHub repository of a service: `OWNER/NAME` and the API root as configured, else read from the repository
 * URL (`https://HOST/OWNER/NAME(.git)`, `ssh://git@HOST/OWNER/NAME.git`, `git@HOST:OWNER/NAME.git`). The API of
 * github.com is api.github.com; of GitHub Enterprise Cloud with data residency (`SUB.ghe.com`) api.SUB.ghe.com; of
 * any other host (GitHub Enterprise Server) https://HOST/api/v3. Throws a ConfigError naming `key` when the URL
 * says neither.
 */
export function githubTarget(
  repositoryUrl: string,
  options: { readonly repository?: string | undefined; readonly apiUrl?: string | undefined },
  key: string,
): GitHubTarget {
  const fromUrl = parseRepositoryUrl(repositoryUrl);
  const path = options.repository ?? (fromUrl === undefined ? undefined : `${fromUrl.owner}/${fromUrl.repo}`);
  const [owner, repo] = path?.split('/') ?? [];
  if (owner === undefined || repo === undefined) {
    throw new ConfigError(`${key}.repository: the repository URL names no GitHub OWNER/NAME; set it`);
  }
  const apiUrl = options.apiUrl ?? (fromUrl === undefined ? undefined : defaultApiUrl(fromUrl.host));
  if (apiUrl === undefined) throw new ConfigError(`${key}.apiUrl: the repository URL names no GitHub host; set it`);
  return { apiUrl: apiUrl.replace(/\/+$/, ''), owner, repo };
}

function parseRepositoryUrl(url: string): { host: string; owner: string; repo: string } | undefined {
  let host: string;
  let path: string;
  const scp = /^[^@/:]+@([^:/]+):(.+)$/.exec(url);
  if (scp !== null) {
    host = scp[1] ?? '';
    path = scp[2] ?? '';
  } else {
    if (!URL.canParse(url)) return undefined;
    const u = new URL(url);
    if (!['https:', 'http:', 'ssh:', 'git:'].includes(u.protocol)) return undefined;
    host = u.protocol === 'ssh:' || u.protocol === 'git:' ? u.hostname : u.host;
    path = u.pathname;
  }
  const m = /^\/?([A-Za-z0-9][A-Za-z0-9-]*)\/([A-Za-z0-9._-]+?)(?:\.git)?\/?$/.exec(path);
  if (m === null || host === '') return undefined;
  return { host: host.toLowerCase(), owner: m[1] ?? '', repo: m[2] ?? '' };
}

function defaultApiUrl(host: string): string {
  if (host === 'github.com' || host === 'www.github.com') return 'https://api.github.com';
  if (host.endsWith('.ghe.com')) return `https://api.${host}`;
  return `https://${host}/api/v3`;
}
