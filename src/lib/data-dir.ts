// DATA_DIR: the embedded database and the development signing key live there. Two checks at start,
// each failing with one clear sentence (StartupError) instead of a stack trace:
// - usable: a folder (created if missing) this process can write to;
// - owned: the embedded database has exactly one owner. Two processes on one PGlite folder each
//   see their own copy and lose each other's writes, so the first takes an exclusive lock and any
//   other is refused. The lock is a file created with O_EXCL holding the owner's pid, host and
//   start time, and touched every few seconds. It is stale, and taken over, when its owner is a
//   dead process on this host (kill -9 leaves the file behind), or when it has not been touched for
//   LOCK_STALE_MS (an owner on another host sharing the volume, gone). A take-over is serialised by
//   an atomic mkdir, so two processes finding the same stale lock cannot both win.
import { accessSync, closeSync, constants, mkdirSync, openSync, readFileSync, rmdirSync, rmSync, statSync, utimesSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

/** A start-up failure an operator fixes: printed as one line, exit 1, no stack. */
export class StartupError extends Error {
  constructor(
    message: string,
    readonly fields: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'StartupError';
  }
}

const LOCK_FILE = 'pglite.lock';
const HEARTBEAT_MS = 5_000;
export const LOCK_STALE_MS = 20_000;

/** Creates DATA_DIR if needed and checks that it is a writable folder. */
export function ensureDataDir(dir: string): string {
  const path = resolve(dir);
  let isDir: boolean | undefined;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fsProblem(path, err, 'cannot be read');
  }
  if (isDir === false) throw new StartupError(`DATA_DIR ${path} is a file, not a folder: point DATA_DIR at a folder`, { dataDir: path });
  if (isDir === undefined) {
    try {
      mkdirSync(path, { recursive: true });
    } catch (err) {
      throw fsProblem(path, err, 'cannot be created');
    }
  }
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
    // access() answers for the real uid; a read-only mount only shows on a real write.
    const probe = join(path, `.write-test-${process.pid}`);
    closeSync(openSync(probe, 'w'));
    rmSync(probe);
  } catch (err) {
    throw fsProblem(path, err, 'is not writable by this process');
  }
  return path;
}

function fsProblem(path: string, err: unknown, what: string): StartupError {
  const code = (err as NodeJS.ErrnoException).code;
  const reason =
    code === 'EACCES' || code === 'EPERM'
      ? 'permission denied'
      : code === 'EROFS'
        ? 'read-only file system'
        : code === 'ENOTDIR'
          ? 'a parent is a file'
          : code === 'ENOSPC'
            ? 'no space left'
            : (code ?? String(err));
  return new StartupError(`DATA_DIR ${path} ${what} (${reason})`, { dataDir: path, reason });
}

interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
}

export interface DataDirLock {
  release(): void;
}

/** Takes the exclusive lock on DATA_DIR for the embedded database, or throws a StartupError. */
export function lockDataDir(dir: string): DataDirLock {
  const path = resolve(dir);
  const file = join(path, LOCK_FILE);
  const me: LockInfo = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    if (tryCreate(file, me)) break;
    const holder = readLock(file);
    if (holder === undefined) continue; // it vanished between our create and our read: try again
    const stale = staleness(file, holder);
    if (!stale) {
      throw new StartupError(
        `DATA_DIR ${path} is in use by another process (pid ${holder.pid} on ${holder.host}, since ${holder.startedAt}); ` +
          'the embedded database has one owner: stop that process, or give this one its own DATA_DIR or a DATABASE_URL',
        { dataDir: path, holder },
      );
    }
    if (attempt >= 5) throw new StartupError(`DATA_DIR ${path}: could not take over the stale lock ${file}`, { dataDir: path });
    takeOver(file, holder);
  }
  const heartbeat = setInterval(() => {
    try {
      const now = new Date();
      utimesSync(file, now, now);
    } catch {
      // The folder went away or is read-only now: the database will say so on its next write.
    }
  }, HEARTBEAT_MS).unref();
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      clearInterval(heartbeat);
      const holder = readLock(file);
      if (holder && holder.pid === me.pid && holder.host === me.host && holder.startedAt === me.startedAt) rmSync(file, { force: true });
    },
  };
}

function tryCreate(file: string, me: LockInfo): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fsProblem(file, err, 'cannot be locked');
  }
  try {
    writeSync(fd, JSON.stringify(me));
  } finally {
    closeSync(fd);
  }
  return true;
}

function readLock(file: string): LockInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(file, 'utf8'));
    return { pid: Number(info.pid), host: String(info.host), startedAt: String(info.startedAt) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // Unreadable or half-written (a crash between create and write): judged by its age alone.
    return { pid: 0, host: '?', startedAt: '?' };
  }
}

/** Why a lock no longer holds, or undefined when its owner may be alive. */
function staleness(file: string, holder: LockInfo): string | undefined {
  if (holder.host === hostname()) {
    // Same host: the pid says it all. Our own pid is a previous life (containers reuse pid 1).
    if (holder.pid === process.pid || !alive(holder.pid)) return 'its process is gone';
    return undefined;
  }
  let age: number;
  try {
    age = Date.now() - statSync(file).mtimeMs;
  } catch {
    return 'it vanished';
  }
  return age > LOCK_STALE_MS ? `not touched for ${Math.round(age / 1000)} s` : undefined;
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function takeOver(file: string, judged: LockInfo): void {
  const mutex = `${file}.takeover`;
  try {
    mkdirSync(mutex);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fsProblem(mutex, err, 'cannot be created');
    // Someone else is taking over; a take-over left behind by a crash expires.
    try {
      if (Date.now() - statSync(mutex).mtimeMs > LOCK_STALE_MS) rmdirSync(mutex);
    } catch {}
    return;
  }
  try {
    // Still the lock we judged stale (not a fresh one written meanwhile)?
    const now = readLock(file);
    if (now && now.pid === judged.pid && now.host === judged.host && now.startedAt === judged.startedAt) rmSync(file, { force: true });
  } finally {
    rmdirSync(mutex);
  }
}
