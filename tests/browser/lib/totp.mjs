// TOTP (RFC 6238) for the browser tests: HMAC-SHA-1, 6 digits, 30 s steps,
// from the base32 secret the two-factor setup page shows. node:crypto only.

import { createHmac } from 'node:crypto';

export const STEP_SECONDS = 30;
export const DIGITS = 6;

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Decodes RFC 4648 base32 (case, spaces, dashes and `=` padding ignored). */
export function base32Decode(text) {
  const clean = String(text).toUpperCase().replace(/[\s=-]/g, '');
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const i = ALPHABET.indexOf(ch);
    if (i < 0) throw new Error(`not a base32 character: ${JSON.stringify(ch)}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 4226 HOTP of `counter` with the raw key `key`. */
export function hotp(key, counter, digits = DIGITS) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % 10 ** digits).padStart(digits, '0');
}

/** The time step of a unix time in seconds. */
export function stepAt(unixSeconds) {
  return Math.floor(unixSeconds / STEP_SECONDS);
}

/** The current time step. */
export function currentStep() {
  return stepAt(Date.now() / 1000);
}

/** The code of time step `step` for the base32 secret. */
export function codeForStep(secretBase32, step, digits = DIGITS) {
  return hotp(base32Decode(secretBase32), step, digits);
}

/** The code at unix time `unixSeconds` (default: now). */
export function totp(secretBase32, unixSeconds = Date.now() / 1000, digits = DIGITS) {
  return codeForStep(secretBase32, stepAt(unixSeconds), digits);
}
