// Opaque tokens: 32 random bytes (256 bits), base64url, and nothing personal in them. Only their
// SHA-256 is stored, so a read of the database does not yield a usable token; a fast hash is
// enough because the input has 256 bits of entropy (nothing to brute-force, unlike a password).
import { createHash, createHmac, randomBytes } from 'node:crypto';

export const newToken = (): string => randomBytes(32).toString('base64url');

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('base64url');

/** A token derived from another with a server-side key: the same parent always yields the same child. */
export const deriveToken = (key: Buffer, parent: string): string =>
  createHmac('sha256', key).update(parent).digest('base64url');
