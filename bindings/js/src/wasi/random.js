// `wasi:random`: the operating system's CSPRNG.

import { randomBytes } from 'node:crypto';

export const random = {
  getRandomBytes(len) {
    return new Uint8Array(randomBytes(Number(len)));
  },
  getRandomU64() {
    return randomBytes(8).readBigUInt64LE();
  },
};

export const insecure = random;
export const insecureSeed = {
  insecureSeed() {
    const b = randomBytes(16);
    return [b.readBigUInt64LE(0), b.readBigUInt64LE(8)];
  },
};
