/**
 * The globs of a service's configuration (`exclude`, `images`): `*` matches within one path segment, `?` one
 * character of a segment, `**` any number of segments (a whole segment: `a/**` and `**` + `/b`), anything else itself.
 * No braces or classes: a glob that means something else in another tool is better refused than guessed at.
 */

/** A compiled glob: whether a path (or image reference) matches it. */
export type Matcher = (value: string) => boolean;

function escape(text: string): string {
  return text.replace(/[.+^${}()|[\]\\]/g, '\\$&');
}

/** The regular expression of one glob, anchored at both ends. */
export function globToRegExp(glob: string): RegExp {
  const segments = glob.split('/');
  let source = '';
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '**') {
      // `**/` may match nothing, so `**/x` matches `x`; a trailing `**` matches everything below.
      source += last ? '.*' : '(?:[^/]*/)*';
      return;
    }
    source += segment
      .split('')
      .map((c) => (c === '*' ? '[^/]*' : c === '?' ? '[^/]' : escape(c)))
      .join('');
    if (!last) source += '/';
  });
  return new RegExp(`^${source}$`);
}

/**
 * Whether a file below the manifests directory is excluded. `path` is relative to that directory. A glob without
 * `/` matches the file's name at any depth (as in .gitignore: `kustomization.yaml` is every kustomization in every
 * overlay); one with `/` matches the whole relative path.
 */
export function fileMatcher(globs: readonly string[]): Matcher {
  const compiled = globs.map((g) => ({ anywhere: !g.includes('/'), re: globToRegExp(g) }));
  return (path) => {
    const name = path.slice(path.lastIndexOf('/') + 1);
    return compiled.some(({ anywhere, re }) => re.test(anywhere ? name : path));
  };
}

/** Whether an image, as written in a manifest, matches one of the globs (the whole reference). */
export function imageMatcher(globs: readonly string[]): Matcher {
  const compiled = globs.map(globToRegExp);
  return (image) => compiled.some((re) => re.test(image));
}
