// One function per email: what it says, in a plain-text and an HTML part. The link carries the
// raw one-time token; it only opens a page of the front end, which POSTs the token to the API
// (following the link never consumes it, so mail scanners that prefetch links do no harm).
//
// Names are registrant-chosen text. An email to an address that is not proven yet (activation,
// password set, the confirmation of a new address) carries none: whoever registers somebody
// else's address must not choose what that inbox reads. Later emails show a name as text only
// (displayName): control and format characters removed, HTML-escaped, and broken after every
// '.', '@', ':' and '/' by a zero-width space, so that no mail client turns `www.evil.test`
// into a link.

export interface Rendered {
  kind: string;
  subject: string;
  text: string;
  html: string;
}

const escape = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** A registrant-chosen name made inert: plain text that no mail client can turn into a link. */
export function displayName(name: string | null | undefined): string | null {
  if (!name) return null;
  const plain = name
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, '') // controls, bidi overrides, zero-widths, line breaks
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 64);
  return plain ? plain.replace(/([.@:/\\])/g, '$1\u200b') : null;
}

/** n***@example.com: enough for the owner to recognise, not a full address to harvest. */
export function maskEmail(address: string): string {
  const at = address.lastIndexOf('@');
  if (at <= 0) return '***';
  return `${address[0]}***${address.slice(at)}`;
}

function layout(kind: string, subject: string, paragraphs: string[], link?: { url: string; label: string }): Rendered {
  const text = [...paragraphs, ...(link ? [`${link.label}: ${link.url}`] : [])].join('\n\n') + '\n';
  const html =
    `<!doctype html><html><body style="font-family:sans-serif;line-height:1.5">` +
    paragraphs.map((p) => `<p>${escape(p)}</p>`).join('') +
    (link ? `<p><a href="${escape(link.url)}">${escape(link.label)}</a></p><p style="color:#666;font-size:small">${escape(link.url)}</p>` : '') +
    `</body></html>`;
  return { kind, subject, text, html };
}

const hello = (name: string | null) => {
  const shown = displayName(name);
  return shown ? `Hello ${shown},` : 'Hello,';
};
/** A lifetime as a person says it: "7 days", "1 hour", "90 minutes", "1 day and 12 hours". */
export function hours(seconds: number): string {
  const unit = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
  const days = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.ceil((seconds % 3600) / 60);
  if (days && h && !minutes) return `${unit(days, 'day')} and ${unit(h, 'hour')}`;
  if (days && !h && !minutes) return unit(days, 'day');
  if (seconds % 3600 === 0) return unit(seconds / 3600, 'hour');
  return unit(Math.ceil(seconds / 60), 'minute');
}

// To an unproven address: no name (account pre-hijacking, issue 7 items 2 and 7).
export const activationEmail = (url: string, lifetime: number) =>
  layout('activation', 'Activate your account', [
    'Hello,',
    'Please confirm your email address to activate your account.',
    `This link works once and expires in ${hours(lifetime)}.`,
    'If you did not create this account, somebody else used your address. You can take the account over: ' +
      'activate it with this link (that ends every session opened on it), then use "Forgot password" on the ' +
      'login page to reset its password, which makes it yours and ends every session again.',
  ], { url, label: 'Activate your account' });

export const passwordResetEmail = (name: string | null, url: string, lifetime: number) =>
  layout('password_reset', 'Reset your password', [
    hello(name),
    'Somebody asked to reset the password of your account.',
    `This link works once and expires in ${hours(lifetime)}. If it was not you, ignore this email: your password stays as it is.`,
  ], { url, label: 'Choose a new password' });

// To an unproven address: no name.
export const passwordSetEmail = (url: string, lifetime: number) =>
  layout('password_set', 'Set your password', [
    'Hello,',
    'Your account has no password yet. Choose one to be able to log in.',
    `This link works once and expires in ${hours(lifetime)}.`,
  ], { url, label: 'Set your password' });

export const passwordChangedEmail = (name: string | null) =>
  layout('password_changed', 'Your password was changed', [
    hello(name),
    'The password of your account was just changed, and every session was logged out.',
    'If this was not you, reset your password now and check the email address on your account.',
  ]);

// To the new, unproven address of an email change: no name, nothing of the requester's choosing.
export const emailChangeEmail = (url: string, lifetime: number) =>
  layout('email_change', 'Confirm your new email address', [
    'Hello,',
    'Somebody asked to use this address for their account. If it was you, confirm it with this link; the account ' +
      'keeps its current address until you do.',
    `This link works once and expires in ${hours(lifetime)}. If it was not you, ignore this email: nothing changes.`,
  ], { url, label: 'Confirm this address' });

// To the current (proven) address of an account whose address is being changed.
export const emailChangeRequestedEmail = (name: string | null, newAddress: string) =>
  layout('email_change_requested', 'Your email address is being changed', [
    hello(name),
    `Somebody asked to change the email address of your account to ${displayName(maskEmail(newAddress))}. It changes once that ` +
      'address is confirmed.',
    'If this was not you, change your password now: that cancels the change and logs out every session.',
  ]);

export const emailChangedEmail = (name: string | null, newAddress: string) =>
  layout('email_changed', 'Your email address was changed', [
    hello(name),
    `The email address of your account is now ${displayName(maskEmail(newAddress))}; this address no longer belongs to it.`,
    'If this was not you, contact support at once: this address can no longer reset the password of the account.',
  ]);
