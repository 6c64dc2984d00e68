// Where the signing keys live, and their rotation without logging anyone out.
// - JWT_ALGORITHM=HS256: the one JWT_SECRET (a shared secret cannot be published, so no rotation).
// - JWT_PRIVATE_KEY set: static keys, one PEM or several: the first signs, the others are
//   published and verify (the operator rotates by editing the list; no command can).
// - otherwise: keys in the database (signing_keys), private halves sealed with the KEK. Every
//   instance reads the same rows, so one `keys:rotate` (or POST /admin/keys/rotate) rotates them
//   all. Life of a key: created as `next` (published in the JWKS, signs nothing), promoted to
//   `current` (signs) by a rotation, then `retired` (still published and verifying) until every
//   token it may have signed has expired.
// Invariants:
// - a rotation promotes only a key that has been published for at least the JWKS cache lifetime
//   (JWKS_MAX_AGE), so a resource server with a cached JWKS already knows it (unless forced);
// - a retired key stays published for JWT_EXPIRATION_DELTA + the reload interval + a skew margin
//   after its retirement: an instance that has not reloaded yet may sign with it for one interval;
// - an instance that sees a kid it does not know reloads (at most once a second), so a token
//   signed by a key that another instance has just promoted is never refused;
// - the refresh-token HMAC secret (service_secrets) is not derived from any signing key.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { and, desc, eq, gt, inArray, or, sql } from 'drizzle-orm';
import type { Config } from '../config.js';
import type { Db, Tx } from '../db/index.js';
import { type SigningKeyStatus, serviceSecrets, signingKeys } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { Clock } from '../lib/clock.js';
import { type Kek, loadKek } from '../lib/kek.js';
import {
  type AsymmetricAlgorithm,
  asymmetricKey,
  describePrivateKey,
  generatePrivateKeyPem,
  hmacRingKey,
  type KeyRing,
  type KeySet,
  keySet,
  type RingKey,
  splitPems,
} from '../lib/keys.js';

/** The JWKS's Cache-Control max-age, in seconds: how long a resource server may hold a stale key set. */
export const JWKS_MAX_AGE = 300;
const CLOCK_SKEW = 60; // seconds
const KEYS_LOCK = 727_465_002; // advisory lock of key creation and rotation, shared by all instances
const REFRESH_SECRET = 'refresh_token_hmac';

export interface KeyDeps {
  db: Db;
  config: Readonly<Config>;
  now: Clock;
}

export type KeySource = 'secret' | 'environment' | 'database';

export function keySource(config: Readonly<Config>): KeySource {
  if (config.jwt.algorithm === 'HS256') return 'secret';
  return config.jwt.privateKey ? 'environment' : 'database';
}

/** Seconds a retired key stays published after its retirement. */
export const retiredWindow = (config: Readonly<Config>) => config.jwt.expiresIn + config.jwt.keysReloadInterval + CLOCK_SKEW;

/** The KEK, when there is one: KEY_ENCRYPTION_KEY, or outside production a generated one. */
function kekOf(config: Readonly<Config>): Kek | undefined {
  if (config.jwt.keyEncryptionKey || config.nodeEnv !== 'production') return loadKek(config.jwt.keyEncryptionKey, config.dataDir);
  return undefined; // production with static keys and no KEK: config.ts allows it
}

/** Opens the key ring of this instance; with keys in the database, creates them on first start. */
export async function openKeyRing(deps: KeyDeps, onError: (err: unknown) => void = () => {}): Promise<KeyRing> {
  const { config } = deps;
  const kek = kekOf(config);
  const hmacKey = await loadRefreshSecret(deps.db, kek);
  const source = keySource(config);
  if (source !== 'database') {
    const set = source === 'secret' ? keySet(hmacRingKey(config.jwt.secret!, config.jwt), []) : environmentKeys(config);
    return { algorithm: config.jwt.algorithm, keys: () => set, reload: async () => {}, reloadForUnknownKid: async () => {}, hmacKey, close() {} };
  }

  await ensureKeys(deps, kek!);
  const cache = new Map<string, RingKey>();
  let set = await loadDatabaseKeys(deps, kek!, cache);
  let inFlight: Promise<void> | undefined;
  let lastReload = Date.now();
  const reload = (): Promise<void> =>
    (inFlight ??= loadDatabaseKeys(deps, kek!, cache)
      .then((next) => void (set = next))
      .finally(() => {
        lastReload = Date.now();
        inFlight = undefined;
      }));
  const timer = setInterval(() => reload().catch(onError), config.jwt.keysReloadInterval * 1000).unref();
  return {
    algorithm: config.jwt.algorithm,
    keys: () => set,
    reload,
    async reloadForUnknownKid() {
      // Bounded: a flood of made-up kids costs one query a second, not one per request.
      if (!inFlight && Date.now() - lastReload < 1_000) return;
      await reload().catch(onError);
    },
    hmacKey,
    close: () => clearInterval(timer),
  };
}

