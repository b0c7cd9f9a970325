import type { ServiceConfig } from '../config/load.js';
import type { ImageTags } from '../deploy/types.js';

/*
 * Old clients keep working: every answer also carries the keys the original deployer (the thesis' own, Ruby) answered
 * with where ours differ — `GET /` its `repositories`, `GET /:service` its repository's `name`, `github` and
 * `kube_resource`, `GET /:service/tags` its `count` and `names` (gapfish/deployer lib/deploy_server_creator.rb).
 */

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
    /** The original's: the service's name. */
    readonly name: string;
    /** The original's: `owner/name` of a GitHub repository (what its config held), else the URL without userinfo. */
    readonly github: string;
    /** The original's: the manifests directory. */
    readonly kube_resource: string;
  };
  readonly manifestsDir: string;
  readonly namespace: string;
  readonly allowNamespaces: readonly string[];
  readonly allowClusterScoped: boolean;
}

/** `GET /` (thesis: ls). */
export interface ServiceList {
  readonly services: readonly string[];
  /** The original's name for the same list. */
  readonly repositories: readonly string[];
}

export function serviceList(services: readonly string[]): ServiceList {
  return { services, repositories: services };
}

/** `GET /:service/tags`. */
export interface TagsView {
  readonly service: string;
  /** The commit or branch looked at: the one asked for, else the repository's default branch. */
  readonly ref: string;
  readonly images: readonly ImageTags[];
  /** The original's: every image's tags in one list, each once (sorted), and how many. */
  readonly count: number;
  readonly names: readonly string[];
}

export function tagsView(service: string, ref: string, images: readonly ImageTags[]): TagsView {
  const names = [...new Set(images.flatMap((i) => i.tags))].sort();
  return { service, ref, images, count: names.length, names };
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
      name: service.name,
      github: githubOf(service.repository.url),
      kube_resource: service.manifestsDir,
    },
    manifestsDir: service.manifestsDir,
    namespace: service.namespace,
    allowNamespaces: service.allowNamespaces,
    allowClusterScoped: service.allowClusterScoped,
  };
}

/** `owner/name` of a repository on github.com (the original's `github` setting), else the URL without userinfo. */
export function githubOf(url: string): string {
  const plain = withoutUserinfo(url);
  const m = /^(?:(?:https?|ssh|git):\/\/(?:[^@/]+@)?github\.com(?::\d+)?\/|[^@/]+@github\.com:)([^/]+\/[^/]+?)(?:\.git)?\/?$/.exec(plain);
  return m?.[1] ?? plain;
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
