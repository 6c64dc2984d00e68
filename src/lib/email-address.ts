// What an email address must be to be accepted: the syntax of ajv-formats' "email" (dot-atoms of
// ASCII, a dotted domain of letters, digits and hyphens) within the limits of RFC 5321 §4.5.3.1:
// a local part of at most 64 octets, a domain label of at most 63, an address of at most 254 (the
// 256-octet path less its angle brackets). A longer address could never receive our email, and
// some mail servers truncate what they cannot hold — to someone else's address.
const SYNTAX =
  /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/i;

export const EMAIL_LIMITS = { address: 254, localPart: 64, label: 63 } as const;

export function isEmailAddress(value: string): boolean {
  // The syntax is ASCII-only, so characters are octets here.
  if (value.length > EMAIL_LIMITS.address || !SYNTAX.test(value)) return false;
  const at = value.lastIndexOf('@');
  if (at > EMAIL_LIMITS.localPart) return false;
  return value
    .slice(at + 1)
    .split('.')
    .every((label) => label.length <= EMAIL_LIMITS.label);
}