function environmentKeys(config: Readonly<Config>): KeySet {
  const algorithm = config.jwt.algorithm as AsymmetricAlgorithm;
  const pems = splitPems(config.jwt.privateKey!);
  if (pems.length === 0) throw new Error('JWT_PRIVATE_KEY: no PEM block found');
  // JWT_PUBLIC_KEY, when given, is the public half of the first (signing) key.
  const [current, ...others] = pems.map((privatePem, i) =>
    asymmetricKey(algorithm, { privatePem, publicPem: i === 0 ? config.jwt.publicKey : undefined }, config.jwt),
  );
  return keySet(current, others);
}

// --- Keys in the database -----------------------------------------------------------------------

type KeyRow = typeof signingKeys.$inferSelect;

async function withKeysLock<T>(db: Db, work: (tx: Tx) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${KEYS_LOCK})`);
    return work(tx);
  });
}

async function insertKey(tx: Tx, deps: KeyDeps, kek: Kek, status: SigningKeyStatus, privatePem?: string): Promise<void> {
  const algorithm = deps.config.jwt.algorithm as AsymmetricAlgorithm;
  const pem = privatePem ?? generatePrivateKeyPem(algorithm);
  const { kid, publicPem } = describePrivateKey(algorithm, pem);
  const now = deps.now();
  await tx
    .insert(signingKeys)
    .values({ kid, algorithm, status, publicKey: publicPem, privateKey: kek.seal(pem, `signing_keys:${kid}`), createdAt: now, activatedAt: status === 'current' ? now : null })
    .onConflictDoNothing();
}

/** A current and a next key of the configured algorithm exist (created under a lock, so once). */
async function ensureKeys(deps: KeyDeps, kek: Kek): Promise<void> {
  const { algorithm } = deps.config.jwt;
  const statuses = async (tx: Tx) =>
    (await tx.select({ status: signingKeys.status }).from(signingKeys).where(and(eq(signingKeys.algorithm, algorithm), inArray(signingKeys.status, ['current', 'next'])))).map((r) => r.status);
  // Checked without the lock first: every start after the first needs no write.
  if ((await statuses(deps.db as unknown as Tx)).length === 2) return;
  await withKeysLock(deps.db, async (tx) => {
    const have = await statuses(tx);
    if (!have.includes('current')) await insertKey(tx, deps, kek, 'current', legacyDevelopmentKey(deps.config));
    if (!have.includes('next')) await insertKey(tx, deps, kek, 'next');
  });
}

// Before keys lived in the database, a development key was generated in DATA_DIR: keep using it
// as the first current key, so that an upgrade logs nobody out.
function legacyDevelopmentKey(config: Readonly<Config>): string | undefined {
  const file = join(config.dataDir, `jwt-${config.jwt.algorithm.toLowerCase()}.pem`);
  return config.nodeEnv !== 'production' && existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

async function publishedKeyRows(deps: KeyDeps): Promise<KeyRow[]> {
  const since = new Date(deps.now().getTime() - retiredWindow(deps.config) * 1000);
  return deps.db
    .select()
    .from(signingKeys)
    .where(
      and(
        eq(signingKeys.algorithm, deps.config.jwt.algorithm),
        or(inArray(signingKeys.status, ['current', 'next']), gt(signingKeys.retiredAt, since)),
      ),
    )
    .orderBy(desc(signingKeys.createdAt));
}

async function loadDatabaseKeys(deps: KeyDeps, kek: Kek, cache: Map<string, RingKey>): Promise<KeySet> {
  const rows = await publishedKeyRows(deps);
  const order: Record<SigningKeyStatus, number> = { current: 0, next: 1, retired: 2 };
  rows.sort((a, b) => order[a.status] - order[b.status]); // newest first within a status (the query's order)
  const algorithm = deps.config.jwt.algorithm as AsymmetricAlgorithm;
  const keys = rows.map((row) => {
    // Only the current key's private half is opened; a key that was current before is rebuilt.
    const cacheKey = `${row.kid}:${row.status === 'current' ? 'sign' : 'verify'}`;
    let key = cache.get(cacheKey);
    if (!key) {
      const privatePem = row.status === 'current' ? openPrivateKey(kek, row) : undefined;
      key = asymmetricKey(algorithm, { privatePem, publicPem: row.publicKey }, deps.config.jwt);
      cache.set(cacheKey, key);
    }
    return key;
  });
  if (rows[0]?.status !== 'current') throw new Error('signing keys: no current key in the database');
  return keySet(keys[0], keys.slice(1));
}

function openPrivateKey(kek: Kek, row: KeyRow): string {
  try {
    return kek.open(row.privateKey, `signing_keys:${row.kid}`);
  } catch (err) {
    throw new Error(`signing key ${row.kid}: cannot decrypt it with the key-encryption key: ${(err as Error).message}`);
  }
}

export interface SigningKeyOut {
  kid: string;
  algorithm: string;
  status: SigningKeyStatus;
  published: boolean;
  createdAt: string;
  activatedAt: string | null;
  retiredAt: string | null;
  /** Retired keys: when the key leaves the JWKS (every token it signed has expired by then). */
  publishedUntil: string | null;
}

/** The keys of the configured algorithm, current first (GET /admin/keys, `keys:list`). */
export async function listSigningKeys(deps: KeyDeps): Promise<{ source: KeySource; keys: SigningKeyOut[] }> {
  const source = keySource(deps.config);
  if (source !== 'database') return { source, keys: [] };
  const rows = await deps.db.select().from(signingKeys).where(eq(signingKeys.algorithm, deps.config.jwt.algorithm)).orderBy(desc(signingKeys.createdAt));
  const order: Record<SigningKeyStatus, number> = { current: 0, next: 1, retired: 2 };
  rows.sort((a, b) => order[a.status] - order[b.status]);
  const window = retiredWindow(deps.config) * 1000;
  const now = deps.now().getTime();
  return {
    source,
    keys: rows.map((r) => {
      const until = r.retiredAt ? new Date(r.retiredAt.getTime() + window) : null;
      return {
        kid: r.kid,
        algorithm: r.algorithm,
        status: r.status,
        published: until === null || until.getTime() > now,
        createdAt: r.createdAt.toISOString(),
        activatedAt: r.activatedAt?.toISOString() ?? null,
        retiredAt: r.retiredAt?.toISOString() ?? null,
        publishedUntil: until?.toISOString() ?? null,
      };
    }),
  };
}

/**
 * Promotes the next key to current, retires the current one and creates a new next key; every
 * instance follows within JWT_KEYS_RELOAD_INTERVAL (and at once on a token of the new key). Refused while
 * the next key has been published for less than JWKS_MAX_AGE, unless forced.
 */
export async function rotateSigningKeys(
  deps: KeyDeps & { ring?: KeyRing },
  options: { force?: boolean } = {},
): Promise<{ source: KeySource; keys: SigningKeyOut[] }> {
  const source = keySource(deps.config);
  if (source !== 'database') {
    throw new AppError('key_rotation_unavailable', {
      detail:
        source === 'secret'
          ? 'HS256 signs with the one JWT_SECRET, which cannot be rotated without logging everyone out; use an asymmetric JWT_ALGORITHM.'
          : 'The signing keys come from JWT_PRIVATE_KEY: rotate by listing the new key after the current one, deploying, then moving it first.',
    });
  }
  const kek = kekOf(deps.config)!;
  await ensureKeys(deps, kek);
  const { algorithm } = deps.config.jwt;
  await withKeysLock(deps.db, async (tx) => {
    const rows = await tx.select().from(signingKeys).where(and(eq(signingKeys.algorithm, algorithm), inArray(signingKeys.status, ['current', 'next'])));
    const next = rows.find((r) => r.status === 'next')!;
    const now = deps.now();
    const publishedFor = Math.floor((now.getTime() - next.createdAt.getTime()) / 1000);
    if (!options.force && publishedFor < JWKS_MAX_AGE) {
      throw new AppError('key_rotation_too_soon', {
        detail:
          `The next key has been published for ${publishedFor} s; resource servers may cache the JWKS for ${JWKS_MAX_AGE} s. ` +
          `Try again in ${JWKS_MAX_AGE - publishedFor} s, or force the rotation.`,
      });
    }
    await tx.update(signingKeys).set({ status: 'retired', retiredAt: now }).where(and(eq(signingKeys.algorithm, algorithm), eq(signingKeys.status, 'current')));
    await tx.update(signingKeys).set({ status: 'current', activatedAt: now }).where(eq(signingKeys.kid, next.kid));
    await insertKey(tx, deps, kek, 'next');
  });
  await deps.ring?.reload();
  return listSigningKeys(deps);
}

// --- The refresh-token HMAC secret ---------------------------------------------------------------

/**
 * The secret that derives a refresh token's child: random, created once for every instance, never
 * derived from a signing key (so rotations do not change it). Sealed with the KEK when there is
 * one; in production with static keys and no KEY_ENCRYPTION_KEY it is stored as is.
 */
async function loadRefreshSecret(db: Db, kek: Kek | undefined): Promise<Buffer> {
  const context = `service_secrets:${REFRESH_SECRET}`;
  const fresh = randomBytes(32).toString('base64');
  await db
    .insert(serviceSecrets)
    .values({ name: REFRESH_SECRET, value: kek ? kek.seal(fresh, context) : `plain.${fresh}` })
    .onConflictDoNothing();
  const [row] = await db.select().from(serviceSecrets).where(eq(serviceSecrets.name, REFRESH_SECRET));
  if (row.value.startsWith('plain.')) return Buffer.from(row.value.slice('plain.'.length), 'base64');
  if (!kek) throw new Error('service_secrets: the refresh-token secret is sealed with a key-encryption key: set KEY_ENCRYPTION_KEY');
  try {
    return Buffer.from(kek.open(row.value, context), 'base64');
  } catch (err) {
    throw new Error(`service_secrets: cannot decrypt the refresh-token secret with the key-encryption key: ${(err as Error).message}`);
  }
}
