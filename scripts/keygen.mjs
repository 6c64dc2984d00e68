// Prints a new signing key for JWT_PRIVATE_KEY, as PKCS#8 PEM: Ed25519 (EdDSA, the default),
// or P-256 (ES256) / RSA 3072 (RS256) when asked: `npm run -s keygen`, `npm run -s keygen -- ES256`.
// Plain JavaScript on node:crypto, so it runs anywhere the service runs, the container included
// (`docker run --rm authservice node scripts/keygen.mjs`). The public key is derived from the
// private one by the service (and published in its JWKS): only the private key needs keeping.
import { generateKeyPairSync } from 'node:crypto';

const algorithm = (process.argv[2] ?? 'EdDSA').toUpperCase();
const pem = { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } };
let pair;
if (algorithm === 'EDDSA') pair = generateKeyPairSync('ed25519', pem);
else if (algorithm === 'ES256') pair = generateKeyPairSync('ec', { namedCurve: 'P-256', ...pem });
else if (algorithm === 'RS256') pair = generateKeyPairSync('rsa', { modulusLength: 3072, ...pem });
else {
  console.error(`keygen: unknown algorithm "${process.argv[2]}"; use EdDSA (default), ES256 or RS256`);
  process.exit(1);
}
process.stdout.write(pair.privateKey);
