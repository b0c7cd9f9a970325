import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small token server for the registry's bearer flow (the Docker "token authentication specification"):
 * `GET /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]` with optional basic credentials answers
 * `{ token, access_token, expires_in, issued_at }`. The token is a JWT signed RS256 with a key whose self-signed
 * certificate is the registry's `rootcertbundle`; distribution 2.8 finds the signing key through the `x5c` header.
 *
 * - good credentials: every requested action on every requested repository is granted;
 * - no credentials: an anonymous token with no access (the registry then answers 401 insufficient_scope,
 *   as Docker Hub does for a private repository);
 * - wrong credentials: 401.
 *
 * `GET /stats` answers `{ total, byScope: { "repository:NAME:pull": n, ... }, byAccount: { user: n } }`: how many
 * tokens were issued, so tests can check that a client reuses its token (use a repository name of your own).
 */
export interface TokenServerOptions {
  /** The registry's `auth.token.service` (the JWT audience). */
  service: string;
  /** The registry's `auth.token.issuer`. */
  issuer: string;
  users: Readonly<Record<string, string>>;
  keyPem: string;
  certPem: string;
  /** Lifetime of the tokens (`expires_in` and the JWT `exp`). */
  expiresInSeconds: number;
}

export interface TokenServer {
  /** http://127.0.0.1:PORT/token */
  realm: string;
  /** http://127.0.0.1:PORT/stats */
  statsUrl: string;
  stop(): Promise<void>;
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

/** `repository:foo/bar:pull,push` (the name may itself hold a `:port`-less path; actions are after the last `:`). */
function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last <= first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(',').filter((a) => a !== ''),
  };
}

function basicCredentials(req: IncomingMessage): { username: string; password: string } | undefined {
  const header = req.headers.authorization;
  if (header === undefined || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function signJwt(claims: Record<string, unknown>, key: KeyObject, certDer: Buffer): string {
  const header = { typ: 'JWT', alg: 'RS256', x5c: [certDer.toString('base64')] };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign('sha256', Buffer.from(input), key))}`;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  const key = createPrivateKey(options.keyPem);
  const certDer = new X509Certificate(options.certPem).raw;
  const byScope = new Map<string, number>();
  const byAccount = new Map<string, number>();
  let total = 0;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    if (req.method === 'GET' && url.pathname === '/stats') {
      json(res, 200, { total, byScope: Object.fromEntries(byScope), byAccount: Object.fromEntries(byAccount) });
      return;
    }
    if (req.method !== 'GET' || url.pathname !== '/token') {
      json(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });
      return;
    }
    const service = url.searchParams.get('service');
    if (service !== options.service) {
      json(res, 400, { errors: [{ code: 'INVALID_SERVICE', message: `unknown service ${String(service)}` }] });
      return;
    }
    const credentials = basicCredentials(req);
    if (credentials !== undefined && options.users[credentials.username] !== credentials.password) {
      json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }, { 'www-authenticate': 'Basic realm="token"' });
      return;
    }
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
    const access: Access[] = [];
    for (const scope of scopes) {
      const parsed = parseScope(scope);
      if (parsed === undefined) {
        json(res, 400, { errors: [{ code: 'INVALID_SCOPE', message: `bad scope ${scope}` }] });
        return;
      }
      if (credentials !== undefined) access.push(parsed);
      byScope.set(scope, (byScope.get(scope) ?? 0) + 1);
    }
    const account = credentials?.username ?? '';
    byAccount.set(account, (byAccount.get(account) ?? 0) + 1);
    total += 1;

    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(
      {
        iss: options.issuer,
        sub: account,
        aud: options.service,
        // A little leeway for clock steps between this process and the registry.
        nbf: now - 10,
        iat: now,
        exp: now + options.expiresInSeconds,
        jti: randomUUID(),
        access,
      },
      key,
      certDer,
    );
    json(res, 200, {
      token,
      access_token: token,
      expires_in: options.expiresInSeconds,
      issued_at: new Date(now * 1000).toISOString(),
    });
  };

  const server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      json(res, 500, { errors: [{ code: 'INTERNAL', message: (err as Error).message }] });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    statsUrl: `http://127.0.0.1:${port}/stats`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
