import type { ServiceConfig } from '../config/load.js';

/** What `GET /:service` shows (thesis: show): the service's configuration without any secret. */
export interface ServiceView {
  readonly name: string;
  readonly repository: {
    readonly url: string;
    readonly type: 'git' | 'svn';
    readonly defaultBranch: string;
    /** The user name is not secret; for the secrets, only which kinds are configured. */
    readonly username?: string;
    readonly credentials: readonly ('password' | 'token' | 'sshKey' | 'knownHosts')[];
  };
  readonly manifestsDir: string;
  readonly namespace: string;
  readonly allowNamespaces: readonly string[];
  readonly allowClusterScoped: boolean;
}

/** `GET /` (thesis: ls). */
export interface ServiceList {
  readonly services: readonly string[];
}

export interface VersionView {
  readonly name: 'deployer';
  readonly version: string;
}

export function serviceView(service: ServiceConfig): ServiceView {
  const c = service.repository.credentials;
  const kinds = (['password', 'token', 'sshKey', 'knownHosts'] as const).filter((k) => c?.[k] !== undefined);
  return {
    name: service.name,
    repository: {
      url: withoutUserinfo(service.repository.url),
      type: service.repository.type,
      defaultBranch: service.repository.defaultBranch,
      ...(c?.username === undefined ? {} : { username: c.username }),
      credentials: kinds,
    },
    manifestsDir: service.manifestsDir,
    namespace: service.namespace,
    allowNamespaces: service.allowNamespaces,
    allowClusterScoped: service.allowClusterScoped,
  };
}

/**
 * A repository URL without its userinfo (`https://user:secret@host/x.git` → `https://host/x.git`): the config
 * may carry a password there. scp-like git addresses (`git@host:org/repo.git`) name only an ssh user, which is
 * kept; anything that looks like `user:password@` in them is dropped too.
 */
export function withoutUserinfo(url: string): string {
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url)) {
    try {
      const u = new URL(url);
      if (u.username === '' && u.password === '') return url;
      u.username = '';
      u.password = '';
      return u.toString();
    } catch {
      // Not parseable by WHATWG URL (svn+ssh:// with an odd host, say): cut the authority's userinfo by hand.
      return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, '$1');
    }
  }
  return url.replace(/^[^@/]*:[^@/]*@/, '');
}
