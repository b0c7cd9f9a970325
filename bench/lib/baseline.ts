import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './fixtures.js';
import { since } from './stats.js';

/**
 * The original deployer's way of working, scripted: a working copy per service that `git fetch` and `git checkout`
 * bring to the commit, then one `kubectl apply -f` process per manifest file, each file with the image tag written
 * in (as the original did with its template step). Argument arrays throughout.
 */
export interface BaselineOptions {
  kubectl: string;
  kubeconfig: string;
  namespace: string;
  /** The repository's URL with the git server's credentials in it, as the original's working copies had them. */
  url: string;
  workDir: string;
  image: string;
}

export interface BaselineTiming {
  totalMs: number;
  /** `git clone` (cold) or `git fetch` + `git checkout` (warm). */
  gitMs: number;
  applyMs: number;
}

const gitEnv = (): NodeJS.ProcessEnv => ({
  PATH: process.env['PATH'],
  HOME: tmpdir(),
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
});

export function urlWithCredentials(baseUrl: string, urlPath: string, username: string, password: string): string {
  const url = new URL(urlPath, baseUrl);
  url.username = username;
  url.password = password;
  return url.toString();
}

export class Baseline {
  readonly #o: BaselineOptions;
  readonly #checkout: string;
  readonly #rendered: string;

  constructor(options: BaselineOptions) {
    this.#o = options;
    this.#checkout = join(options.workDir, 'checkout');
    this.#rendered = join(options.workDir, 'rendered');
    mkdirSync(this.#rendered, { recursive: true });
  }

  /** A full `git clone` into an empty working copy, then checkout of `commit` and the applies. */
  async cold(commit: string, tag: string): Promise<BaselineTiming> {
    const start = performance.now();
    await run('git', ['clone', '--quiet', '--', this.#o.url, this.#checkout], { env: gitEnv() });
    await run('git', ['checkout', '--quiet', '--force', commit], { cwd: this.#checkout, env: gitEnv() });
    const gitMs = since(start);
    const applyMs = await this.#applyAll(tag);
    return { totalMs: since(start), gitMs, applyMs };
  }

  /** `git fetch` + `git checkout` of `commit` in the existing working copy, then the applies. */
  async warm(commit: string, tag: string): Promise<BaselineTiming> {
    const start = performance.now();
    await run('git', ['fetch', '--quiet', 'origin'], { cwd: this.#checkout, env: gitEnv() });
    await run('git', ['checkout', '--quiet', '--force', commit], { cwd: this.#checkout, env: gitEnv() });
    const gitMs = since(start);
    const applyMs = await this.#applyAll(tag);
    return { totalMs: since(start), gitMs, applyMs };
  }

  async #applyAll(tag: string): Promise<number> {
    const start = performance.now();
    const dir = join(this.#checkout, 'kubernetes');
    const files = readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
    for (const file of files) {
      const text = readFileSync(join(dir, file), 'utf8').replaceAll(`image: ${this.#o.image}\n`, `image: ${this.#o.image}:${tag}\n`);
      const rendered = join(this.#rendered, file);
      writeFileSync(rendered, text);
      await run(this.#o.kubectl, ['--kubeconfig', this.#o.kubeconfig, '--namespace', this.#o.namespace, 'apply', '-f', rendered]);
    }
    return since(start);
  }
}
