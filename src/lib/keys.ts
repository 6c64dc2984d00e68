// Access-token signing keys as material: generating, parsing and describing them, and the key
// ring that signs with the current key and verifies with any published one. Where the keys live
// (JWT_PRIVATE_KEY, or the database) is services/signing-keys.ts's business.
// A key's `kid` is the RFC 7638 thumbprint of its public key, so it changes exactly when the key
// does, and the `kid` of a token's header picks the one key that may verify it.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createSigner, createVerifier } from 'fast-jwt';
import type { Config, JwtAlgorithm } from '../config.js';

export type AsymmetricAlgorithm = Exclude<JwtAlgorithm, 'HS256'>;

export interface Jwk {
  kty: string;
  kid: string;
  alg: string;
  use: 'sig';
  [member: string]: string;
}

/** One key the ring can verify with (and, when it is the current key, sign with). */
export interface RingKey {
  kid: string | undefined; // undefined only under HS256, whose tokens carry no kid
  sign(payload: object): string;
  verify(token: string): Record<string, unknown>;
  /** The public JWK; none under HS256, whose key is a secret. */
  jwk: Jwk | undefined;
}

/** What the ring holds at one moment; replaced as a whole when the keys change. */
export interface KeySet {
  current: RingKey;
  /** Every key that may verify: current, next, and retired keys still published. */
  byKid: Map<string | undefined, RingKey>;
  /** current, next, then retired keys, newest first. */
  jwks: { keys: Jwk[] };
}

export interface KeyRing {
  algorithm: JwtAlgorithm;
  /** The key set now (a consistent snapshot). */
  keys(): KeySet;
  /**
   * Called on a token whose kid is unknown: another instance may have rotated. Reloads the keys
   * from their source (at most once a second) and resolves when done; a no-op for static keys.
   */
  reloadForUnknownKid(): Promise<void>;
  /** Reloads the keys now (after a rotation on this instance, and periodically). */
  reload(): Promise<void>;
  /** The server-side secret of refresh-token derivation, independent of every signing key. */
  hmacKey: Buffer;
  close(): void;
}

type JwtConfig = Config['jwt'];

/**
 * A ring key from a public key PEM (asymmetric), and its private key PEM when it may sign (the
 * current key); a key without one throws if asked to sign, which the ring never does.
 */
export function asymmetricKey(algorithm: AsymmetricAlgorithm, keys: { privatePem?: string; publicPem?: string }, config: JwtConfig): RingKey {
  const privateKey = keys.privatePem ? createPrivateKey(keys.privatePem) : undefined;
  if (privateKey) checkKeyType(algorithm, privateKey);
  const publicKey = keys.publicPem ? createPublicKey(keys.publicPem) : createPublicKey(privateKey!);
  checkKeyType(algorithm, publicKey);
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  const kid = thumbprint(jwk);
  const pem = privateKey?.export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    kid,
    sign: pem
      ? createSigner({ key: pem, algorithm, kid })
      : () => {
          throw new Error(`signing key ${kid}: the private key is not loaded`);
        },
    verify: createVerifier(verifierOptions(algorithm, publicKey.export({ type: 'spki', format: 'pem' }).toString(), config)),
    jwk: { ...publicJwk(jwk), kid, alg: algorithm, use: 'sig' } as Jwk,
  };
}

export function hmacRingKey(secret: string, config: JwtConfig): RingKey {
  return {
    kid: undefined,
    sign: createSigner({ key: secret, algorithm: 'HS256' }),
    verify: createVerifier(verifierOptions('HS256', secret, config)),
    jwk: undefined,
  };
}

// The algorithm is pinned on both sides: `alg: none` and HS256-signed-with-the-public-key are
// refused by the verifier itself.
function verifierOptions(algorithm: JwtAlgorithm, key: string, config: JwtConfig) {
  return {
    key,
    algorithms: [algorithm],
    // `exp` is enforced by lib/jwt.ts against the service clock (tests move it), and required there.
    ignoreExpiration: true,
    ...(config.issuer ? { allowedIss: config.issuer } : {}),
    ...(config.audience ? { allowedAud: config.audience } : {}),
  };
}

/** A key set over ring keys, the first one current. */
export function keySet(current: RingKey, others: RingKey[]): KeySet {
  const all = [current, ...others];
  return {
    current,
    byKid: new Map(all.map((k) => [k.kid, k])),
    jwks: { keys: all.flatMap((k) => (k.jwk ? [k.jwk] : [])) },
  };
}

/** Every PEM block of a text (JWT_PRIVATE_KEY may hold several, one after the other). */
export function splitPems(text: string): string[] {
  return text.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? [];
}

export function generatePrivateKeyPem(algorithm: AsymmetricAlgorithm): string {
  const { privateKey } =
    algorithm === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : algorithm === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** The kid and SPKI PEM of a private key PEM, checked against the algorithm. */
export function describePrivateKey(algorithm: AsymmetricAlgorithm, privatePem: string): { kid: string; publicPem: string } {
  const privateKey = createPrivateKey(privatePem);
  checkKeyType(algorithm, privateKey);
  const publicKey = createPublicKey(privateKey);
  return { kid: thumbprint(publicKey.export({ format: 'jwk' }) as Record<string, string>), publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

function checkKeyType(algorithm: JwtAlgorithm, key: KeyObject): void {
  const expected = { EdDSA: 'ed25519', ES256: 'ec', RS256: 'rsa', HS256: '' }[algorithm];
  if (key.asymmetricKeyType !== expected) {
    throw new Error(`JWT_PRIVATE_KEY: ${algorithm} needs an ${expected} key, got ${key.asymmetricKeyType}`);
  }
}

// Only the public members: a JWK export of a public key has none other, but say so explicitly.
function publicJwk(jwk: Record<string, string>): Record<string, string> {
  const { kty, crv, x, y, n, e } = jwk;
  return Object.fromEntries(Object.entries({ kty, crv, x, y, n, e }).filter(([, v]) => v !== undefined)) as Record<string, string>;
}

// RFC 7638: SHA-256 over the required members in lexicographic order.
function thumbprint(jwk: Record<string, string>): string {
  const required: Record<string, string[]> = { OKP: ['crv', 'kty', 'x'], EC: ['crv', 'kty', 'x', 'y'], RSA: ['e', 'kty', 'n'] };
  const members = Object.fromEntries(required[jwk.kty].map((k) => [k, jwk[k]]));
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}
