// The key-encryption key (KEK): seals the secrets the service keeps in its database (signing keys,
// the refresh-token HMAC secret), so that a copy of the database (a backup, a read replica, an SQL
// injection) yields no usable key. AES-256-GCM with a random 96-bit nonce per secret; the row's
// name is authenticated with it, so a sealed value cannot be moved to another row.
// The KEK comes from KEY_ENCRYPTION_KEY, or outside production from a file generated once in
// DATA_DIR (like the development signing key used to be).
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Kek {
  /** A short, non-secret fingerprint of the KEK, stored with each sealed value to name the key a value needs. */
  id: string;
  seal(plaintext: string, context: string): string;
  /** The plaintext, or an Error saying the KEK does not fit. */
  open(sealed: string, context: string): string;
}

/** 32 bytes written as base64, base64url or hex. */
export function parseKek(text: string): Buffer | undefined {
  const t = text.trim();
  const bytes = /^[0-9a-f]{64}$/i.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  return bytes.length === 32 ? bytes : undefined;
}

export function createKek(key: Buffer): Kek {
  const id = createHash('sha256').update('authservice kek id\0').update(key).digest('base64url').slice(0, 8);
  return {
    id,
    seal(plaintext, context) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(context));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return ['v1', id, iv.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
    },
    open(sealed, context) {
      const [version, keyId, iv, body, tag] = sealed.split('.');
      if (version !== 'v1' || !tag) throw new Error('not a sealed value');
      if (keyId !== id) throw new Error(`sealed with another key-encryption key (${keyId}), not KEY_ENCRYPTION_KEY (${id})`);
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    },
  };
}

/** KEY_ENCRYPTION_KEY when set; otherwise (development) a key generated once in DATA_DIR. */
export function loadKek(configured: string | undefined, dataDir: string): Kek {
  if (configured) return createKek(parseKek(configured)!); // config.ts checked its shape
  const file = join(dataDir, 'key-encryption.key');
  if (existsSync(file)) {
    const key = parseKek(readFileSync(file, 'utf8'));
    if (!key) throw new Error(`${file}: not a 32-byte key-encryption key`);
    return createKek(key);
  }
  mkdirSync(dataDir, { recursive: true });
  try {
    // 'wx': of two instances starting at once on one DATA_DIR, one writes and both read its key.
    writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return loadKek(undefined, dataDir);
}
