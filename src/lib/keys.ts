// The access-token signing key: from JWT_PRIVATE_KEY (PEM), or, outside production, generated
// once and kept in DATA_DIR so tokens survive a restart. Its `kid` is the RFC 7638 thumbprint of
// the public key, so it changes exactly when the key does.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config, JwtAlgorithm } from '../config.js';

export interface Jwk {
  kty: string;
  kid: string;
  alg: string;
  use: 'sig';
  [member: string]: string;
}

export interface SigningKeys {
  algorithm: JwtAlgorithm;
  /** PEM (asymmetric) or the shared secret (HS256), as @fastify/jwt takes them. */
  signKey: string;
  verifyKey: string;
  kid: string | undefined;
  /** The public JWK Set; empty under HS256, whose key is a secret. */
  jwks: { keys: Jwk[] };
  /** A server-side secret derived from the signing key, for HMACs that must not be forgeable. */
  hmacKey: Buffer;
}

export function loadSigningKeys(config: Config['jwt'], dataDir: string): SigningKeys {
  const { algorithm } = config;
  if (algorithm === 'HS256') {
    const secret = config.secret!;
    return { algorithm, signKey: secret, verifyKey: secret, kid: undefined, jwks: { keys: [] }, hmacKey: deriveHmacKey(secret) };
  }
  const privateKey = createPrivateKey(config.privateKey ?? developmentKey(algorithm, dataDir));
  checkKeyType(algorithm, privateKey);
  const publicKey = config.publicKey ? createPublicKey(config.publicKey) : createPublicKey(privateKey);
  const jwk = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  const kid = thumbprint(jwk);
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    algorithm,
    signKey: privatePem,
    verifyKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    kid,
    jwks: { keys: [{ ...publicJwk(jwk), kid, alg: algorithm, use: 'sig' } as Jwk] },
    hmacKey: deriveHmacKey(privatePem),
  };
}

function developmentKey(algorithm: Exclude<JwtAlgorithm, 'HS256'>, dataDir: string): string {
  const file = join(dataDir, `jwt-${algorithm.toLowerCase()}.pem`);
  if (existsSync(file)) return readFileSync(file, 'utf8');
  const { privateKey } =
    algorithm === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : algorithm === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, pem, { mode: 0o600 });
  return pem;
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

function deriveHmacKey(material: string): Buffer {
  return createHash('sha256').update('authservice refresh-token derivation\0').update(material).digest();
}
