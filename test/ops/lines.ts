/** Text that arrives in chunks (a pipe, a child's stdout), split into lines, with waiters for the lines to come. */
export interface LineReader {
  /** Every complete line so far. */
  readonly lines: string[];
  /** Takes the next chunk; a line may span chunks. */
  readonly push: (chunk: string) => void;
  /** The first line (already seen or to come) that `match` accepts. */
  readonly line: (match: (line: string) => boolean) => Promise<string>;
}

export function lineReader(): LineReader {
  const lines: string[] = [];
  const waiters: Array<{ match: (line: string) => boolean; resolve: (line: string) => void }> = [];
  let partial = '';
  return {
    lines,
    push: (chunk) => {
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const text of parts) {
        lines.push(text);
        for (const w of waiters.filter((w) => w.match(text))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(text);
        }
      }
    },
    line: (match) =>
      new Promise((resolve) => {
        const seen = lines.find(match);
        if (seen !== undefined) resolve(seen);
        else waiters.push({ match, resolve });
      }),
  };
}
