import { inject } from 'vitest';

/**
 * What the test ground's parts tell the tests: plain JSON (vitest passes it from the global setup to the
 * workers). Every address is on loopback. Each part is started by `test/env/global-setup.ts` unless
 * `TESTGROUND_PARTS` (comma-separated part names) leaves it out, for a quicker focused run.
 */
export interface KubeGround {
  /** https://127.0.0.1:PORT */
  server: string;
  /** A kubeconfig file for a cluster-admin user. */
  adminKubeconfig: string;
  adminToken: string;
  /** The apiserver's serving CA (PEM file). */
  caFile: string;
  /** Directory the part uses for its state and logs. */
  dir: string;
}

export interface RegistryGround {
  /** host:port of a registry without authentication. */
  anonymous: string;
  /** host:port of a registry with htpasswd basic auth. */
  basic: { host: string; username: string; password: string };
  /** host:port of a registry that uses the bearer token flow, with the token server's credentials. */
  bearer: { host: string; username: string; password: string; realm: string };
}

export interface GitGround {
  /** http://127.0.0.1:PORT/ — repositories are served below it as NAME.git, smart HTTP, basic auth. */
  baseUrl: string;
  username: string;
  password: string;
  /** Directory holding the served bare repositories (NAME.git); fixtures create repositories here. */
  root: string;
}

export interface SvnGround {
  /** svn://127.0.0.1:PORT/ — repositories below it by name (svnserve, user/password). */
  baseUrl: string;
  username: string;
  password: string;
  /** Directory holding the repositories (svnadmin create ROOT/NAME); fixtures create them here. */
  root: string;
}

export interface Ground {
  kube?: KubeGround;
  registry?: RegistryGround;
  git?: GitGround;
  svn?: SvnGround;
  /** Where every part writes its server logs. */
  logsDir: string;
}

export type PartName = 'kube' | 'registry' | 'git' | 'svn';

declare module 'vitest' {
  export interface ProvidedContext {
    ground: Ground;
  }
}

/** The started part `name` of the test ground; throws when it was not started (see TESTGROUND_PARTS). */
export function ground<K extends PartName>(name: K): NonNullable<Ground[K]> {
  const part = inject('ground')[name];
  if (part === undefined) {
    throw new Error(`test ground part "${name}" is not running (TESTGROUND_PARTS=${process.env['TESTGROUND_PARTS']})`);
  }
  return part;
}
