// A typed client for the auth service: openapi-fetch over the types openapi-typescript generates
// from openapi/openapi.json (schema.ts, operations.ts: `npm run openapi`, never edited by hand).
//
//   const auth = createAuthClient({ baseUrl: 'https://auth.example.com' });
//   await auth.obtainToken({ body: { email, password } });   // keeps the tokens
//   const { user } = await auth.me();                        // sends the access token
//   await auth.refreshToken();                               // rotates with the kept refresh token
//
// Every operation is a method named by its operationId that resolves with the success body or
// throws an AuthError carrying the problem document. `auth.api` is the bare openapi-fetch client
// ({ data, error } with each operation's own error codes) for whoever prefers no exceptions.
import createClient, { type Client, type FetchResponse, type MaybeOptionalInit } from 'openapi-fetch';
import { OPERATIONS } from './operations.js';
import type { components, paths } from './schema.js';

export type { components, paths } from './schema.js';
export { OPERATIONS } from './operations.js';

export type Schemas = components['schemas'];
/** An RFC 9457 problem document, as every error answer carries. */
export type Problem = Schemas['Problem'];
/** Every error code the service can answer. */
export type ErrorCode = Problem['code'];

/** The error of a call: the HTTP status, the problem document, and the response itself. */
export class AuthError extends Error {
  readonly status: number;
  readonly code: ErrorCode;
  constructor(
    readonly problem: Problem,
    readonly response: Response,
  ) {
    super(`${problem.code}: ${problem.detail}`);
    this.name = 'AuthError';
    this.status = response.status;
    this.code = problem.code;
  }
}

type Operations = typeof OPERATIONS;
export type OperationId = keyof Operations;
type PathOf<K extends OperationId> = Operations[K]['path'];
type MethodOf<K extends OperationId> = Operations[K]['method'];
type Init<K extends OperationId> = MaybeOptionalInit<paths[PathOf<K>], MethodOf<K>>;
type OpOf<K extends OperationId> = paths[PathOf<K>][MethodOf<K>] extends infer O ? (O extends Record<string | number, any> ? O : never) : never;
type Result<K extends OperationId> = FetchResponse<OpOf<K>, Init<K>, `${string}/${string}`>;
/** The success body of an operation (undefined for 204). */
export type Data<K extends OperationId> = [NonNullable<Result<K>['data']>] extends [never] ? undefined : NonNullable<Result<K>['data']>;
/** The problem documents an operation can answer, with its own codes. */
export type ErrorOf<K extends OperationId> = NonNullable<Result<K>['error']>;
type Args<K extends OperationId> = undefined extends Init<K> ? [init?: Init<K>] : [init: Init<K>];

export type Operation<K extends OperationId> = (...args: Args<K>) => Promise<Data<K>>;

export interface Session {
  accessToken?: string;
  refreshToken?: string;
}

export interface AuthClientOptions {
  /** The service's base URL, e.g. https://auth.example.com (the document's server is relative). */
  baseUrl: string;
  /** Tokens to start with (e.g. kept from an earlier run). */
  session?: Session;
  /** The admin API key, sent on /admin operations. */
  adminKey?: string;
  /** A fetch implementation (default: the global one). */
  fetch?: (request: Request) => Promise<Response>;
  /** Called whenever the kept tokens change (after login, register, refresh, password change, revoke). */
  onSession?: (session: Session) => void;
}

type WithKeptToken = 'refreshToken' | 'revokeToken';

export type AuthClient = { [K in Exclude<OperationId, WithKeptToken>]: Operation<K> } & {
  /** Refreshes with the kept refresh token unless one is given; keeps the new tokens. */
  refreshToken(init?: Init<'refreshToken'>): Promise<Data<'refreshToken'>>;
  /** Ends the session of the kept refresh token unless one is given; forgets the tokens. */
  revokeToken(init?: Init<'revokeToken'>): Promise<Data<'revokeToken'>>;
  /** The bare openapi-fetch client, with the same bearer handling. */
  readonly api: Client<paths>;
  /** The tokens kept from the last login, register, refresh or password change. */
  readonly session: Readonly<Session>;
  setSession(session: Session): void;
};

export function createAuthClient(options: AuthClientOptions): AuthClient {
  let session: Session = { ...options.session };
  const setSession = (next: Session) => {
    session = next;
    options.onSession?.(session);
  };
  const api = createClient<paths>({ baseUrl: options.baseUrl, ...(options.fetch ? { fetch: options.fetch } : {}) });

  // Bearer handling: the access token on the operations that require it, the admin key on the
  // admin API, never on public operations (a token is not sent where it is not needed).
  const securityOf = new Map<string, readonly string[]>(Object.values(OPERATIONS).map((op) => [`${op.method.toUpperCase()} ${op.path}`, op.security]));
  api.use({
    onRequest({ request, schemaPath }) {
      if (request.headers.has('authorization')) return request;
      const security = securityOf.get(`${request.method} ${schemaPath}`) ?? [];
      const credential = security.includes('bearerAuth') ? session.accessToken : security.includes('adminApiKey') ? options.adminKey : undefined;
      if (credential) request.headers.set('authorization', `Bearer ${credential}`);
      return request;
    },
  });

  const call = async (id: OperationId, init: unknown): Promise<unknown> => {
    const op = OPERATIONS[id];
    // The operation table is generated from the same document as the types: the pair is sound.
    const request = api.request as (method: string, path: string, init?: unknown) => Promise<{ data?: unknown; error?: unknown; response: Response }>;
    const { data, error, response } = await request(op.method, op.path, init);
    if (!response.ok) throw new AuthError(asProblem(error, response), response);
    keepTokens(id, data);
    return data;
  };

  const keepTokens = (id: OperationId, data: unknown) => {
    if (id === 'revokeToken') return setSession({});
    if (!data || typeof data !== 'object' || !('token' in data) || typeof data.token !== 'string') return;
    const refreshToken = 'refreshToken' in data && typeof data.refreshToken === 'string' ? data.refreshToken : undefined;
    setSession({ accessToken: data.token, ...(refreshToken ? { refreshToken } : {}) });
  };

  const methods: Record<string, (init?: unknown) => Promise<unknown>> = {};
  for (const id of Object.keys(OPERATIONS) as OperationId[]) methods[id] = (init) => call(id, init);
  // refresh and revoke default to the kept refresh token.
  for (const id of ['refreshToken', 'revokeToken'] as const) {
    methods[id] = (init) => call(id, init ?? { body: { refreshToken: session.refreshToken ?? '' } });
  }

  const client = {
    ...methods,
    api,
    get session() {
      return session;
    },
    setSession,
  };
  return client as unknown as AuthClient;
}

/** The problem document of an error answer; a made-up one when a proxy answered something else. */
function asProblem(error: unknown, response: Response): Problem {
  if (error && typeof error === 'object' && 'code' in error && 'status' in error) return error as Problem;
  return {
    type: 'about:blank',
    title: response.statusText || 'Error',
    status: response.status,
    detail: typeof error === 'string' && error ? error.slice(0, 500) : `HTTP ${response.status}`,
    code: response.status >= 500 ? (response.status === 503 ? 'service_unavailable' : 'internal_error') : 'validation_failed',
    requestId: response.headers.get('x-request-id') ?? '',
  };
}
