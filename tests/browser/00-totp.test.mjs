// The suite's TOTP helper against RFC 6238's SHA-1 test vectors (appendix B,
// secret "12345678901234567890"), so a sign-in failure is never the helper.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { base32Decode, codeForStep, hotp, stepAt, totp } from './lib/totp.mjs';

const SECRET_ASCII = '12345678901234567890';
const SECRET_B32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

test('base32 decodes the RFC secret', () => {
  assert.equal(base32Decode(SECRET_B32).toString('ascii'), SECRET_ASCII);
  assert.equal(base32Decode('gezd gnbv-gy3tqojq gezdgnbvgy3tqojq==').toString('ascii'), SECRET_ASCII);
  assert.throws(() => base32Decode('GEZ1'), /base32/);
});

test('RFC 4226 HOTP vectors', () => {
  const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
  expected.forEach((code, counter) => assert.equal(hotp(Buffer.from(SECRET_ASCII), counter), code));
});

test('RFC 6238 SHA-1 vectors (8 digits, and the 6-digit codes the server uses)', () => {
  const vectors = [
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ];
  for (const [t, code] of vectors) {
    assert.equal(totp(SECRET_B32, t, 8), code, `T=${t}`);
    assert.equal(totp(SECRET_B32, t), code.slice(-6), `T=${t}, 6 digits`);
    assert.equal(codeForStep(SECRET_B32, stepAt(t)), code.slice(-6));
  }
  assert.equal(stepAt(59), 1);
  assert.equal(stepAt(60), 2);
});
