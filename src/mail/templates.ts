// One function per email: what it says, in a plain-text and an HTML part. The link carries the
// raw one-time token; it only opens a page of the front end, which POSTs the token to the API
// (following the link never consumes it, so mail scanners that prefetch links do no harm).

export interface Rendered {
  kind: string;
  subject: string;
  text: string;
  html: string;
}

const escape = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function layout(kind: string, subject: string, paragraphs: string[], link?: { url: string; label: string }): Rendered {
  const text = [...paragraphs, ...(link ? [`${link.label}: ${link.url}`] : [])].join('\n\n') + '\n';
  const html =
    `<!doctype html><html><body style="font-family:sans-serif;line-height:1.5">` +
    paragraphs.map((p) => `<p>${escape(p)}</p>`).join('') +
    (link ? `<p><a href="${escape(link.url)}">${escape(link.label)}</a></p><p style="color:#666;font-size:small">${escape(link.url)}</p>` : '') +
    `</body></html>`;
  return { kind, subject, text, html };
}

const hello = (name: string | null) => (name ? `Hello ${name},` : 'Hello,');
const hours = (seconds: number) =>
  seconds % 86400 === 0 ? `${seconds / 86400} day(s)` : seconds % 3600 === 0 ? `${seconds / 3600} hour(s)` : `${Math.ceil(seconds / 60)} minute(s)`;

export const activationEmail = (name: string | null, url: string, lifetime: number) =>
  layout('activation', 'Activate your account', [
    hello(name),
    'Please confirm your email address to activate your account.',
    `This link works once and expires in ${hours(lifetime)}. If you did not create an account, ignore this email.`,
  ], { url, label: 'Activate your account' });

export const passwordResetEmail = (name: string | null, url: string, lifetime: number) =>
  layout('password_reset', 'Reset your password', [
    hello(name),
    'Somebody asked to reset the password of your account.',
    `This link works once and expires in ${hours(lifetime)}. If it was not you, ignore this email: your password stays as it is.`,
  ], { url, label: 'Choose a new password' });

export const passwordSetEmail = (name: string | null, url: string, lifetime: number) =>
  layout('password_set', 'Set your password', [
    hello(name),
    'Your account has no password yet. Choose one to be able to log in.',
    `This link works once and expires in ${hours(lifetime)}.`,
  ], { url, label: 'Set your password' });

export const passwordChangedEmail = (name: string | null) =>
  layout('password_changed', 'Your password was changed', [
    hello(name),
    'The password of your account was just changed, and every session was logged out.',
    'If this was not you, reset your password now and check the email address on your account.',
  ]);
