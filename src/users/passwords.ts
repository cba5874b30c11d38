import { hash, verify } from '@node-rs/argon2';
import bcrypt from 'bcryptjs';

/** argon2id with the library's defaults (19 MiB, 2 passes): the current OWASP recommendation. */
export const hashPassword = (password: string): Promise<string> => hash(password);

export interface PasswordCheck {
  valid: boolean;
  /** A hash from the original service (bcrypt), to be replaced by argon2id now that we know the password. */
  outdated: boolean;
}

export async function verifyPassword(password: string, storedHash: string): Promise<PasswordCheck> {
  if (/^\$2[aby]\$/.test(storedHash)) {
    return { valid: await bcrypt.compare(password, storedHash), outdated: true };
  }
  try {
    return { valid: await verify(storedHash, password), outdated: false };
  } catch {
    return { valid: false, outdated: false };
  }
}

let timingHash: Promise<string> | undefined;

/** Spends the time of a real verification, so an unknown e-mail cannot be told apart by response time. */
export async function verifyNothing(password: string): Promise<void> {
  timingHash ??= hashPassword('timing-equaliser');
  await verifyPassword(password, await timingHash);
}

/** The original service's password rules; returns the reason a password is refused, if it is. */
export function passwordProblem(password: string, email: string): string | undefined {
  if (password.length < 3) return 'Password should be at least 3 characters';
  if (password.includes(email)) return 'Password should not contain e-mail';
  return undefined;
}

/** pydantic's EmailStr keeps the local part and lowercases the domain. */
export function normalizeEmail(email: string): string {
  const at = email.lastIndexOf('@');
  return `${email.slice(0, at)}@${email.slice(at + 1).toLowerCase()}`;
}
