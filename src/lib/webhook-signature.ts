// Standard Webhooks signatures (https://www.standardwebhooks.com): `v1,` + base64 of
// HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>", keyed with the bytes of the secret
// written `whsec_<base64>` (the format the spec's libraries take).
import { createHmac } from 'node:crypto';

/** whsec_<base64> → the key bytes; undefined unless it is that form with at least 24 bytes. */
export function parseWebhookSecret(value: string): Buffer | undefined {
  const m = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(value.trim());
  if (!m) return undefined;
  const key = Buffer.from(m[1], 'base64');
  return key.length >= 24 ? key : undefined;
}

/** The `webhook-signature` header value of one message (`timestamp` in unix seconds). */
export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}
