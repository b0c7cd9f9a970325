import { InputError } from '../errors.js';

/** What a git version reference names. */
export type GitRef =
  | { kind: 'commit'; sha: string }
  | { kind: 'short'; prefix: string }
  | { kind: 'branch'; name: string };

const FULL_SHA = /^[0-9a-f]{40}$/;
const SHORT_SHA = /^[0-9a-f]{4,39}$/;

/**
 * Classifies a git reference from a request: 40 hex digits are a commit, 4 to 39 a commit prefix (as in image tags
 * BRANCH-SHA), anything else a branch name. A branch whose whole name is hex digits therefore cannot be named.
 * Everything that could reach git's command line as an option, a revision expression (`main~1`, `@{-1}`, `a..b`)
 * or a pathspec is refused.
 */
export function parseGitRef(ref: string): GitRef {
  const lower = ref.toLowerCase();
  if (FULL_SHA.test(lower)) return { kind: 'commit', sha: lower };
  if (SHORT_SHA.test(lower)) return { kind: 'short', prefix: lower };
  if (!isBranchName(ref)) {
    throw new InputError(`"${printable(ref)}" is neither a commit SHA nor a valid branch name`, { field: 'commit' });
  }
  return { kind: 'branch', name: ref };
}

/** A full commit id from `resolve`; anything else is refused before it reaches git. */
export function parseFullSha(commit: string): string {
  const lower = commit.toLowerCase();
  if (!FULL_SHA.test(lower)) {
    throw new InputError(`"${printable(commit)}" is not a full commit SHA (40 hex digits)`, { field: 'commit' });
  }
  return lower;
}

/** git check-ref-format's rules, narrowed to the characters branch names use in practice. */
export function isBranchName(name: string): boolean {
  if (name.length === 0 || name.length > 200) return false;
  if (!/^[A-Za-z0-9_][A-Za-z0-9._/+-]*$/.test(name)) return false;
  if (name.includes('..') || name.includes('//') || name.includes('/.') || name.includes('/-')) return false;
  if (name.endsWith('/') || name.endsWith('.') || name.endsWith('.lock') || name.includes('.lock/')) return false;
  return name !== 'HEAD';
}

/** Bounded and control-character free, for an error message that echoes input. */
export function printable(value: string): string {
  const cleaned = value.replace(/[^\x20-\x7e]/g, '?');
  return cleaned.length > 80 ? `${cleaned.slice(0, 80)}…` : cleaned;
}

/** The manifests directory as a clean relative path ('' for the repository root). */
export function cleanDir(dir: string): string {
  const parts = dir.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new InputError(`manifests directory "${printable(dir)}" leaves the repository`);
  return parts.join('/');
}
