// The limits the service is measured against, in one bare Fastify process started by
// scripts/bench.mjs: the crypto each endpoint cannot avoid, and nothing else.
//   GET  /jwt             verify an EdDSA bearer token (fast-jwt, the verifier the service uses)
//   POST /argon2/verify   argon2id verify of the body's password against one hash (the login ceiling)
//   POST /argon2/hash     argon2id hash of the body's password (the register ceiling)
// Same argon2 cost and libuv pool size as the service. Listens on 127.0.0.1, port 0; prints the port.
import { createPublicKey } from 'node:crypto';
import argon2 from 'argon2';
import { createVerifier } from 'fast-jwt';
import Fastify from 'fastify';

const cost = {
  type: argon2.argon2id,
  memoryCost: Number(process.env.ARGON2_MEMORY_KIB ?? 19456),
  timeCost: Number(process.env.ARGON2_ITERATIONS ?? 2),
  parallelism: Number(process.env.ARGON2_PARALLELISM ?? 1),
};
const publicKey = createPublicKey(process.env.JWT_PRIVATE_KEY.replace(/\\n/g, '\n')).export({ type: 'spki', format: 'pem' });
const verify = createVerifier({ key: publicKey, algorithms: ['EdDSA'] });
const hash = await argon2.hash('correct horse battery staple', cost);

const app = Fastify({ logger: false });
app.get('/jwt', async (request) => {
  const claims = verify(request.headers.authorization.slice(7));
  return { sub: claims.sub };
});
app.post('/argon2/verify', async (request) => ({ ok: await argon2.verify(hash, request.body.password) }));
app.post('/argon2/hash', async (request) => ({ hash: await argon2.hash(request.body.password1, cost) }));
await app.listen({ host: '127.0.0.1', port: 0 });
console.log(`port ${app.server.address().port}`);
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
