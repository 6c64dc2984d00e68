// Django's password validators, in Django's order and with Django's messages and codes (they are
// django-graphql-auth's): attribute similarity, minimum length, common password, numeric. Plus a
// maximum length, checked before any hashing so a huge password cannot buy CPU time.
import { dictionary } from '@zxcvbn-ts/language-common';
import type { FieldErrors } from '../errors.js';

// zxcvbn's list is ordered by frequency; Django uses the 20,000 most common.
const COMMON = new Set(dictionary['passwords-common'].slice(0, 20_000).map((p) => p.toLowerCase()));

export interface PasswordPolicy {
  minLength: number;
  maxLength: number;
  /** Words specific to this service (its name first): ASVS 5.0 6.2.11. */
  contextWords?: readonly string[];
}

export interface Attributes {
  email?: string | null;
  username?: string | null;
  firstName?: string | null;
  lastName?: string | null;
}

const ATTRIBUTE_NAMES: [keyof Attributes, string][] = [
  ['username', 'username'],
  ['firstName', 'first name'],
  ['lastName', 'last name'],
  ['email', 'email address'],
];

type RuleError = { message: string; code: string };

/** Every rule the password breaks, in Django's order (empty when it is acceptable). */
export function checkPassword(password: string, policy: PasswordPolicy, user: Attributes): RuleError[] {
  const errors: RuleError[] = [];
  const length = [...password].length; // code points, not UTF-16 units
  if (length > policy.maxLength) {
    // Nothing else is computed on an over-long password.
    return [{ message: `This password is too long. It must contain at most ${policy.maxLength} characters.`, code: 'password_too_long' }];
  }
  const similar = similarAttribute(password, user) ?? contextWord(password, policy.contextWords ?? []);
  if (similar) errors.push({ message: `The password is too similar to the ${similar}.`, code: 'password_too_similar' });
  if (length < policy.minLength) {
    const unit = policy.minLength === 1 ? 'character' : 'characters';
    errors.push({ message: `This password is too short. It must contain at least ${policy.minLength} ${unit}.`, code: 'password_too_short' });
  }
  if (COMMON.has(password.toLowerCase().trim())) errors.push({ message: 'This password is too common.', code: 'password_too_common' });
  if (/^\d+$/.test(password)) errors.push({ message: 'This password is entirely numeric.', code: 'password_entirely_numeric' });
  return errors;
}

/** The two-field check of register/reset/set/change: mismatch first, then the rules, all on `field`. */
export function checkNewPassword(
  password1: string,
  password2: string,
  field: string,
  policy: PasswordPolicy,
  user: Attributes,
): FieldErrors | undefined {
  if (password1 !== password2) {
    return { [field]: [{ message: 'The two password fields didn’t match.', code: 'password_mismatch' }] };
  }
  const errors = checkPassword(password2, policy, user);
  return errors.length ? { [field]: errors } : undefined;
}

// Django's UserAttributeSimilarityValidator (max_similarity 0.7): each attribute and each of its
// word-separated parts is compared with difflib's quick_ratio.
function similarAttribute(password: string, user: Attributes): string | undefined {
  const pw = password.toLowerCase();
  for (const [key, label] of ATTRIBUTE_NAMES) {
    const value = user[key];
    if (!value) continue;
    const lower = value.toLowerCase();
    for (const part of [...lower.split(/[^\p{L}\p{N}_]+/u), lower]) {
      if (!part) continue;
      if (exceedsMaximumLengthRatio(pw, part)) continue;
      if (quickRatio(pw, part) >= 0.7) return label;
    }
  }
  return undefined;
}

// A password that contains a word specific to this service (SERVICE_NAME, PASSWORD_CONTEXT_WORDS),
// ignoring case, spaces and punctuation ("AuthService2024!", "auth-service rocks"), is the first
// one an attacker tries. Containment only: quick_ratio is a multiset measure, and against a fixed
// word it would refuse unrelated passwords made of the same letters.
function contextWord(password: string, words: readonly string[]): string | undefined {
  const squash = (s: string) => s.normalize('NFKC').toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');
  const pw = squash(password);
  for (const [i, word] of words.entries()) {
    const w = squash(word);
    if (w.length < 3) continue; // too short to be a word of its own (and would refuse half of all passwords)
    if (pw.includes(w)) {
      return i === 0 ? 'service name' : 'name of something specific to this service';
    }
  }
  return undefined;
}

function exceedsMaximumLengthRatio(password: string, value: string): boolean {
  const pwdLen = [...password].length;
  const valueLen = [...value].length;
  return pwdLen >= 10 * valueLen && valueLen < (0.7 / 2) * pwdLen;
}

/** difflib.SequenceMatcher(a, b).quick_ratio(): 2 × (shared characters, as multisets) / total length. */
function quickRatio(a: string, b: string): number {
  const as = [...a];
  const bs = [...b];
  const counts = new Map<string, number>();
  for (const c of bs) counts.set(c, (counts.get(c) ?? 0) + 1);
  let matches = 0;
  for (const c of as) {
    const n = counts.get(c) ?? 0;
    if (n > 0) {
      matches++;
      counts.set(c, n - 1);
    }
  }
  const total = as.length + bs.length;
  return total ? (2 * matches) / total : 1;
}
