/**
 * Parsers for the two HTTP headers the registry flow depends on: `WWW-Authenticate` (RFC 9110 11.6.1, challenges
 * with quoted parameters that may hold commas, e.g. `scope="repository:a:pull,push"`) and `Link` (RFC 8288,
 * the tags list's `rel="next"` pagination). Pure functions, no I/O.
 */

export interface Challenge {
  /** Lower-cased: `bearer`, `basic`. */
  readonly scheme: string;
  /** Parameter names lower-cased; values unquoted. */
  readonly params: Readonly<Record<string, string>>;
  /** The `token68` form (`Negotiate abc==`), when a challenge uses it instead of parameters. */
  readonly token68?: string | undefined;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

/** A small cursor over a header value. */
class Cursor {
  pos = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string {
    return this.text[this.pos] ?? '';
  }

  skipSpaces(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos += 1;
  }

  /** Skips spaces and list separators. */
  skipSeparators(): void {
    while (this.peek() === ' ' || this.peek() === '\t' || this.peek() === ',') this.pos += 1;
  }

  read(re: RegExp): string {
    const start = this.pos;
    while (!this.done && re.test(this.peek())) this.pos += 1;
    return this.text.slice(start, this.pos);
  }

  /** A quoted-string at the cursor (which is on its opening quote), with backslash escapes undone. */
  readQuoted(): string | undefined {
    if (this.peek() !== '"') return undefined;
    let value = '';
    for (let i = this.pos + 1; i < this.text.length; i += 1) {
      const c = this.text[i]!;
      if (c === '\\' && i + 1 < this.text.length) {
        i += 1;
        value += this.text[i]!;
      } else if (c === '"') {
        this.pos = i + 1;
        return value;
      } else {
        value += c;
      }
    }
    return undefined; // unterminated
  }

  /** Whether the cursor is at the end of a list element (end, or a comma after optional spaces). */
  atElementEnd(): boolean {
    const save = this.pos;
    this.skipSpaces();
    const end = this.done || this.peek() === ',';
    this.pos = save;
    return end;
  }

  /** Skips to just after the next comma outside quotes (error recovery). */
  skipElement(): void {
    while (!this.done && this.peek() !== ',') {
      if (this.peek() === '"') {
        if (this.readQuoted() === undefined) this.pos = this.text.length;
      } else {
        this.pos += 1;
      }
    }
  }
}

/** `name = value` at the cursor (value a token or a quoted-string); the cursor is left after it, or unchanged. */
function readParam(c: Cursor): [string, string] | undefined {
  const save = c.pos;
  const name = c.read(TCHAR);
  c.skipSpaces();
  if (name === '' || c.peek() !== '=') {
    c.pos = save;
    return undefined;
  }
  c.pos += 1;
  c.skipSpaces();
  const value = c.peek() === '"' ? c.readQuoted() : c.read(TCHAR);
  if (value === undefined || !c.atElementEnd()) {
    c.pos = save;
    return undefined;
  }
  return [name.toLowerCase(), value];
}

/** Whether a new challenge (`scheme` followed by space and not `=`, or by a comma or the end) starts at the cursor. */
function startsChallenge(c: Cursor): boolean {
  const save = c.pos;
  const scheme = c.read(TCHAR);
  const spaced = c.peek() === ' ' || c.peek() === '\t';
  c.skipSpaces();
  const result = scheme !== '' && (c.done || c.peek() === ',' || (spaced && c.peek() !== '='));
  c.pos = save;
  return result;
}

/**
 * Parses a `WWW-Authenticate` value into its challenges (several may share one header, and `Headers.get` joins
 * repeated headers with ", "). Lenient: a malformed element is skipped, not fatal.
 */
export function parseWwwAuthenticate(header: string): Challenge[] {
  const c = new Cursor(header);
  const challenges: Challenge[] = [];
  c.skipSeparators();
  while (!c.done) {
    const scheme = c.read(TCHAR);
    if (scheme === '') {
      c.skipElement();
      c.skipSeparators();
      continue;
    }
    const params: Record<string, string> = {};
    let token68: string | undefined;
    c.skipSpaces();
    // token68 form: `Scheme abc==` alone in its list element.
    const save = c.pos;
    const candidate = c.read(TOKEN68_CHAR) + c.read(/=/);
    if (candidate !== '' && c.atElementEnd()) {
      token68 = candidate;
    } else {
      c.pos = save;
    }
    while (token68 === undefined && !c.done) {
      c.skipSeparators();
      if (c.done || startsChallenge(c)) break;
      const param = readParam(c);
      if (param === undefined) {
        c.skipElement();
        continue;
      }
      // The first occurrence wins; a registry should not repeat a parameter.
      if (!(param[0] in params)) params[param[0]] = param[1];
    }
    challenges.push({ scheme: scheme.toLowerCase(), params, ...(token68 === undefined ? {} : { token68 }) });
    c.skipSeparators();
  }
  return challenges;
}

export interface LinkValue {
  /** The target as written (may be relative). */
  readonly target: string;
  /** Lower-cased relation types (`rel="next prev"` gives two). */
  readonly rel: readonly string[];
  readonly params: Readonly<Record<string, string>>;
}

/** Parses a `Link` header: `<target>; rel="next"; ...`, comma-separated. Lenient like the challenge parser. */
export function parseLinkHeader(header: string): LinkValue[] {
  const c = new Cursor(header);
  const links: LinkValue[] = [];
  c.skipSeparators();
  while (!c.done) {
    if (c.peek() !== '<') {
      c.skipElement();
      c.skipSeparators();
      continue;
    }
    const close = header.indexOf('>', c.pos);
    if (close === -1) break;
    const target = header.slice(c.pos + 1, close).trim();
    c.pos = close + 1;
    const params: Record<string, string> = {};
    for (;;) {
      c.skipSpaces();
      if (c.peek() !== ';') break;
      c.pos += 1;
      c.skipSpaces();
      const name = c.read(TCHAR).toLowerCase();
      c.skipSpaces();
      let value = '';
      if (c.peek() === '=') {
        c.pos += 1;
        c.skipSpaces();
        value = (c.peek() === '"' ? c.readQuoted() : c.read(/[^;,\s]/)) ?? '';
      }
      if (name !== '' && !(name in params)) params[name] = value;
    }
    const rel = (params['rel'] ?? '').toLowerCase().split(/\s+/).filter((r) => r !== '');
    links.push({ target, rel, params });
    c.skipElement();
    c.skipSeparators();
  }
  return links;
}

/** The `rel="next"` target of a `Link` header, resolved against the URL of the response that carried it. */
export function nextLink(header: string | null, base: URL | string): URL | undefined {
  if (header === null || header === '') return undefined;
  const next = parseLinkHeader(header).find((l) => l.rel.includes('next'));
  if (next === undefined) return undefined;
  try {
    return new URL(next.target, base);
  } catch {
    return undefined;
  }
}
