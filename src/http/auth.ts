import { createHash, timingSafeEqual } from 'node:crypto';
import type { TokenScope } from '../config/load.js';
import { LEGACY_TOKEN_NAME } from '../config/load.js';
import { ALL_ACTIONS, type Action } from '../config/schema.js';
import { AuthError, NotFoundError } from '../errors.js';
import { nearest } from './suggest.js';

/** Who is calling, after authentication: a configured token, or "anonymous" with every right (insecureNoAuth). */
export interface Principal {
  readonly token: string;
  readonly services: readonly string[];
  readonly actions: readonly Action[];
}

export const ANONYMOUS = 'anonymous';
export const REALM = 'deployer';

export interface AuthOptions {
  readonly tokens: Readonly<Record<string, TokenScope>>;
  readonly insecureNoAuth: boolean;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Hashing first gives both sides the same length, so timingSafeEqual neither throws nor leaks the length. */
const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
const sameSecret = (given: Buffer, expected: string): boolean => timingSafeEqual(given, digest(expected));

/** Splits a `Basic` Authorization header into user and password; 401 if it is missing or malformed. */
export function parseBasicAuth(header: string | undefined): { user: string; password: string } {
  if (header === undefined || header.trim() === '') throw new AuthError(401, 'authentication required');
  const match = /^Basic +(\S+) *$/i.exec(header);
  const encoded = match?.[1];
  if (encoded === undefined || encoded.length % 4 !== 0 || !BASE64.test(encoded)) {
    throw new AuthError(401, 'the Authorization header is not valid basic authentication');
  }
  let decoded: string;
  try {
    decoded = utf8.decode(Buffer.from(encoded, 'base64'));
  } catch {
    throw new AuthError(401, 'the Authorization header is not valid basic authentication');
  }
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new AuthError(401, 'the Authorization header is not valid basic authentication');
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Authenticates a request by its Authorization header (HTTP basic: user = token name, password = its secret).
 * As in the original deployer, the user `auth_token` works with any token's secret; the caller is then that token.
 * Every secret comparison is constant-time; which check failed is not told (401 either way).
 */
export function authenticate(header: string | undefined, options: AuthOptions): Principal {
  if (options.insecureNoAuth) return { token: ANONYMOUS, services: ['*'], actions: ALL_ACTIONS };
  const { user, password } = parseBasicAuth(header);
  const given = digest(password);
  const entries = Object.entries(options.tokens);
  let match: string | undefined;
  if (user === LEGACY_TOKEN_NAME) {
    // Compare with every secret, not stopping at the first match, so the time does not tell which token matched.
    // The legacy token itself wins over another token that happens to share its secret.
    for (const [name, scope] of entries) {
      if (sameSecret(given, scope.secret.reveal()) && (match === undefined || name === LEGACY_TOKEN_NAME)) match = name;
    }
  } else {
    // Own properties only: "constructor" or "__proto__" is no token.
    const scope = Object.hasOwn(options.tokens, user) ? options.tokens[user] : undefined;
    // An unknown user still costs one comparison, so response time does not tell token names apart.
    const ok = sameSecret(given, scope === undefined ? '' : scope.secret.reveal());
    if (scope !== undefined && ok) match = user;
  }
  const scope = match === undefined ? undefined : options.tokens[match];
  if (match === undefined || scope === undefined) throw new AuthError(401, 'unknown token or wrong secret');
  return { token: match, services: scope.services, actions: scope.actions };
}

export function mayAccess(principal: Principal, action: Action, service: string): boolean {
  return (
    principal.actions.includes(action) && (principal.services.includes('*') || principal.services.includes(service))
  );
}

/** 403 naming the missing scope (never a secret) unless the principal may do `action` on `service`. */
export function authorize(principal: Principal, action: Action, service: string): void {
  if (mayAccess(principal, action, service)) return;
  throw new AuthError(403, `token "${principal.token}" may not ${action} service "${service}"`, {
    detail: { token: principal.token, action, service },
  });
}

/**
 * `authorize` for a service named in the URL, then 404 if it is not configured. A mistyped name gets a suggestion,
 * only among the configured services the token may read, so that neither answer tells a token about services
 * outside its scope: the suggestion is the same whether the name exists or not.
 */
export function authorizeService(
  principal: Principal,
  action: Action,
  name: string,
  services: Readonly<Record<string, unknown>>,
): void {
  const readable = Object.keys(services).filter((s) => mayAccess(principal, 'read', s));
  // A name the token may read is no typo, even with another service near it.
  const near = readable.includes(name) ? undefined : nearest(name, readable);
  const hint = near === undefined ? '' : ` (did you mean ${near}?)`;
  const suggestion = near === undefined ? {} : { didYouMean: near };
  if (!mayAccess(principal, action, name)) {
    throw new AuthError(403, `token "${principal.token}" may not ${action} service "${name}"${hint}`, {
      detail: { token: principal.token, action, service: name, ...suggestion },
    });
  }
  // Own properties only: "constructor" is no service.
  if (!Object.hasOwn(services, name)) {
    throw new NotFoundError(`service "${name}" is not configured${hint}`, { detail: { service: name, ...suggestion } });
  }
}
