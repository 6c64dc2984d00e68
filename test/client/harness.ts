// The client suite's world: the real service process (src/server.ts) listening on a socket, an
// SMTP server it sends to, and its own database (PGlite in a temporary folder, or a fresh
// PostgreSQL database when TEST_DATABASE_URL is set). Deliberately imports nothing from src/ or
// test/helpers.ts: the suite sees the service only as a client does, and type-checks on its own
// under the client's strict settings (clients/typescript/tsconfig.json).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ParsedMail, simpleParser } from 'mailparser';
import postgres from 'postgres';
import { SMTPServer } from 'smtp-server';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface Mailbox {
  url: string;
  /** The next email to `address` not taken yet (waits up to 15 s). */
  next(address: string, subject?: RegExp): Promise<ParsedMail>;
}

export async function startMailbox(t: Teardown): Promise<Mailbox> {
  const received: ParsedMail[] = [];
  const taken = new Set<ParsedMail>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, _session, callback) {
      simpleParser(stream).then(
        (mail) => {
          received.push(mail);
          callback();
        },
        (err: Error) => callback(err),
      );
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.server.address();
  const port = address && typeof address === 'object' ? (address satisfies AddressInfo).port : 0;
  const to = (mail: ParsedMail) => [mail.to ?? []].flat().flatMap((a) => a.value.map((v) => v.address?.toLowerCase()));
  return {
    url: `smtp://127.0.0.1:${port}`,
    async next(recipient, subject) {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const mail = received.find((m) => !taken.has(m) && to(m).includes(recipient.toLowerCase()) && (!subject || subject.test(m.subject ?? '')));
        if (mail) {
          taken.add(mail);
          return mail;
        }
        if (Date.now() > deadline) throw new Error(`no email to ${recipient}${subject ? ` matching ${subject}` : ''}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** The token of an email's link: its last path segment ({token} of ACTIVATION_URL and friends). */
export function tokenIn(mail: ParsedMail): string {
  const link = /https?:\/\/\S+/.exec(mail.text ?? '')?.[0];
  const token = link ? new URL(link).pathname.split('/').pop() : undefined;
  if (!token) throw new Error(`no link in the email "${mail.subject}"`);
  return decodeURIComponent(token);
}

export interface Service {
  baseUrl: string;
  output(): string;
}

/** Starts the service with the given settings and waits until it listens. */
export async function startService(t: Teardown, mailbox: Mailbox, env: Record<string, string>): Promise<Service> {
  const dataDir = mkdtempSync(join(tmpdir(), 'authservice-client-'));
  const database = await createDatabase();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      DATA_DIR: dataDir,
      SMTP_URL: mailbox.url,
      FRONTEND_URL: 'https://app.example.com',
      ARGON2_MEMORY_KIB: '1024',
      ARGON2_ITERATIONS: '1',
      // The embedded database in memory (quicker to start than a folder), or a fresh PostgreSQL one.
      DATABASE_URL: database ? database.url : 'memory://',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // One teardown, in order: stop the process, then remove what it used.
  t.teardown(async () => {
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    await database?.drop();
  });
  const deadline = Date.now() + 240_000; // a loaded CI machine starts slowly
  for (;;) {
    const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
    if (url) return { baseUrl: url, output: () => output };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the service did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A fresh PostgreSQL database when TEST_DATABASE_URL is set; undefined for the embedded one. */
async function createDatabase(): Promise<{ url: string; drop(): Promise<void> } | undefined> {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) return undefined;
  const name = `client_${randomBytes(6).toString('hex')}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const u = new URL(url);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}
